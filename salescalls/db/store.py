"""DuckDB storage: one writer, idempotent upserts keyed by the audio hash, read-only readers.

DuckDB allows one writing process per database file. The nightly flow is that writer (workers
return CallRecords, the flow stores them); dashboards and analysts open it read-only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from importlib import resources
from pathlib import Path

import duckdb

from salescalls import i18n
from salescalls.config import Settings
from salescalls.db import conversation
from salescalls.db.sql import execute, optional, transaction
from salescalls.errors import InputError
from salescalls.records import CallRecord, CallScore, ScoredUtterance
from salescalls.script.spec import Script

_CALL_COLUMNS = (
    "call_id, file, external_id, rep, started_at, duration, channels, sample_rate, codec, language, segment, "
    "campaign, crm_outcome, script_id, script_version, stage_model, whisper_model, diarization, role_method, "
    "role_confidence, run_id, processed_at, timings, scored_at, source, redacted, role_note"
)
_MIGRATION = re.compile(r"^-- migration (\d+): (.+)$", re.MULTILINE)
_UTTERANCE_COLUMNS = "call_id, idx, speaker, role, start_s, end_s, text, stage, confidence, backchannel"
_RESULT_COLUMNS = (
    "end_stage",
    "ended_by",
    "detected_outcome",
    "stages_reached",
    "stages_skipped",
    "out_of_order",
    "forbidden",
    "predicted_outcome",
    "outcome_confidence",
    "controlled",
)


# Data a migration's SQL cannot compute by itself, filled in the same transaction.
_AFTER_MIGRATION = {3: conversation.refresh, 9: conversation.refresh}


def migrations() -> list[tuple[int, str, str]]:
    """(version, title, sql) from schema.sql, in order."""
    text = resources.files("salescalls.db").joinpath("schema.sql").read_text(encoding="utf-8")
    marks = list(_MIGRATION.finditer(text))
    result = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        result.append((int(mark.group(1)), mark.group(2).strip(), text[mark.end() : end]))
    versions = [v for v, _, _ in result]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"schema.sql migrations must be numbered 1..n in order, found {versions}")
    return result


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection, until: int | None = None) -> int:
    """Apply pending migrations (up to `until`, default all); returns the schema version now in force."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, title VARCHAR, applied_at TIMESTAMP)"
    )
    current = schema_version(con)
    for version, title, sql in migrations():
        if version <= current or (until is not None and version > until):
            continue
        with transaction(con):
            con.execute(sql)
            if version in _AFTER_MIGRATION:
                _AFTER_MIGRATION[version](con)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, title, datetime.now()])
        current = version
    return current


def _config(memory: str | None) -> dict:
    """Connection settings: extensions load from the installed `duckdb-ext-fts` package, never a
    download; `memory` (Settings.db_memory) caps DuckDB's memory (it spills to disk beyond it)."""
    from salescalls.db.search import extension_directory

    directory = extension_directory()
    config = {"extension_directory": directory, "autoinstall_known_extensions": False} if directory else {}
    if memory:
        config["memory_limit"] = memory
    return config


class NotADatabase(InputError):
    """The file is there but is not a DuckDB database; the message names it and what to do."""


