"""Why customers leave: the customer's last words before a call dropped, grouped into reasons.

A call *dropped* at a stage when it ended there before the script's end without a success
outcome (funnel.dropoff). Each sentence of its customer's last LAST_WORDS utterances is read
by a classifier fitted on example phrases of each reason, over sentence-encoder vectors: the
generic catalogue in data/reasons.yaml (price, current provider, no time, not interested, think
it over, not the decision maker, terms; en/ru/hu) or reasons passed in. `_none` examples
(goodbyes, "okay") absorb sentences that give no reason. The call gets the reason its sentences
weigh most in all, when one sentence names it with probability >= MIN_PROBABILITY and lies near
one of its examples (NEAR_EXAMPLE). Calls whose
last words fit no reason are grouped among themselves by meaning, each group named by its most
typical sentence (the one closest to the others), so a reason the catalogue lacks still shows
up as a group. Without the encoder every dropped call is "other".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from salescalls.db.sql import OUTCOME, PERIOD, SCRIPT_ENDS, SUCCESS_OUTCOMES, CallFilter, completed, execute
from salescalls.i18n import N_, _, named
from salescalls.insights.analytics import check_period
from salescalls.insights.tables import format_table

CATALOGUE = Path(__file__).parent.parent / "data" / "reasons.yaml"
LAST_WORDS = 3  # customer utterances read before the end of a dropped call
MIN_PROBABILITY = 0.4  # a reason's probability (the classifier on the examples) one sentence needs
CLASSIFIER_C = 10.0  # inverse regularisation of that classifier: few examples, well separated
NEAR_EXAMPLE = 0.4  # ...and the sentence must be this close (cosine after centring) to one of the reason's examples:
# a classifier names *some* reason for anything, "we are closing the business" included
GROUP_SIMILARITY = 0.45  # unexplained last words this alike (cosine after centring) form one group
NONE = "_none"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
OTHER = "other"
REASON_NAMES = {  # the generic reasons (data/reasons.yaml) and the group of the rest, for people
    "price": N_("price"),
    "current_provider": N_("current_provider"),
    "no_time": N_("no_time"),
    "not_interested": N_("not_interested"),
    "think_it_over": N_("think_it_over"),
    "not_decision_maker": N_("not_decision_maker"),
    "terms": N_("terms"),
    OTHER: N_("other"),
}


def reason_name(reason: str) -> str:
    """A generic reason's name in the UI language; a script's own reason or a quoted group as written."""
    return named(REASON_NAMES, reason)


@dataclass(frozen=True)
class Reason:
    call_id: str  # the call that dropped
    stage: str  # where it dropped
    reason: str  # catalogue name, a group's typical sentence in quotes, or "other"
    text: str  # the customer's words that gave it
    probability: float  # how sure the classifier is of the reason (0 when none was found)


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, tuple[str, ...]]]:
    """reason -> language -> phrases, from the package's data/reasons.yaml."""
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    return {name: {language: tuple(p) for language, p in phrases.items()} for name, phrases in data.items()}


