"""Training a new stage model from people's labels, promoted only when it measures at least as well.

    salescalls train        # candidate from script + labels, compared with the active model
    salescalls adapt        # the same plus the stored calls' surest utterances as examples (no labels needed)
    salescalls models stages    # every version with what it measured; which one is active
    salescalls models use 2     # a person chooses (0: back to the cold start)

Labels come from stored calls (`labels`, the review loop) and from imported labelled transcripts
(`labelled_turns`, salescalls.learning.corpus). The candidate and the active model are compared on the
same held-out labels: k-fold over labelled calls (over the labelled utterances of the one call
when there is only one). For each fold both are rebuilt from that fold's training part only,
the active one from the labelled calls it was trained on (none: the cold start), so neither is
scored on an utterance it learned. The candidate becomes active only when its held-out accuracy
is at least the active model's; otherwise it is kept as a saved version, not used, and `train`
says why with both numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np

from salescalls import i18n
from salescalls.db import store
from salescalls.errors import InputError
from salescalls.learning import corpus
from salescalls.learning.review import use_stored_vectors
from salescalls.script import adapt, outcomes, stage_versions, stages
from salescalls.script.classifier import Context
from salescalls.script.spec import OFF_SCRIPT, Script

MIN_OUTCOME_CALLS = 10  # stored calls with a CRM outcome needed to train the outcome model
FOLDS = 5


def labelled_calls(con: duckdb.DuckDBPyConnection, script_id: str) -> list[stages.LabelledCall]:
    """Every labelled call of the script: stored calls with people's labels (all their utterances,
    labels where given), then imported labelled transcripts."""
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
                call_id=call_id,
            )
        )
    return calls + corpus.corpus_calls(con, script_id)


def _score(model: stages.StageModel, call: stages.LabelledCall, scored: list[int]) -> int:
    labels = model.label(list(call.texts), list(call.roles), language=call.language)
    return sum(labels[i].stage == call.stages[i] for i in scored)


def _folds(calls: list[stages.LabelledCall], seed: int):
    """(training calls, [(test call, indices to score)]) per fold: over calls, or over the labelled
    utterances of a single call (its other labels train, the held-out ones are hidden)."""
    from sklearn.model_selection import KFold

    if len(calls) >= 2:
        splitter = KFold(min(FOLDS, len(calls)), shuffle=True, random_state=seed)
        for train_index, test_index in splitter.split(np.arange(len(calls))):
            tests = [(calls[i], [k for k, s in enumerate(calls[i].stages) if s is not None]) for i in test_index]
            yield [calls[i] for i in train_index], tests
        return
    (call,) = calls
    labelled = np.array([k for k, s in enumerate(call.stages) if s is not None])
    if len(labelled) < 2:
        return
    splitter = KFold(min(FOLDS, len(labelled)), shuffle=True, random_state=seed)
    for _, test_index in splitter.split(labelled):
        hidden = set(labelled[test_index].tolist())
        masked = replace(call, stages=tuple(None if k in hidden else s for k, s in enumerate(call.stages)))
        yield [masked], [(call, sorted(hidden))]


def held_out_comparison(
    script: Script,
    calls: list[stages.LabelledCall],
    current_calls: set[str] | None,
    seed: int = 0,
    examples: list = (),
    current_examples: list = (),
) -> dict | None:
    """Held-out accuracy of the candidate (trained on every labelled call, and on `examples`, the
    stored calls' surest utterances when adapting) and of the active model (the cold start when
    `current_calls` is None, else trained on those calls, and on `current_examples` if it was
    adapted), on the same labels."""
    cold = stages.train_from_script(script)
    adapted = stages.train(script, [], examples=list(current_examples)) if current_examples else cold
    right = {"candidate": 0, "current": 0}
    total = folds = 0
    for training, tests in _folds(calls, seed):
        folds += 1
        candidate = stages.train(script, training, examples=list(examples))
        known = [c for c in training if current_calls is not None and c.call_id in current_calls]
        current = stages.train(script, known, examples=list(current_examples)) if known else adapted
        for call, scored in tests:
            right["candidate"] += _score(candidate, call, scored)
            right["current"] += _score(current, call, scored)
            total += len(scored)
    if not total:
        return None
    return {
        "folds": folds,
        "over": "calls" if len(calls) >= 2 else "utterances of the one labelled call",
        "held_out_utterances": total,
        "candidate_accuracy": round(right["candidate"] / total, 4),
        "current_accuracy": round(right["current"] / total, 4),
    }


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


def _current(models_dir: Path, script: Script) -> tuple[int, str, set[str] | None, list]:
    """The active model's version, name, the labelled calls it was trained on (None: cold start)
    and the examples an adaptation gave it."""
    model = stage_versions.load_model(models_dir, script)
    version = next(row["version"] for row in stage_versions.versions(models_dir, script) if row["active"])
    if version == stage_versions.COLD_START:
        return version, model.name, None, []
    training = stage_versions.sidecar(models_dir, script.id, version).get("training", {})
    adaptation = training.get("adaptation") or {}
    examples = [(Context(text, role, language), stage) for text, role, language, stage in adaptation.get("taken", [])]
    return version, model.name, set(training.get("call_ids", [])), examples


def train_from_labels(con: duckdb.DuckDBPyConnection, script: Script, models_dir: Path) -> tuple[Path, dict]:
    """Train a candidate from the script and every labelled call, save it as the next version, and
    make it active only when it measures at least as well as the active model.

    Returns (its folder, the sidecar's training record: data, comparison, promoted, verdict).
    """
    calls = labelled_calls(con, script.id)
    if not calls:
        raise InputError(
            i18n._(
                "no labelled calls for script {script}: import labels first (salescalls labels import)",
                script=script.id,
            )
        )
    use_stored_vectors(con, stages.default_encoder(), [t for c in calls for t in c.texts], keep=False)
    return _save_candidate(con, script, models_dir, calls)


def adapt_to_stored_calls(con: duckdb.DuckDBPyConnection, script: Script, models_dir: Path) -> tuple[Path, dict]:
    """A candidate from the script, the cold start's surest utterances of every stored call of the
    script (salescalls.script.adapt) and any labels; saved as the next version.

    With labels it is promoted only when it measures at least as well on held-out ones, as in
    `train`. Without labels it cannot be measured, so it is saved but not used: a person labels a
    review round (then `adapt` measures it) or chooses it with `salescalls models use`.
    """
    rows = con.execute(
        "SELECT call_id, language FROM calls WHERE script_id = $script ORDER BY call_id", {"script": script.id}
    ).fetchall()
    if len(rows) < adapt.MIN_ADAPT_CALLS:
        raise InputError(
            i18n._(
                "{n} stored calls of script {script}: adapting needs at least {minimum} (store more calls first)",
                n=len(rows),
                script=script.id,
                minimum=adapt.MIN_ADAPT_CALLS,
            )
        )
    stored = store.stored_utterances_of(con, [call_id for call_id, _ in rows])
    unlabelled = [
        adapt.UnlabelledCall(
            tuple(u.text for u in stored[call_id]),
            tuple(u.role for u in stored[call_id]),
            language,
            tuple(not u.backchannel for u in stored[call_id]),
        )
        for call_id, language in rows
    ]
    calls = labelled_calls(con, script.id)
    texts = [t for c in unlabelled for t in c.texts] + [t for c in calls for t in c.texts]
    use_stored_vectors(con, stages.default_encoder(), texts, keep=False)
    examples, adaptation = adapt.confident_examples(stages.train_from_script(script), unlabelled)
    return _save_candidate(con, script, models_dir, calls, examples, adaptation)


def _save_candidate(
    con: duckdb.DuckDBPyConnection,
    script: Script,
    models_dir: Path,
    calls: list[stages.LabelledCall],
    examples: list = (),
    adaptation: adapt.Adaptation | None = None,
) -> tuple[Path, dict]:
    """Train the candidate on the script, `examples` and the labelled calls; compare it with the
    active model on held-out labels; save it; make it active only where that is safe."""
    current_version, current_name, current_calls, current_examples = _current(models_dir, script)
    comparison = (
        held_out_comparison(script, calls, current_calls, examples=examples, current_examples=current_examples)
        if calls
        else None
    )
    model = stages.train(script, calls, examples=list(examples))
    ends, known_outcomes = calls_with_outcomes(con, script.id)
    outcome_metrics = None
    if len(ends) >= MIN_OUTCOME_CALLS and len(set(known_outcomes)) >= 2:
        outcome_metrics = cross_validate_outcomes(ends, known_outcomes)
        model.outcome_model = outcomes.OutcomeClassifier().fit(ends, known_outcomes)
    digest = hashlib.sha256(
        json.dumps(
            [[c.texts, c.roles, c.stages] for c in calls] + [[e.text, e.role, stage] for e, stage in examples],
            ensure_ascii=False,
        ).encode("utf-8")
    ).hexdigest()
    if comparison is not None:
        promoted = comparison["candidate_accuracy"] >= comparison["current_accuracy"]
        numbers = (
            f"held-out accuracy {comparison['candidate_accuracy']:.1%} vs {comparison['current_accuracy']:.1%} "
            f"for {current_name} ({comparison['held_out_utterances']} labelled utterances, {comparison['folds']} folds)"
        )
        verdict = (
            f"promoted: {numbers}" if promoted else f"kept {current_name}: the new model measured worse, {numbers}"
        )
    elif adaptation is not None:
        promoted = False
        verdict = (
            f"kept {current_name}: no labels to measure the adapted model on (label a review round and adapt "
            "again, or choose it with `salescalls models use`)"
        )
    else:
        promoted = False
        verdict = f"kept {current_name}: too few labels to measure the new model on held-out ones (label 2 or more)"
    training = {
        "labelled_calls": len(calls),
        "labelled_utterances": sum(s is not None for c in calls for s in c.stages),
        "script_examples": len(stages.script_training_data(script)[1]),
        "script_sha256": script.sha256,
        "data_sha256": digest,
        "call_ids": sorted(c.call_id for c in calls),
        # The examples themselves, so that a later comparison can rebuild this model fold by fold.
        "adaptation": None
        if adaptation is None
        else {**adaptation.serialize(), "taken": [[e.text, e.role, e.language, stage] for e, stage in examples]},
        "comparison": comparison,
        "replaces": current_name,
        "promoted": promoted,
        "verdict": verdict,
        "outcome_model": outcome_metrics or f"not trained: needs {MIN_OUTCOME_CALLS} calls with 2+ CRM outcomes",
    }
    folder = stage_versions.save_model(model, models_dir, training)
    # Recorded either way: with no choice on record the newest version would be used.
    stage_versions.set_active(models_dir, script, int(folder.name[1:]) if promoted else current_version, verdict)
    return folder, training
