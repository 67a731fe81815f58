"""The nightly inbox: finding recordings, reading the CRM's calls.csv, staging results, quarantine."""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .pipeline import CallRecord

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
    in `skip` (quarantine, work) are left alone; everything else is probed and either processed
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
            if path.is_file():
                found.append(path)
    return sorted(found)


class RunInProgress(RuntimeError):
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
    """calls.csv keyed by file name; rows without a file name are reported, not fatal."""
    if path is None or not Path(path).is_file():
        return Metadata({}, ())
    rows, problems = {}, []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "file" not in reader.fieldnames:
            return Metadata({}, (f"{path}: no 'file' column; expected columns {', '.join(METADATA_COLUMNS)}",))
        for line, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip()
            if not name:
                problems.append(f"{path}:{line}: no file name, row ignored")
                continue
            rows[Path(name).name] = {k: (row.get(k) or "").strip() for k in METADATA_COLUMNS if row.get(k)}
    return Metadata(rows, tuple(problems))


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
