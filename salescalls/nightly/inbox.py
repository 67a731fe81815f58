"""The nightly inbox: finding recordings, reading the CRM's calls.csv, staging results, quarantine."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from salescalls.errors import SetupError
from salescalls.records import CallRecord

# Files that travel with recordings but are not recordings: never probed, never quarantined.
SIDECAR_SUFFIXES = {".csv", ".json", ".yaml", ".yml", ".txt", ".md", ".py", ".rttm", ".stm", ".reason"}
# Files still being written by a copy tool.
PARTIAL_SUFFIXES = {".part", ".partial", ".tmp", ".crdownload", ".download"}
METADATA_COLUMNS = ("call_id", "file", "rep", "started_at", "segment", "campaign", "crm_outcome")


@dataclass(frozen=True)
class Metadata:
    rows: dict[str, dict[str, str]]  # file name -> CRM fields
    problems: tuple[str, ...]  # one line per row that could not be used


def scan(inbox: str | Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Candidate recordings under the inbox (recursively), in a stable order.

    Hidden files and folders, sidecar files (csv, json, ...), partial downloads and the folders
    in `skip` (quarantine, work, report) are left alone; everything else is probed and either processed
    or quarantined.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise FileNotFoundError(f"inbox is not a folder: {inbox}")
    skipped = {p.resolve() for p in skip}
    found = []
    for root, dirs, files in os.walk(inbox):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root_path / d).resolve() not in skipped)
        for name in sorted(files):
            path = root_path / name
            suffix = path.suffix.lower()
            if name.startswith(".") or suffix in SIDECAR_SUFFIXES or suffix in PARTIAL_SUFFIXES:
                continue
            if path.is_file() or path.is_symlink():  # links are checked by `refused`, not skipped silently
                found.append(path)
    return sorted(found)


def refused(path: Path, inbox: str | Path) -> str | None:
    """Why a found file is refused before it is read, or None. A symbolic link is followed only
    to a file inside the inbox: a link elsewhere could make the run read (and the report publish)
    any file the service account can see."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if not target.exists():
        return f"broken symbolic link (to {os.readlink(path)})"
    if not target.is_relative_to(Path(inbox).resolve()):
        return f"symbolic link to a file outside the inbox ({target}); copy the recording into the inbox instead"
    if not target.is_file():
        return f"symbolic link to something that is not a file ({target})"
    return None


class RunInProgress(SetupError):
    """Another nightly run holds the database's run lock."""


@contextmanager
def run_lock(database: str | Path) -> Iterator[None]:
    """Hold `<database>.run.lock` for one nightly run. The operating system releases it when the
    process ends however it ends (even SIGKILL), so a crash never leaves a stale lock behind."""
    import fcntl

    path = Path(f"{database}.run.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(f"another nightly run is working on {database} (lock {path}); this one stops") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def settled(paths: list[Path], seconds: float) -> tuple[list[Path], list[Path]]:
    """(settled, busy): a file whose size or modification time changes within `seconds` is still
    being copied into the inbox and is left for the next run, rather than quarantined half-written."""

    def state(path: Path):
        try:
            info = path.stat()
        except OSError:  # gone meanwhile (moved away by whoever is copying)
            return None
        return info.st_size, info.st_mtime_ns

    before = {path: state(path) for path in paths}
    if seconds > 0:
        time.sleep(seconds)
    ready, busy = [], []
    for path in paths:
        now = state(path)
        (ready if now is not None and now == before[path] else busy).append(path)
    return ready, busy


def read_metadata(path: str | Path | None) -> Metadata:
    """calls.csv keyed by file name. A row that cannot be used is reported and left out, and a
    field that cannot be used is reported and left empty; neither stops the run."""
    if path is None or not Path(path).is_file():
        return Metadata({}, ())
    path = Path(path)
    text, problems = _csv_text(path)
    rows: dict[str, dict[str, str]] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip() for name in next(reader, [])]
        if "file" not in header:
            return Metadata({}, (f"{path}: no 'file' column; expected columns {', '.join(METADATA_COLUMNS)}",))
        for values in reader:
            line = reader.line_num
            if not any(value.strip() for value in values):
                continue
            if len(values) != len(header):
                problems.append(f"{path}:{line}: {len(values)} fields where the header has {len(header)}; row ignored")
                continue
            row = {k: v.strip() for k, v in zip(header, values, strict=True) if k in METADATA_COLUMNS and v.strip()}
            name, problem = _file_name(row.get("file", ""))
            if problem:
                problems.append(f"{path}:{line}: {problem}; row ignored")
                continue
            if name in rows:
                problems.append(f"{path}:{line}: a second row for {name}; the first is kept")
                continue
            problems += [f"{path}:{line}: {issue}" for issue in _check_fields(row)]
            rows[name] = row
    except csv.Error as error:  # an unclosed quote, a field too long: nothing after it can be trusted
        problems.append(f"{path}:{reader.line_num}: not valid CSV ({error}); the rest of the file is ignored")
    return Metadata(rows, tuple(problems))


