"""Settings, read once from the environment (SALESCALLS_*), overridable per call."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(f"SALESCALLS_{name}")
    return default if value in (None, "") else value


_PATH_FIELDS = ("models_dir", "database", "work_dir", "quarantine_dir", "script", "report_dir")


@dataclass(frozen=True)
class Settings:
    models_dir: Path = Path("models")  # whisper/, pyannote/ and stages/ live here
    database: Path = Path("data/salescalls.duckdb")  # the one DuckDB file
    work_dir: Path = Path("data/work")  # per-call results staged between workers and the writer
    quarantine_dir: Path = Path("data/quarantine")  # bad files are moved here with a reason
    inbox_settle: float = 2.0  # seconds a file's size must stay unchanged before it is taken (copies in progress)
    script: Path = Path("data/scripts/demo.yaml")  # the call script calls are scored against
    report_dir: Path | None = Path("data/report")  # the HTML report the nightly run writes; "off": none
    report_url: str | None = None  # where the team serves report_dir (the run summary links there)
    whisper_model: str = "base"  # whisper size name; weights in models_dir/whisper/<name>.pt
    language: str | None = None  # force a language code (en, ru, hu); None detects per call
    vocabulary_prompt: bool = False  # prompt whisper with the script's vocabulary (measured: off is better)
    redact: bool = False  # remove personal data (phones, e-mails, cards, IBANs, names) before storing
    rep_channel: int = 0  # in stereo recordings, the channel that carries the rep
    num_speakers: int | None = 2  # speakers in a mono call; None lets diarization decide...
    min_speakers: int | None = None  # ...within these bounds
    max_speakers: int | None = None
    device: str = "cpu"  # torch device for whisper and pyannote
    threads: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))  # torch threads
    workers: int = 1  # calls processed at once in one process

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then SALESCALLS_<FIELD> environment variables, then non-None overrides."""
        values = {}
        for f in fields(cls):
            raw = _env(f.name.upper(), None)
            if f.name == "database":
                raw = _env("DB", raw)
            if raw is None:
                continue
            if f.name in ("vocabulary_prompt", "redact"):
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            elif f.name == "inbox_settle":
                values[f.name] = float(raw)
            elif f.name in ("rep_channel", "threads", "workers"):
                values[f.name] = int(raw)
            elif f.name in ("num_speakers", "min_speakers", "max_speakers"):
                values[f.name] = None if raw.lower() in ("auto", "none") else int(raw)
            elif f.name == "report_dir" and raw.lower() in ("off", "none", "no"):
                values[f.name] = None
            elif f.name in _PATH_FIELDS:
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        for name, value in overrides.items():
            if value is not None:
                values[name] = Path(value) if name in _PATH_FIELDS else value
        return cls(**values)