class NoDatabase(InputError, FileNotFoundError):
    """There is no database yet (or it is older than this salescalls, and readers never upgrade)."""


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting while another process holds it.

    DuckDB lets one process write, or several read, at a time. The nightly run and every CLI
    command hold their connection only for the statements they run, so a reader and the writer
    take turns: whoever finds the file locked waits (up to Settings.db_wait seconds) and retries.
    """
    settings = Settings.from_env()  # once per connection: the lock wait and the memory cap
    deadline = time.monotonic() + settings.db_wait
    config = _config(settings.db_memory)
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as error:
            if "not a valid DuckDB database" in str(error):
                raise NotADatabase(
                    i18n._(
                        "{path} is not a DuckDB database: point --db (or SALESCALLS_DB) at the salescalls database",
                        path=path,
                    )
                ) from None
            if "Could not set lock" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


@contextmanager
def writer(path: str | Path, migrate_first: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """The one read-write connection; creates and upgrades the database as needed (a caller that
    migrated it already, like a run's ledger, passes migrate_first=False)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False)
    try:
        if migrate_first:
            migrate(con)
        yield con
    finally:
        con.close()


def require_database(path: str | Path) -> Path:
    """The database file at `path`; NoDatabase, saying how to make one, when there is none."""
    path = Path(path)
    if not path.is_file():
        raise NoDatabase(i18n._("no database at {path}: run `salescalls run INBOX` first", path=path))
    return path


@contextmanager
def reader(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for analytics and reports; never writes, never migrates."""
    con = _connect(require_database(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def require_current_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Readers never migrate: an older database gets a clear instruction instead of an SQL error."""
    current, latest = schema_version(con), migrations()[-1][0]
    if current < latest:
        raise NoDatabase(
            i18n._(
                "the database has schema version {current}, this salescalls needs {latest}: "
                "run `salescalls rescore` (or the nightly run) once to upgrade it",
                current=current,
                latest=latest,
            )
        )


def known_call_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT call_id FROM calls").fetchall()}


def save_script(con: duckdb.DuckDBPyConnection, script: Script) -> None:
    rows = [[script.id, script.version, i, s.name, s.required, s.speaker] for i, s in enumerate(script.stages)]
    con.executemany("INSERT OR REPLACE INTO script_stages VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        "INSERT OR REPLACE INTO script_versions VALUES ($id, $version, $success)",
        {"id": script.id, "version": script.version, "success": list(script.success)},
    )


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def save_call(con: duckdb.DuckDBPyConnection, record: CallRecord, run_id: str | None = None) -> None:
    """Insert or replace one call with its utterances and results, atomically."""
    meta = record.metadata
    processed_at = datetime.now()
    with transaction(con):
        before = con.execute("SELECT rep FROM calls WHERE call_id = ?", [record.call_id]).fetchone()
        con.execute(
            f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}) VALUES ({', '.join('?' * 27)})",
            [
                record.call_id,
                record.file,
                meta.get("call_id"),
                meta.get("rep"),
                _timestamp(meta.get("started_at")) or processed_at,
                record.duration,
                record.channels,
                record.sample_rate,
                record.codec,
                record.language,
                meta.get("segment"),
                meta.get("campaign"),
                meta.get("crm_outcome"),
                record.script_id,
                record.script_version,
                record.stage_model,
                record.whisper_model,
                record.diarization,
                record.role_method,
                record.role_confidence,
                run_id,
                processed_at,
                json.dumps(record.timings),
                processed_at,
                record.source or None,
                record.redacted,
                record.role_note or None,
            ],
        )
        con.execute("DELETE FROM utterances WHERE call_id = ?", [record.call_id])
        con.execute("DELETE FROM call_results WHERE call_id = ?", [record.call_id])
        con.execute("DELETE FROM redactions WHERE call_id = ?", [record.call_id])
        if record.redactions:
            con.executemany(
                "INSERT INTO redactions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[record.call_id, r.idx, r.kind, r.start, r.end, r.start_s, r.end_s] for r in record.redactions],
            )
        if record.utterances:
            con.executemany(
                f"INSERT INTO utterances ({_UTTERANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [record.call_id, i, u.speaker, u.role, u.start, u.end, u.text, u.stage, u.confidence, u.backchannel]
                    for i, u in enumerate(record.utterances)
                ],
            )
        if record.embedding_model and record.embeddings:
            from salescalls.text import encoder

            save_embeddings(
                con,
                record.embedding_model,
                {
                    encoder.text_key(u.text): encoder.unpack(packed)
                    for u, packed in zip(record.utterances, record.embeddings, strict=False)
                    if packed
                },
            )
        _save_result(con, record.call_id, record.score)
        conversation.refresh(con, record.call_id)
        for rep in {meta.get("rep"), before[0] if before else None} - {None}:
            refresh_reps(con, rep)


def _result_row(call_id: str, score: CallScore) -> list:
    return [
        call_id,
        score.end_stage,
        score.ended_by,
        score.detected_outcome,
        list(score.stages_reached),
        list(score.stages_skipped),
        list(score.out_of_order),
        json.dumps([asdict(hit) for hit in score.forbidden], ensure_ascii=False),
        score.predicted_outcome,
        score.outcome_confidence,
        json.dumps([asdict(hit) for hit in score.controlled], ensure_ascii=False),
    ]