SEGMENTS = ("cold", "warm", "hot")
# What spreadsheets save a CSV as when it is not UTF-8, for the languages scripts are written in.
CSV_ENCODINGS = ("cp1251", "cp1250", "cp1252", "koi8_r", "iso8859_2", "iso8859_5", "utf_16")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # C:\ or C:/ (an export from a Windows machine)


def _csv_text(path: Path) -> tuple[str, list[str]]:
    """The file's text: UTF-8, else the encoding it most likely has (Excel saves cp1251/cp1250)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(raw, cp_isolation=list(CSV_ENCODINGS)).best()
        encoding = best.encoding if best is not None else "latin-1"
        note = f"{path}: not UTF-8; read as {encoding} (save it as 'CSV UTF-8' to be sure)"
        return raw.decode(encoding, errors="replace"), [note]


def _file_name(value: str) -> tuple[str, str | None]:
    """A row's recording as the name it is matched by, or why the row cannot be used. Rows are
    matched to recordings by file name alone, so a path that leaves the inbox is refused."""
    if not value:
        return "", "no file name"
    candidate = Path(value.replace("\\", "/"))
    if candidate.is_absolute() or value.startswith(("/", "\\")) or ".." in candidate.parts or _DRIVE.match(value):
        return "", f"file {value!r} is not a name inside the inbox"
    return candidate.name, None


def _check_fields(row: dict[str, str]) -> list[str]:
    """Fix what can be fixed in a row's fields, drop what cannot, and say so."""
    issues = []
    if "started_at" in row:
        try:
            datetime.fromisoformat(row["started_at"])
        except ValueError:
            issues.append(f"started_at {row.pop('started_at')!r} is not a date and time (YYYY-MM-DD HH:MM); not used")
    if "segment" in row:
        segment = row["segment"].lower()
        if segment in SEGMENTS:
            row["segment"] = segment
        else:
            issues.append(f"segment {row.pop('segment')!r} is not one of {', '.join(SEGMENTS)}; not used")
    return issues


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    counter = 1
    while target.exists() or target.with_name(target.name + ".reason.txt").exists():
        target = folder / f"{Path(name).stem}.{counter}{Path(name).suffix}"
        counter += 1
    return target


def quarantine(
    path: str | Path, folder: str | Path, reason: str, run_id: str | None = None, content_hash: str | None = None
) -> Path:
    """Move a file that cannot be processed out of the inbox, with a reason file beside it."""
    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, path.name)
    shutil.move(str(path), str(target))
    target.with_name(target.name + ".reason.txt").write_text(
        f"file: {path}\nreason: {reason}\nquarantined_at: {datetime.now().isoformat(timespec='seconds')}\n"
        f"run_id: {run_id or ''}\nsha256: {content_hash or ''}\n",
        encoding="utf-8",
    )
    return target


def staged_path(work_dir: str | Path, call_id: str) -> Path:
    return Path(work_dir) / "results" / f"{call_id}.json"


def stage_result(work_dir: str | Path, record: CallRecord) -> Path:
    """Write a worker's result atomically, so a killed run leaves whole files or none."""
    target = staged_path(work_dir, record.call_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(record.to_json(), encoding="utf-8")
    os.replace(temporary, target)
    return target


def staged_results(work_dir: str | Path) -> list[Path]:
    """Results computed by an earlier run that was stopped before storing them."""
    folder = Path(work_dir) / "results"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []
