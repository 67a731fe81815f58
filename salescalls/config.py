"""Settings, read once from the environment (SALESCALLS_*), overridable per call.

Every setting the product has lives in `Settings`, with its default and one-line meaning;
`salescalls config` prints the effective values and where each came from. Imports nothing of the
package: every layer may read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from salescalls.errors import InputError
from salescalls.i18n import LANGUAGES


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(f"SALESCALLS_{name}")
    return default if value in (None, "") else value


ASR_ENGINES = ("openai", "faster")  # what can run whisper (Settings.asr_engine)
ASR_COMPUTE_TYPES = ("int8", "int8_float32", "float32")  # how the faster engine holds its weights

_PATH_FIELDS = ("models_dir", "database", "work_dir", "quarantine_dir", "script", "report_dir", "targets")


class SettingsError(InputError):
    """A SALESCALLS_* variable that cannot be used; the message names it and says why."""

    exit_code = 2  # like a usage error: the command was not run


@dataclass(frozen=True)
class Settings:
    models_dir: Path = Path("models")  # whisper/, pyannote/ and stages/ live here
    database: Path = Path("data/salescalls.duckdb")  # the one DuckDB file
    work_dir: Path = Path("data/work")  # per-call results staged between workers and the writer
    quarantine_dir: Path = Path("data/quarantine")  # bad files are moved here with a reason
    inbox_settle: float = 2.0  # seconds a file's size must stay unchanged before it is taken (copies in progress)
    same_failures: int = 3  # calls in a row failing the same way that stop the run as a systemic fault
    script: Path = Path("data/scripts/demo.yaml")  # the call script calls are scored against
    report_dir: Path | None = Path("data/report")  # the HTML report the nightly run writes; "off": none
    report_url: str | None = None  # where the team serves report_dir (the run summary links there)
    whisper_model: str = "base"  # whisper size; weights in models_dir/whisper/<name>.pt or faster-whisper/<name>/
    asr_engine: str = "faster"  # what runs whisper: faster (faster-whisper, CTranslate2) or openai (openai-whisper)
    asr_compute: str = "float32"  # the faster engine's weights: float32 (openai-whisper's WER) or int8 (faster, +0.8)
    asr_batch: int = 1  # the faster engine: 30 s windows of packed speech decoded at once (1: stretch by stretch)
    asr_threads: int = 1  # the faster engine's CTranslate2 threads (more slowed torch's diarization 2.5x in-process)
    language: str | None = None  # force a language code (en, ru, hu); None detects per call
    vocabulary_prompt: bool = False  # prompt whisper with the script's vocabulary (measured: off is better)
    redact: bool = False  # remove personal data (phones, e-mails, cards, IBANs, names) before storing
    rep_channel: int | str = 0  # in stereo recordings, the channel that carries the rep; "auto": the words decide
    num_speakers: int | None = 2  # speakers in a mono call; None lets diarization decide...
    min_speakers: int | None = None  # ...within these bounds
    max_speakers: int | None = None  # (None: no bound)
    device: str = "cpu"  # torch device for whisper and pyannote
    threads: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))  # torch threads
    workers: int | None = None  # calls analysed at once: >1 starts that many local worker processes (Dask)
    dask_address: str | None = None  # an external Dask scheduler (tcp://host:8786) to run the calls on
    db_memory: str | None = None  # DuckDB's memory cap, e.g. 4GB (it spills to disk beyond); None: 80 % of the RAM
    db_wait: float = 120.0  # seconds a connection waits for another process's to close before it gives up
    ner_model: str | None = None  # spaCy pipeline that finds names to redact; None: an installed <lang>_*; off: none
    encoder: str = "e5-small"  # sentence encoder of the stage and role models; off: words only
    encoder_threads: int = 1  # threads the sentence encoder uses
    targets: Path | None = None  # the team's KPI targets YAML {kpi: {target, stretch}}; None: the built-in ones
    report_period: str = "auto"  # the report's period filter and trends: day, week, month, quarter; auto: by data span
    report_calls_per_stage: int = 20  # latest calls listed on each stage page of the report
    report_examples: int = 2  # the rep's own example moments per training-plan gap in the report
    report_audio: bool = True  # publish the recordings (MP3) so the report's pages play them
    ui_language: str = "en"  # the language of the report and the CLI's output: en, ru or hu
    debug: bool = False  # errors with their traceback instead of one line (also: salescalls --debug)
    # Where each value came from: field -> "SALESCALLS_<NAME>" or "option" (absent: the default).
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then SALESCALLS_<FIELD> environment variables, then non-None overrides."""
        values, sources = {}, {}
        for f in fields(cls):
            if f.name == "sources":
                continue
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
            sources[f.name] = name
        for name, value in overrides.items():
            if value is not None:
                values[name] = Path(value) if name in _PATH_FIELDS else value
                sources[name] = "option"
        if "database" in values:  # a database of its own: its outputs beside it, unless set
            for name, folder in _BESIDE_DATABASE.items():
                if name not in values:
                    values[name] = Path(values["database"]).parent / folder
                    sources[name] = f"beside {sources['database']}"
        settings = cls(**values, sources=sources)
        if settings.workers is not None and settings.workers < 1:
            raise SettingsError(f"SALESCALLS_WORKERS={settings.workers}: expected 1 or more (or auto)")
        if settings.report_period not in ("auto", "day", "week", "month", "quarter"):
            raise SettingsError(
                f"SALESCALLS_REPORT_PERIOD={settings.report_period!r}: expected day, week, month, quarter or auto"
            )
        if settings.ui_language not in LANGUAGES:
            raise SettingsError(
                f"SALESCALLS_UI_LANGUAGE={settings.ui_language!r}: expected one of {', '.join(LANGUAGES)}"
            )
        if settings.asr_engine not in ASR_ENGINES:
            raise SettingsError(f"SALESCALLS_ASR_ENGINE={settings.asr_engine!r}: expected openai or faster")
        if settings.asr_compute not in ASR_COMPUTE_TYPES:
            raise SettingsError(f"SALESCALLS_ASR_COMPUTE={settings.asr_compute!r}: expected int8 or float32")
        for name in ("report_calls_per_stage", "report_examples", "same_failures", "asr_batch", "asr_threads"):
            if getattr(settings, name) < 1:
                raise SettingsError(f"SALESCALLS_{name.upper()}={getattr(settings, name)}: expected 1 or more")
        return settings

    def described(self) -> list[tuple[str, str, str, str]]:
        """(setting, effective value, where it came from, what it means) for `salescalls config`."""
        meaning = _meanings()
        rows = []
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            shown = "off" if value is None and f.name == "report_dir" else "" if value is None else str(value)
            rows.append((f.name, shown, self.sources.get(f.name, "default"), meaning.get(f.name, "")))
        return rows


