"""The QA loop: review the least confident stages, import people's labels, retrain, rescore.

    salescalls review -o review.csv      # the utterances the model is least sure of
    (fill the `label` column in a spreadsheet or labelling tool)
    salescalls labels import review.csv  # store the corrections
    salescalls train                     # a new stage-model version from script + labels (salescalls.learning.training)
    salescalls rescore                   # stored calls get the new model's stages, no re-transcribing

Labels are stored in the database (`labels`), keyed by call and utterance, with the text they
were given for; training uses every labelled call of the script, with its unlabelled
utterances as context.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from salescalls import i18n
from salescalls.db import store
from salescalls.errors import InputError
from salescalls.pipeline import label_stages_many
from salescalls.script import stage_versions
from salescalls.script.spec import OFF_SCRIPT, Script

REVIEW_COLUMNS = (
    "call_id",
    "file",
    "idx",
    "start",
    "end",
    "role",
    "text",
    "stage",
    "confidence",
    "call_confidence",
    "label",
)


def review_rows(con: duckdb.DuckDBPyConnection, limit: int = 50, script_id: str | None = None) -> list[dict]:
    """The least confident utterances (back-channels aside), each with its call's mean confidence."""
    rows = con.execute(
        """
        WITH spoken AS (
            SELECT u.*, c.file, c.script_id,
                   avg(u.confidence) OVER (PARTITION BY u.call_id) AS call_confidence
            FROM utterances u JOIN calls c USING (call_id)
            WHERE NOT u.backchannel AND (? IS NULL OR c.script_id = ?)
        )
        SELECT s.call_id, s.file, s.idx, s.start_s, s.end_s, s.role, s.text, s.stage, s.confidence,
               s.call_confidence, coalesce(l.stage, '') AS label
        FROM spoken s LEFT JOIN labels l USING (call_id, idx)
        WHERE l.stage IS NULL
        ORDER BY s.confidence, s.call_id, s.idx
        LIMIT ?
        """,
        [script_id, script_id, limit],
    ).fetchall()
    return [dict(zip(REVIEW_COLUMNS, row, strict=True)) for row in rows]


def review_calls(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict]:
    """The calls whose stages the model is least sure of on average."""
    rows = con.execute(
        """
        SELECT c.call_id, c.file, c.rep, round(avg(u.confidence), 4) AS mean_confidence,
               round(min(u.confidence), 4) AS lowest, count(*) AS utterances, c.stage_model
        FROM calls c JOIN utterances u USING (call_id)
        WHERE NOT u.backchannel
        GROUP BY ALL ORDER BY mean_confidence, c.call_id LIMIT ?
        """,
        [limit],
    ).fetchall()
    names = ("call_id", "file", "rep", "mean_confidence", "lowest", "utterances", "stage_model")
    return [dict(zip(names, row, strict=True)) for row in rows]


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


@dataclass(frozen=True)
class ImportResult:
    stored: int  # labels written (new or changed)
    skipped: int  # rows with an empty label
    errors: tuple[str, ...]  # one line per rejected row: where and why


LABEL_COLUMNS = ("call_id", "idx", "label")  # what a review file's rows need


def read_label_file(path: Path) -> list[dict]:
    """Rows of a review file with labels filled in: CSV (with a header) or JSON (a list of objects)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        rows = data.get("utterances", data) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise InputError(i18n._("{path}: expected a list of labelled utterances", path=path))
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    columns = list(rows[0]) if rows and isinstance(rows[0], dict) else []
    missing = [name for name in LABEL_COLUMNS if name not in columns]
    if missing:
        raise InputError(
            i18n._(
                "no {missing} column (it has: {columns}); a review file from `salescalls review` has call_id, "
                "idx and label",
                missing=", ".join(missing),
                columns=", ".join(map(str, columns)) or i18n._("no rows"),
            )
        )
    return rows


def import_labels(
    con: duckdb.DuckDBPyConnection, rows: list[dict], source: str, labelled_by: str | None = None
) -> ImportResult:
    """Store every row that names a stored utterance and a stage of its call's script."""
    stages_of = {}
    for script_id, version, stage in con.execute(
        "SELECT script_id, script_version, stage FROM script_stages"
    ).fetchall():
        stages_of.setdefault((script_id, version), set()).add(stage)
    stored = skipped = 0
    errors = []
    now = datetime.now()
    for number, row in enumerate(rows, start=2):  # line 1 of a CSV is the header
        where = f"{source}:{number}"
        label = str(row.get("label") or "").strip()
        if not label:
            skipped += 1
            continue
        try:
            call_id, idx = str(row["call_id"]).strip(), int(row["idx"])
        except (KeyError, TypeError, ValueError):
            errors.append(f"{where}: needs call_id and a whole-number idx")
            continue
        found = con.execute(
            "SELECT u.text, c.script_id, c.script_version FROM utterances u JOIN calls c USING (call_id) "
            "WHERE u.call_id = ? AND u.idx = ?",
            [call_id, idx],
        ).fetchone()
        if found is None:
            errors.append(f"{where}: no utterance {idx} in call {call_id[:12]}")
            continue
        text, script_id, version = found
        allowed = stages_of.get((script_id, version), set()) | {OFF_SCRIPT}
        if label not in allowed:
            errors.append(f"{where}: '{label}' is not a stage of {script_id} v{version} ({', '.join(sorted(allowed))})")
            continue
        con.execute(
            "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
            [call_id, idx, label, text, labelled_by, now, source],
        )
        stored += 1
    return ImportResult(stored, skipped, tuple(errors))


def use_stored_vectors(
    con: duckdb.DuckDBPyConnection, encoder_name: str | None, texts: list[str], keep: bool = True
) -> int:
    """Make the sentence vectors of these texts known to the encoder's cache: read the stored
    ones, encode only the rest and (with `keep`, on a writer) store those, so no unchanged text is
    ever encoded twice. Returns how many texts had to be encoded."""
    if not encoder_name:
        return 0
    from salescalls.text import encoder

    cache = encoder.shared_cache(encoder_name)
    unknown = cache.unknown(texts)
    if unknown:
        cache.add(store.load_embeddings(con, cache.encoder.name, list(unknown)))
        unknown = cache.unknown(unknown.values())
    if unknown:
        vectors = cache.encode(list(unknown.values()))
        if keep:
            store.save_embeddings(con, cache.encoder.name, dict(zip(unknown, vectors, strict=True)))
    return len(unknown)


RESCORE_BATCH = 2000  # calls read, labelled and written at once by rescore


def rescore(
    con: duckdb.DuckDBPyConnection, script: Script, models_dir: Path, progress=None, batch: int = RESCORE_BATCH
) -> tuple[int, str]:
    """Give every stored call of the script the current model's stages; returns (calls, model name).

    Calls go in batches: their utterances read in one query, their sentence vectors looked up
    among the stored ones (only new texts are encoded), one classifier pass over the batch, and
    one update per table, so the cost per call stays flat however many calls there are."""
    model = stage_versions.load_model(models_dir, script)
    call_ids = con.execute(
        "SELECT call_id, language FROM calls WHERE script_id = ? ORDER BY call_id", [script.id]
    ).fetchall()
    for first in range(0, len(call_ids), batch):
        chunk = call_ids[first : first + batch]
        utterances = store.stored_utterances_of(con, [call_id for call_id, _ in chunk])
        use_stored_vectors(con, model.classifier.encoder, [u.text for call_id, _ in chunk for u in utterances[call_id]])
        results = label_stages_many([(utterances[call_id], language) for call_id, language in chunk], script, model)
        store.save_rescored_many(
            con,
            [(call_id, scored, score) for (call_id, _), (scored, score) in zip(chunk, results, strict=True)],
            model.name,
            script,
        )
        if progress:
            progress(first + len(chunk), len(call_ids))
    return len(call_ids), model.name
