"""One nightly run's bookkeeping: its counters and problems, what the workers said about
themselves, and every write the run makes to the database (the flow is the one writer).

The flow asks the ledger to start the run, record an attempt, store a staged result, set a
recording aside, and finish; the ledger keeps the counts that the run's row, its summary and the
flow's return value are made of, so a run that fails part-way still records what it did. The
database is migrated once when the run starts; every later write opens a short connection (a
reader can take its turn in between) without checking the schema again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from salescalls.config import Settings
from salescalls.db import runlog, store
from salescalls.nightly import engine, inbox
from salescalls.records import CallRecord
from salescalls.script.spec import Script

__all__ = ["KILLS_BEFORE_SETTING_ASIDE", "RunLedger", "killed_the_run", "one_line", "problem_kind"]

COUNTERS = ("files_seen", "calls_added", "calls_skipped", "quarantined", "files_waiting")
KILLS_BEFORE_SETTING_ASIDE = 2  # runs killed while a recording was in flight: then it is the likely cause


def one_line(error: BaseException) -> str:
    """An error as one short line: its type and message."""
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text[:300]}"


def problem_kind(reason: str) -> str:
    """A quarantine reason's kind for the run's error tally: the words before the detail."""
    return reason.split(":", 1)[0].split("(", 1)[0].strip() or "unknown"


def killed_the_run(runs: int) -> str:
    return (
        f"killed the run: {runs} runs stopped while analysing this recording (a crash, or out of memory); "
        "set aside so the other calls go on"
    )


@dataclass
class RunLedger:
    settings: Settings  # where the database, quarantine and work folders are
    run_id: str  # this run's id in `runs`
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))  # the run's counters
    problems: Counter[str] = field(default_factory=Counter)  # quarantine reasons by kind (and CRM problems)
    reports: dict[str, dict] = field(default_factory=dict)  # worker -> its latest report (models loaded, memory)
    memory: list[dict] = field(default_factory=list)  # after each call: the worker's resident and peak memory
    killed: dict[str, tuple[int, str]] = field(default_factory=dict)  # call_id -> (runs killed in flight, file)

    def _writer(self):
        return store.writer(self.settings.database, migrate_first=False)

    def start(self, inbox_dir: Path, script: Script) -> list[str]:
        """Record the run as started (migrating the database first) and the script it scores
        against; returns the ids of earlier runs that never finished (marked interrupted)."""
        with store.writer(self.settings.database) as con:
            stale = runlog.interrupt_stale_runs(con)
            self.killed = runlog.killed_attempts(con)
            runlog.start_run(con, self.run_id, str(inbox_dir))
            store.save_script(con, script)
        return stale

    def refused(self, inbox_dir: Path, error: BaseException) -> None:
        """A run that could not start (its script is unusable): recorded as failed with the reason,
        so `salescalls runs` and a monitor see it."""
        with store.writer(self.settings.database) as con:
            runlog.start_run(con, self.run_id, str(inbox_dir))
            runlog.finish_run(con, self.run_id, "failed", message=one_line(error), **self.counts)

    def known_calls(self) -> set[str]:
        with self._writer() as con:
            return store.known_call_ids(con)

    def runs_killed_by(self, call_id: str) -> int:
        return self.killed.get(call_id, (0, ""))[0]

    def attempt(self, call_id: str, path: str) -> None:
        """A call goes to a worker: a run killed now knows what was in flight."""
        with self._writer() as con:
            runlog.start_attempt(con, call_id, path, self.run_id)

    def store_staged(self, staged: Path) -> CallRecord:
        """Store a worker's staged result, end its attempt, remove the staged file, count it."""
        record = CallRecord.from_json(staged.read_text(encoding="utf-8"))
        with self._writer() as con:
            store.save_call(con, record, self.run_id)
            runlog.end_attempt(con, record.call_id)
        staged.unlink()
        self.counts["calls_added"] += 1
        return record

    def set_aside(self, path: str | Path, call_id: str | None, reason: str) -> None:
        """Quarantine a file with its reason: moved out of the inbox, a row in `quarantine`, counted."""
        moved = inbox.quarantine(path, self.settings.quarantine_dir, reason, self.run_id, call_id)
        with self._writer() as con:
            runlog.save_quarantine(con, str(path), call_id, reason, self.run_id, str(moved))
            if call_id:
                runlog.end_attempt(con, call_id)  # put back in the inbox, it gets a fresh try
        self.counts["quarantined"] += 1
        self.problems[problem_kind(reason)] += 1

    def worker_said(self, result: dict, done: int) -> None:
        """Keep what a worker reported about itself with a call's result."""
        if "worker" in result:
            self.reports[result["worker"]] = result
            self.memory.append({key: result[key] for key in ("worker", "rss_mb", "peak_rss_mb")} | {"call": done})

    def usage(self, run_engine: engine.Engine) -> dict:
        """The run's resource columns from what the workers reported."""
        writer_peak = engine.memory_mb()[1]
        reports = self.reports.values()
        return {
            "engine": run_engine.name,
            "workers": len(self.reports),
            "models_loaded": max((r["models_loaded"] for r in reports), default=0),
            "peak_rss_mb": max([writer_peak, *(r["peak_rss_mb"] for r in reports)]),
        }

    def failed(self, error: BaseException, run_engine: engine.Engine) -> None:
        """The run stopped: record it failed with its reason; its calls in flight did not kill it."""
        with self._writer() as con:
            runlog.forget_attempts(con, self.run_id)
            runlog.finish_run(
                con,
                self.run_id,
                "failed",
                message=one_line(error),
                errors=dict(self.problems),
                **self.counts,
                **self.usage(run_engine),
            )

    def completed(self, run_engine: engine.Engine) -> None:
        with self._writer() as con:
            runlog.finish_run(
                con, self.run_id, "completed", errors=dict(self.problems), **self.counts, **self.usage(run_engine)
            )

    def problems_line(self) -> str:
        problems = self.problems
        return f" ({', '.join(f'{kind}: {n}' for kind, n in sorted(problems.items()))})" if problems else ""