def with_goodbyes(own: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
    """A script's own reasons, plus the catalogue's goodbyes, which still give no reason."""
    return {**own, NONE: catalogue()[NONE]}


DROPPED_SQL = f"""
WITH ends AS ({SCRIPT_ENDS})
SELECT c.call_id, coalesce(c.rep, '(unknown)') AS rep, {PERIOD} AS period, r.end_stage AS stage,
       p.position, c.script_id, c.script_version
FROM calls c JOIN call_results r USING (call_no)
JOIN ends e USING (script_id, script_version)
LEFT JOIN script_stages p ON p.script_id = c.script_id AND p.script_version = c.script_version
    AND p.stage = r.end_stage
WHERE {CallFilter.SQL}
  AND r.end_stage IS NOT NULL AND NOT {completed("p.position", OUTCOME)}
"""


def _last_words(con, call_ids: list[str]) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT call_id, text FROM (SELECT call_id, text, row_number() OVER (PARTITION BY call_id ORDER BY idx DESC) "
        "AS back FROM utterances WHERE call_id IN (SELECT unnest(?)) AND role = 'customer' AND NOT backchannel) "
        "WHERE back <= ? ORDER BY call_id, back DESC",
        [call_ids, LAST_WORDS],
    ).fetchall()
    found: dict[str, list[str]] = {}
    for call_id, text in rows:
        found.setdefault(call_id, []).append(text)
    return found


def _vectors(con, texts: list[str]) -> np.ndarray | None:
    from salescalls.learning import review
    from salescalls.text import encoder

    name = encoder.configured()
    if name is None or not encoder.available(name):
        return None
    review.use_stored_vectors(con, name, texts, keep=False)
    return encoder.shared_cache(name).encode(texts)


def _groups(vectors: np.ndarray) -> list[int]:
    """Greedy grouping by meaning: each vector joins the first group whose first member it is
    GROUP_SIMILARITY alike, else starts one (a few dozen unexplained calls a night)."""
    leaders: list[int] = []
    labels = []
    for i, vector in enumerate(vectors):
        for g, leader in enumerate(leaders):
            if float(vectors[leader] @ vector) >= GROUP_SIMILARITY:
                labels.append(g)
                break
        else:
            leaders.append(i)
            labels.append(len(leaders) - 1)
    return labels


def classify(
    con: duckdb.DuckDBPyConnection,
    calls: pd.DataFrame,
    reasons: dict[str, dict[str, tuple[str, ...]]] | None = None,
) -> list[Reason]:
    """A Reason for each dropped call (rows with call_id and stage)."""
    reasons = reasons or catalogue()
    last = _last_words(con, calls["call_id"].tolist())
    names, examples = [], []
    for name, by_language in reasons.items():
        for phrases in by_language.values():
            names += [name] * len(phrases)
            examples += list(phrases)
    # Each sentence of the last words on its own: "I really don't have time. Goodbye." gives its
    # reason in the first sentence and none in the second.
    said = [
        (call_id, sentence)
        for call_id in calls["call_id"]
        for text in last.get(call_id, [])
        for sentence in _SENTENCE_END.split(text.strip())
        if sentence
    ]
    vectors = _vectors(con, examples + [text for _, text in said]) if said else None
    if vectors is None:
        return [Reason(c, s, OTHER, "", 0.0) for c, s in zip(calls["call_id"], calls["stage"], strict=True)]
    # This encoder's vectors share a large common direction (most pairs of short sentences have
    # cosine 0.85-0.95); without it, and with a classifier fitted on the examples, the reasons
    # separate.
    centre = vectors[: len(examples)].mean(axis=0)
    vectors = vectors - centre
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-9)
    example_vectors, said_vectors = vectors[: len(examples)], vectors[len(examples) :]
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=CLASSIFIER_C, max_iter=3000, random_state=0).fit(example_vectors, names)
    names_array = np.asarray(names)
    probability = model.predict_proba(said_vectors)
    classes = list(model.classes_)
    none_column = classes.index(NONE) if NONE in classes else None
    found, unexplained = [], []
    for call_id, stage in zip(calls["call_id"], calls["stage"], strict=True):
        rows = [r for r, (c, _) in enumerate(said) if c == call_id]
        if not rows:
            found.append(Reason(call_id, stage, OTHER, "", 0.0))
            continue
        # The call's reason: the one its sentences give most weight in all (a reason said twice
        # outweighs a stronger one said once), if one sentence names it clearly enough.
        totals = {}
        for k, name in enumerate(classes):
            if name != NONE:
                totals[name] = float(probability[rows, k].sum())
        name = max(totals, key=totals.get)
        column = classes.index(name)
        strongest = max(rows, key=lambda r: probability[r, column])
        near = float((example_vectors[names_array == name] @ said_vectors[strongest]).max())
        if probability[strongest, column] >= MIN_PROBABILITY and near >= NEAR_EXAMPLE:
            found.append(Reason(call_id, stage, name, said[strongest][1], float(probability[strongest, column])))
            continue
        # No reason: keep the sentence least like a bare goodbye, for the groups below.
        row = min(rows, key=lambda r: probability[r, none_column]) if none_column is not None else rows[-1]
        unexplained.append((len(found), row))
        found.append(Reason(call_id, stage, OTHER, said[row][1], 0.0))
    if unexplained:
        labels = _groups(said_vectors[[row for _, row in unexplained]])
        for g in set(labels):
            members = [i for i, label in enumerate(labels) if label == g]
            if len(members) < 2:
                continue
            group = said_vectors[[unexplained[i][1] for i in members]]
            typical = members[int(np.argmax((group @ group.T).sum(axis=1)))]
            sentence = said[unexplained[typical][1]][1]
            for i in members:
                index = unexplained[i][0]
                found[index] = Reason(found[index].call_id, found[index].stage, f'"{sentence}"', found[index].text, 0.0)
    return found


def why_customers_leave(
    con: duckdb.DuckDBPyConnection,
    script_id: str | None = None,
    *,
    period: str | None = None,
    success: tuple[str, ...] = SUCCESS_OUTCOMES,
    reasons: dict[str, dict[str, tuple[str, ...]]] | None = None,
    **filters,
) -> pd.DataFrame:
    """One row per dropped call: stage, rep, period, reason and the customer's words behind it
    (`reasons`: name -> language -> phrases, default the generic catalogue); `filters` are
    CallFilter's (script version, since, until, segment, campaign, rep)."""
    calls = execute(
        con, DROPPED_SQL, calls=CallFilter(script_id=script_id, **filters), period=check_period(period), success=success
    ).df()
    if calls.empty:
        return calls.assign(reason=[], text=[], probability=[])
    found = {r.call_id: r for r in classify(con, calls, reasons)}
    return calls.assign(
        reason=[found[c].reason for c in calls["call_id"]],
        text=[found[c].text for c in calls["call_id"]],
        probability=[found[c].probability for c in calls["call_id"]],
    )


def reasons_table(frame: pd.DataFrame) -> str:
    """Dropped calls per stage and reason, with the reps who had them and one example."""
    if frame.empty:
        return _("no dropped calls")
    rows = []
    for (stage, reason), group in frame.groupby(["stage", "reason"], sort=False):
        reps = ", ".join(f"{rep} {n}" for rep, n in group["rep"].value_counts().sort_index().items())
        example = next((t for t in group["text"] if t), "")
        position = group["position"].iloc[0]
        rows.append(
            {
                "position": position,
                "stage": stage,
                "reason": reason_name(reason),
                "calls": len(group),
                "reps": reps,
                "example": example,
            }
        )
    table = pd.DataFrame(rows).sort_values(["position", "calls", "reason"], ascending=[True, False, True])
    columns = {"stage": _("stage"), "reason": _("reason"), "calls": _("calls"), "reps": _("reps")}
    columns["example"] = _("customer said")
    return format_table(table, columns)
