"""The run log: each nightly run's row (started, finished, what it found and did), each call's
attempts (so a call that killed its worker twice is quarantined, not retried for ever) and the
quarantine's rows. Called through the one writer; readers list the recent runs."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, inbox: str) -> None:
    con.execute(
        "INSERT INTO runs (run_id, started_at, inbox, status) VALUES (?, ?, ?, 'running')",
        [run_id, datetime.now(), inbox],
    )


def interrupt_stale_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Mark runs still 'running' as interrupted (call only while holding the run lock: then no other
    run is alive); returns their ids."""
    stale = [row[0] for row in con.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()]
    con.execute(
        "UPDATE runs SET status = 'interrupted', message = 'stopped before it finished (killed or crashed)' "
        "WHERE status = 'running'"
    )
    return stale


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    files_seen: int,
    calls_added: int,
    calls_skipped: int,
    quarantined: int,
    message: str | None = None,
    files_waiting: int = 0,
    errors: dict[str, int] | None = None,
    engine: str | None = None,
    workers: int | None = None,
    models_loaded: int | None = None,
    peak_rss_mb: float | None = None,
) -> None:
    """Close a run with what it did, what went wrong (`errors`: kind -> count) and what it used."""
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, files_seen = ?, calls_added = ?, calls_skipped = ?, "
        "quarantined = ?, message = ?, files_waiting = ?, errors = ?, engine = ?, workers = ?, "
        "models_loaded = ?, peak_rss_mb = ? WHERE run_id = ?",
        [
            datetime.now(),
            status,
            files_seen,
            calls_added,
            calls_skipped,
            quarantined,
            message,
            files_waiting,
            json.dumps(errors or {}, ensure_ascii=False, sort_keys=True),
            engine,
            workers,
            models_loaded,
            peak_rss_mb,
            run_id,
        ],
    )


def start_attempt(con: duckdb.DuckDBPyConnection, call_id: str, file: str, run_id: str) -> None:
    """Note a call sent to a worker; `end_attempt` removes the note once it is stored or quarantined."""
    con.execute("INSERT INTO attempts VALUES (?, ?, ?, ?)", [call_id, file, run_id, datetime.now()])


def end_attempt(con: duckdb.DuckDBPyConnection, call_id: str) -> None:
    con.execute("DELETE FROM attempts WHERE call_id = ?", [call_id])


def forget_attempts(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Drop a run's notes when it stops by itself (an error, Ctrl-C): its calls did not kill it."""
    con.execute("DELETE FROM attempts WHERE run_id = ?", [run_id])


def killed_attempts(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    """Calls that were in flight when a run was killed: call_id -> (how many runs, the last file).
    Call after `interrupt_stale_runs`; a run still working never counts."""
    rows = con.execute(
        "SELECT a.call_id, count(DISTINCT a.run_id), arg_max(a.file, a.started_at) FROM attempts a "
        "JOIN runs r USING (run_id) WHERE r.status = 'interrupted' GROUP BY a.call_id"
    ).fetchall()
    return {call_id: (runs, file) for call_id, runs, file in rows}


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 10):
    """The latest runs, newest first, with their length in minutes."""
    return con.execute(
        "SELECT run_id, started_at, finished_at, date_diff('second', started_at, finished_at) / 60 AS minutes, "
        "status, inbox, files_seen, calls_added, calls_skipped, quarantined, files_waiting, errors, engine, "
        "workers, models_loaded, peak_rss_mb, message FROM runs ORDER BY started_at DESC LIMIT ?",
        [limit],
    ).df()


def save_quarantine(
    con: duckdb.DuckDBPyConnection,
    file: str,
    content_hash: str | None,
    reason: str,
    run_id: str | None,
    moved_to: str | None,
) -> None:
    con.execute(
        "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
        [file, content_hash, reason, datetime.now(), run_id, moved_to],
    )