def _meanings() -> dict[str, str]:
    """Each field's one-line comment in this file: the documentation `salescalls config` shows."""
    import inspect
    import re

    found = {}
    for line in inspect.getsource(Settings).splitlines():
        match = re.match(r"\s+(\w+): [^=]+= .*?  # (.+)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


# Outputs that follow the database (data/salescalls.duckdb -> data/work, data/quarantine, data/report):
# a run on a scratch database never writes into the team's folders.
_BESIDE_DATABASE = {"work_dir": "work", "quarantine_dir": "quarantine", "report_dir": "report"}

_EXPECTED = {
    "rep_channel": "0, 1 or auto",
    "threads": "a whole number",
    "workers": "a whole number of worker processes, or auto",
    "num_speakers": "a whole number or auto",
    "min_speakers": "a whole number or auto",
    "max_speakers": "a whole number or auto",
    "inbox_settle": "seconds, e.g. 2 or 0.5",
    "db_wait": "seconds, e.g. 120",
    "encoder_threads": "a whole number",
    "report_calls_per_stage": "a whole number",
    "report_examples": "a whole number",
    "same_failures": "a whole number, 1 or more",
    "asr_batch": "a whole number, 1 or more",
    "asr_threads": "a whole number, 1 or more",
}


def _parse(name: str, raw: str):
    """One SALESCALLS_* value as its field's type (ValueError when it is not one)."""
    if name in ("vocabulary_prompt", "redact", "report_audio", "debug"):
        return raw.lower() in ("1", "true", "yes", "on")
    if name in ("inbox_settle", "db_wait"):
        return float(raw)
    if name in ("report_calls_per_stage", "report_examples", "same_failures", "asr_batch", "asr_threads"):
        return int(raw)
    if name == "encoder_threads":
        return max(1, int(raw))
    if name in ("report_period", "encoder", "ui_language", "asr_engine", "asr_compute"):
        return raw.strip().lower()
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