def _save_result(con: duckdb.DuckDBPyConnection, call_id: str, score: CallScore) -> None:
    """Upsert the call's score; its stored conversation metrics (which stages do not change) stay."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in ("call_no", *_RESULT_COLUMNS))
    row = _result_row(call_id, score)
    con.execute(
        f"INSERT INTO call_results (call_id, call_no, {', '.join(_RESULT_COLUMNS)}) "
        f"SELECT ?, call_no, {', '.join('?' * 10)} FROM calls WHERE call_id = ? "
        f"ON CONFLICT (call_id) DO UPDATE SET {updates}",
        [*row, call_id],
    )


def save_rescored(
    con: duckdb.DuckDBPyConnection,
    call_id: str,
    utterances: tuple[ScoredUtterance, ...],
    score: CallScore,
    stage_model: str,
    script: Script,
) -> None:
    """New stages for a stored call (after retraining), its words and speakers untouched."""
    save_rescored_many(con, [(call_id, utterances, score)], stage_model, script)


def save_rescored_many(
    con: duckdb.DuckDBPyConnection,
    calls: list[tuple[str, tuple[ScoredUtterance, ...], CallScore]],
    stage_model: str,
    script: Script,
) -> None:
    """save_rescored for many calls in one transaction: each table is updated by one statement
    joined to the new values, not one statement per utterance (rescoring 100,000 calls)."""
    import pandas as pd

    if not calls:
        return
    stages_frame = pd.DataFrame(
        [(call_id, i, u.stage, u.confidence) for call_id, utterances, _ in calls for i, u in enumerate(utterances)],
        columns=["call_id", "idx", "stage", "confidence"],
    ).astype({"call_id": "string", "idx": "int64", "stage": "string", "confidence": "float64"})
    # Every column typed here: DuckDB infers an object column's type from a sample of its rows, and
    # a sample of None (no predicted outcome yet) or of empty lists would then refuse the rest.
    lists = ("stages_reached", "stages_skipped", "out_of_order")
    rows = [_result_row(call_id, score) for call_id, _, score in calls]
    results_frame = pd.DataFrame(rows, columns=["call_id", *_RESULT_COLUMNS])
    for column in results_frame.columns:
        if column in lists:
            results_frame[column] = [json.dumps(v, ensure_ascii=False) for v in results_frame[column]]
        if column == "outcome_confidence":
            results_frame[column] = results_frame[column].astype("Float64")
        else:
            results_frame[column] = results_frame[column].astype("string")
    typed = ", ".join(f"from_json({c}, '[\"VARCHAR\"]') AS {c}" if c in lists else c for c in _RESULT_COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in ("call_no", *_RESULT_COLUMNS))
    now = datetime.now()
    with transaction(con):
        con.register("rescored_stages", stages_frame)
        con.register("rescored_results", results_frame)
        try:
            con.execute(
                "UPDATE utterances SET stage = r.stage, confidence = r.confidence FROM rescored_stages r "
                "WHERE utterances.call_id = r.call_id AND utterances.idx = r.idx"
            )
            con.execute(
                f"INSERT INTO call_results (call_id, call_no, {', '.join(_RESULT_COLUMNS)}) "
                f"SELECT r.call_id, c.call_no, {', '.join('r.' + n for n in _RESULT_COLUMNS)} "
                f"FROM (SELECT call_id, {typed} FROM rescored_results) r JOIN calls c USING (call_id) "
                f"ON CONFLICT (call_id) DO UPDATE SET {updates}"
            )
            execute(
                con,
                "UPDATE calls SET stage_model = $model, script_id = $script, script_version = $version, "
                "scored_at = $now FROM (SELECT DISTINCT call_id FROM rescored_results) r "
                "WHERE calls.call_id = r.call_id",
                model=stage_model,
                script=script.id,
                version=script.version,
                now=now,
            )
        finally:
            con.unregister("rescored_stages")
            con.unregister("rescored_results")


def refresh_reps(con: duckdb.DuckDBPyConnection, rep: str | None = None) -> None:
    """Bring the reps table in line with the stored calls: one rep, or all when rep is None."""
    execute(con, f"DELETE FROM reps WHERE {optional('rep', 'rep')}", rep=rep)
    execute(
        con,
        "INSERT INTO reps SELECT rep, min(started_at), max(started_at), count(*), now() FROM calls "
        f"WHERE rep IS NOT NULL AND {optional('rep', 'rep')} GROUP BY rep",
        rep=rep,
    )


def save_embeddings(con: duckdb.DuckDBPyConnection, encoder_name: str, vectors: dict) -> int:
    """Keep sentence vectors (text key -> vector) for rescoring and retraining; known ones stay."""
    import numpy as np

    if not vectors:
        return 0
    rows = [[encoder_name, key, np.asarray(v, dtype="<f2").tobytes()] for key, v in vectors.items()]
    con.executemany("INSERT OR IGNORE INTO text_embeddings VALUES (?, ?, ?)", rows)
    return len(rows)


def load_embeddings(con: duckdb.DuckDBPyConnection, encoder_name: str, keys: list[str]) -> dict:
    """The stored vectors of these text keys (those known), as float32 arrays."""
    import numpy as np

    if not keys:
        return {}
    found = con.execute(
        "SELECT text_key, vector FROM text_embeddings WHERE encoder = ? AND text_key IN (SELECT unnest(?::VARCHAR[]))",
        [encoder_name, sorted(set(keys))],
    ).fetchall()
    return {key: np.frombuffer(blob, dtype="<f2").astype(np.float32) for key, blob in found}


def stored_utterances_of(con: duckdb.DuckDBPyConnection, call_ids: list[str]) -> dict[str, list[ScoredUtterance]]:
    """Every listed call's utterances in order, read in one query."""
    found: dict[str, list[ScoredUtterance]] = {call_id: [] for call_id in call_ids}
    rows = con.execute(
        "SELECT call_id, speaker, role, start_s, end_s, text, stage, confidence, backchannel FROM utterances "
        "WHERE call_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY call_id, idx",
        [list(call_ids)],
    ).fetchall()
    for call_id, *row in rows:
        found[call_id].append(ScoredUtterance(*row))
    return found


def stored_utterances(con: duckdb.DuckDBPyConnection, call_id: str) -> list[ScoredUtterance]:
    return stored_utterances_of(con, [call_id])[call_id]
