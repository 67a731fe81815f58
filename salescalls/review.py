"""The QA loop: review the least confident stages, import people's labels, retrain, rescore.

    salescalls review -o review.csv      # the utterances the model is least sure of
    (fill the `label` column in a spreadsheet or labelling tool)
    salescalls labels import review.csv  # store the corrections
    salescalls train                     # a new stage-model version from script + labels
    salescalls rescore                   # stored calls get the new model's stages, no re-transcribing

Labels are stored in the database (`labels`), keyed by call and utterance, with the text they
were given for; training uses every labelled call of the script, with its unlabelled
utterances as context.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np

from . import outcomes, stages, store
from .pipeline import label_stages
from .script import OFF_SCRIPT, Script

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


def read_label_file(path: Path) -> list[dict]:
    """Rows of a review file with labels filled in: CSV (with a header) or JSON (a list of objects)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        rows = data.get("utterances", data) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a list of labelled utterances")
        return rows
    return list(csv.DictReader(io.StringIO(text)))


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


def labelled_calls(con: duckdb.DuckDBPyConnection, script_id: str) -> list[stages.LabelledCall]:
    """Every call of the script with at least one label: all its utterances, labels where given."""
    labelled = con.execute(
        "SELECT DISTINCT c.call_id, c.language FROM calls c JOIN labels l USING (call_id) WHERE c.script_id = ? "
        "ORDER BY c.call_id",
        [script_id],
    ).fetchall()
    calls = []
    for call_id, language in labelled:
        rows = con.execute(
            "SELECT u.text, u.role, l.stage FROM utterances u LEFT JOIN labels l USING (call_id, idx) "
            "WHERE u.call_id = ? ORDER BY u.idx",
            [call_id],
        ).fetchall()
        calls.append(
            stages.LabelledCall(
                texts=tuple(r[0] for r in rows),
                roles=tuple(r[1] for r in rows),
                stages=tuple(r[2] if r[2] != OFF_SCRIPT else None for r in rows),
                language=language,
            )
        )
    return calls


def cross_validate(script: Script, calls: list[stages.LabelledCall], folds: int = 5, seed: int = 0) -> dict | None:
    """Accuracy on held-out labelled calls (k-fold over calls), cold start beside it."""
    if len(calls) < 2:
        return None
    from sklearn.model_selection import KFold

    folds = min(folds, len(calls))
    right = {"trained": 0, "cold_start": 0}
    total = 0
    cold = stages.train_from_script(script)
    for train_index, test_index in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(calls))):
        model = stages.train(script, [calls[i] for i in train_index])
        for i in test_index:
            call = calls[i]
            for name, m in (("trained", model), ("cold_start", cold)):
                predicted = [x.stage for x in m.label(list(call.texts), list(call.roles), language=call.language)]
                right[name] += sum(p == s for p, s in zip(predicted, call.stages, strict=True) if s is not None)
            total += sum(s is not None for s in call.stages)
    return {f"{name}_accuracy": round(count / total, 4) for name, count in right.items()} | {"folds": folds}


MIN_OUTCOME_CALLS = 10  # stored calls with a CRM outcome needed to train the outcome model


def calls_with_outcomes(con: duckdb.DuckDBPyConnection, script_id: str) -> tuple[list[outcomes.CallEnd], list[str]]:
    """Every stored call of the script whose CRM outcome is known, as the outcome model sees it."""
    rows = con.execute(
        "SELECT c.call_id, c.language, c.crm_outcome, r.end_stage, r.ended_by FROM calls c "
        "JOIN call_results r USING (call_id) WHERE c.script_id = ? AND c.crm_outcome IS NOT NULL "
        "AND c.crm_outcome <> '' ORDER BY c.call_id",
        [script_id],
    ).fetchall()
    ends, known = [], []
    for call_id, language, crm_outcome, end_stage, ended_by in rows:
        ends.append(outcomes.call_end(store.stored_utterances(con, call_id), end_stage, ended_by, language))
        known.append(crm_outcome)
    return ends, known


def cross_validate_outcomes(ends: list[outcomes.CallEnd], known: list[str], folds: int = 5, seed: int = 0) -> dict:
    """Held-out accuracy of the outcome model (k-fold over calls) next to always guessing the most common."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(known)
    folds = max(2, min(folds, min(Counter(known).values())))
    right = majority_right = 0
    for train_index, test_index in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        if len(set(y[train_index])) < 2:
            continue
        model = outcomes.OutcomeClassifier().fit([ends[i] for i in train_index], y[train_index])
        right += int((model.predict([ends[i] for i in test_index]) == y[test_index]).sum())
        common = Counter(y[train_index]).most_common(1)[0][0]
        majority_right += int((y[test_index] == common).sum())
    return {
        "calls": len(known),
        "folds": folds,
        "accuracy": round(right / len(known), 4),
        "majority_baseline_accuracy": round(majority_right / len(known), 4),
    }


def train_from_labels(con: duckdb.DuckDBPyConnection, script: Script, models_dir: Path) -> tuple[Path, dict]:
    """Train a new model version from the script and every labelled call; returns (folder, sidecar training)."""
    calls = labelled_calls(con, script.id)
    if not calls:
        raise ValueError(f"no labelled calls for script {script.id}: import labels first (salescalls labels import)")
    model = stages.train(script, calls)
    ends, known_outcomes = calls_with_outcomes(con, script.id)
    outcome_metrics = None
    if len(ends) >= MIN_OUTCOME_CALLS and len(set(known_outcomes)) >= 2:
        outcome_metrics = cross_validate_outcomes(ends, known_outcomes)
        model.outcome_model = outcomes.OutcomeClassifier().fit(ends, known_outcomes)
    digest = hashlib.sha256(
        json.dumps([[c.texts, c.roles, c.stages] for c in calls], ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    training = {
        "labelled_calls": len(calls),
        "labelled_utterances": sum(s is not None for c in calls for s in c.stages),
        "script_examples": len(stages.script_training_data(script)[1]),
        "script_sha256": script.sha256,
        "data_sha256": digest,
        "cross_validation": cross_validate(script, calls),
        "outcome_model": outcome_metrics or f"not trained: needs {MIN_OUTCOME_CALLS} calls with 2+ CRM outcomes",
    }
    return stages.save_model(model, models_dir, training), training


def rescore(con: duckdb.DuckDBPyConnection, script: Script, models_dir: Path, progress=None) -> tuple[int, str]:
    """Give every stored call of the script the current model's stages; returns (calls, model name)."""
    model = stages.load_model(models_dir, script)
    call_ids = con.execute(
        "SELECT call_id, language FROM calls WHERE script_id = ? ORDER BY call_id", [script.id]
    ).fetchall()
    for n, (call_id, language) in enumerate(call_ids, 1):
        utterances = store.stored_utterances(con, call_id)
        scored, score = label_stages(utterances, script, model, language)
        store.save_rescored(con, call_id, scored, score, model.name, script)
        if progress:
            progress(n, len(call_ids))
    return len(call_ids), model.name
