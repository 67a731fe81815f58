"""Settings, read once from the environment (SALESCALLS_*), overridable per call."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(f"SALESCALLS_{name}")
    return default if value in (None, "") else value


_PATH_FIELDS = ("models_dir", "database", "work_dir", "quarantine_dir", "script", "report_dir")


class SettingsError(ValueError):
    """A SALESCALLS_* variable that cannot be used; the message names it and says why."""


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
    rep_channel: int | str = 0  # in stereo recordings, the channel that carries the rep; "auto": the words decide
    num_speakers: int | None = 2  # speakers in a mono call; None lets diarization decide...
    min_speakers: int | None = None  # ...within these bounds
    max_speakers: int | None = None
    device: str = "cpu"  # torch device for whisper and pyannote
    threads: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))  # torch threads
    workers: int | None = None  # calls analysed at once: >1 starts that many local worker processes (Dask)
    dask_address: str | None = None  # an external Dask scheduler (tcp://host:8786) to run the calls on

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then SALESCALLS_<FIELD> environment variables, then non-None overrides."""
        values = {}
        for f in fields(cls):
            raw = _env(f.name.upper(), None)
            name = f"SALESCALLS_{f.name.upper()}"
            if f.name == "database":
                raw, name = _env("DB", raw), "SALESCALLS_DB"
            if raw is None:
                continue
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected {_EXPECTED.get(f.name, 'a number')}") from None
        for name, value in overrides.items():
            if value is not None:
                values[name] = Path(value) if name in _PATH_FIELDS else value
        settings = cls(**values)
        if settings.workers is not None and settings.workers < 1:
            raise SettingsError(f"SALESCALLS_WORKERS={settings.workers}: expected 1 or more (or auto)")
        return settings


_EXPECTED = {
    "rep_channel": "0, 1 or auto",
    "threads": "a whole number",
    "workers": "a whole number of worker processes, or auto",
    "num_speakers": "a whole number or auto",
    "min_speakers": "a whole number or auto",
    "max_speakers": "a whole number or auto",
    "inbox_settle": "seconds, e.g. 2 or 0.5",
}


def _parse(name: str, raw: str):
    """One SALESCALLS_* value as its field's type (ValueError when it is not one)."""
    if name in ("vocabulary_prompt", "redact"):
        return raw.lower() in ("1", "true", "yes", "on")
    if name == "inbox_settle":
        return float(raw)
    if name == "rep_channel":
        if raw.strip().lower() == "auto":
            return "auto"
        if raw.strip() not in ("0", "1"):
            raise ValueError(raw)
        return int(raw)
    if name == "threads":
        return int(raw)
    if name == "workers":
        return None if raw.lower() == "auto" else int(raw)
    if name in ("num_speakers", "min_speakers", "max_speakers"):
        return None if raw.lower() in ("auto", "none") else int(raw)
    if name == "report_dir" and raw.lower() in ("off", "none", "no"):
        return None
    if name in _PATH_FIELDS:
        return Path(raw)
    return raw
