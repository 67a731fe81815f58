"""Every table as Parquet (zstd), for a BI tool or pandas; call tables only for calls in a date range."""

from __future__ import annotations

from pathlib import Path

import duckdb

from salescalls.db.sql import CallFilter, execute

# What `export` writes: table -> its query; tables with {calls} are limited to the calls in the date range.
_EXPORTED = {
    "calls": "SELECT * FROM calls c WHERE {calls}",
    "call_results": "SELECT r.* FROM call_results r JOIN calls c USING (call_id) WHERE {calls}",
    "utterances": "SELECT u.* FROM utterances u JOIN calls c USING (call_id) WHERE {calls} ORDER BY u.call_id, u.idx",
    "labels": "SELECT l.* FROM labels l JOIN calls c USING (call_id) WHERE {calls}",
    "redactions": "SELECT x.* FROM redactions x JOIN calls c USING (call_id) WHERE {calls}",
    "script_stages": "SELECT * FROM script_stages",
    "reps": "SELECT * FROM reps",
    "runs": "SELECT * FROM runs",
    "quarantine": "SELECT * FROM quarantine",
}


_EXPORT_FILTER = CallFilter.SQL


def export_parquet(
    con: duckdb.DuckDBPyConnection, folder: str | Path, since: str | None = None, until: str | None = None
) -> dict[str, int]:
    """Every table as `<folder>/<table>.parquet` (zstd); call tables only for calls from `since` to
    `until` (both days included). Returns rows written per table."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for table, query in _EXPORTED.items():
        sql = query.format(calls=_EXPORT_FILTER)
        target = str(folder / f"{table}.parquet").replace("'", "''")  # a path cannot be a parameter in COPY
        copy = f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        copied = execute(con, copy, calls=CallFilter(since=since, until=until))
        written[table] = copied.fetchone()[0]
    return written
