"""What to change in the script: what the rep said at a stage in calls that got past it, against
calls that dropped there.

For one stage of one script version: the calls in which the stage occurred (the rep spoke in it),
split into those that *dropped* there (ended at it before the script's end and without a success
outcome, as funnel.dropoff counts them) and those that went on. Each phrase (a 1-3 word n-gram
of the rep's normalised words at that stage, not made of stop words only) said in at least
MIN_CALLS of them is scored by the share of its calls that went on against the share of the other
calls that went on, with Fisher's exact test; `q_value` is the Benjamini-Hochberg adjustment over
all phrases tested, since many are. Each phrase comes with the moments it was said (playable: file
and time), from calls that went on first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salescalls.db.sql import OUTCOME, SCRIPT_ENDS, SUCCESS_OUTCOMES, completed, execute
from salescalls.i18n import _, number
from salescalls.insights.stats import fisher_p
from salescalls.insights.tables import clock, shorten
from salescalls.text import nlp

MIN_CALLS = 2  # a phrase said in fewer calls than this is not compared: one call is an anecdote
MAX_N = 3  # longest n-gram
SHOWN = 5  # phrases per stage in the text summary
SHAPES = {"_num_": "<number>", "_time_": "<time>", "_code_": "<code>"}  # nlp's number shapes, as shown


@dataclass(frozen=True)
class Said:
    call_id: str  # stored call
    file: str  # recording's file name
    at: float  # seconds from the call's start
    text: str  # the rep's utterance
    went_on: bool  # the call got past the stage


CALLS_AT_STAGE_SQL = f"""
WITH ends AS ({SCRIPT_ENDS})
SELECT c.call_id, c.file, c.language,
       NOT (r.end_stage = $stage AND NOT {completed("p.position", OUTCOME)}) AS went_on
FROM calls c JOIN call_results r USING (call_no)
JOIN ends e USING (script_id, script_version)
LEFT JOIN script_stages p ON p.script_id = c.script_id AND p.script_version = c.script_version
    AND p.stage = r.end_stage
WHERE c.script_id = $script_id AND c.script_version = $script_version AND list_contains(r.stages_reached, $stage)
"""


@functools.lru_cache(maxsize=8)
def _stop_words(language: str) -> frozenset[str]:
    import spacy

    try:
        return frozenset(spacy.blank(language).Defaults.stop_words)
    except (ImportError, KeyError, ValueError):
        return frozenset(spacy.blank("en").Defaults.stop_words)


def phrases(text: str, language: str | None) -> set[str]:
    """The 1-3 word n-grams of a text's normalised words that are not stop words only."""
    tokens = nlp.normalise(text, language).split()
    stop = _stop_words(language or nlp.guess_language(text))
    found = set()
    for n in range(1, MAX_N + 1):
        for i in range(len(tokens) - n + 1):
            gram = tokens[i : i + n]
            if all(token in stop or token.startswith("_") for token in gram):
                continue
            found.add(" ".join(SHAPES.get(token, token) for token in gram))
    return found


def _loose_ends(phrase: str, stop: frozenset[str]) -> int:
    """Stop words at the ends of a phrase ("do you pay" has one): fewer reads better."""
    tokens = phrase.split()
    return (tokens[0] in stop) + (len(tokens) > 1 and tokens[-1] in stop)


def _benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    order = np.argsort(p_values)
    ranked = p_values[order] * len(p_values) / np.arange(1, len(p_values) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return result


def stage_moves(
    con: duckdb.DuckDBPyConnection,
    script_id: str,
    script_version: int,
    stage: str,
    *,
    min_calls: int = MIN_CALLS,
    success: tuple[str, ...] = SUCCESS_OUTCOMES,
) -> pd.DataFrame:
    """The rep's phrases at `stage`, ranked by how much more often the calls that had them went on
    past the stage (module docstring). One row per phrase: calls with it and how many went on,
    the same for the calls without it, `lift` (the ratio of the two shares), p_value, q_value and
    `moments` (Said, calls that went on first)."""
    at = {"script_id": script_id, "script_version": script_version, "stage": stage}
    calls = execute(con, CALLS_AT_STAGE_SQL, at, success=success).df()
    columns = ["phrase", "calls", "went_on", "other_calls", "other_went_on", "lift", "p_value", "q_value", "moments"]
    if calls.empty:
        return pd.DataFrame(columns=columns)
    said = con.execute(
        "SELECT call_id, start_s, text FROM utterances WHERE call_id IN (SELECT unnest($calls)) "
        "AND stage = $stage AND role = 'rep' AND NOT backchannel ORDER BY call_id, idx",
        {"calls": calls["call_id"].tolist(), "stage": stage},
    ).fetchall()
    by_call = calls.set_index("call_id")
    found: dict[str, dict[str, list[Said]]] = {}  # phrase -> call -> moments
    for call_id, start, text in said:
        call = by_call.loc[call_id]
        moment = Said(call_id, call["file"], float(start), text, bool(call["went_on"]))
        for phrase in phrases(text, call["language"]):
            found.setdefault(phrase, {}).setdefault(call_id, []).append(moment)
    total, total_on = len(calls), int(calls["went_on"].sum())
    # Phrases said in exactly the same calls are one piece of evidence: one row, its most
    # telling phrases first (most content words, fewest stop words at their ends, then longest).
    groups: dict[frozenset, list[str]] = {}
    for phrase, in_calls in found.items():
        if min_calls <= len(in_calls) < total:
            groups.setdefault(frozenset(in_calls), []).append(phrase)
    rows = []
    for call_set, names in groups.items():
        stop = _stop_words(nlp.guess_language(names[0]))
        names.sort(key=lambda p: (-sum(t not in stop for t in p.split()), _loose_ends(p, stop), -len(p.split()), p))
        n = len(call_set)
        on = sum(bool(by_call.loc[c, "went_on"]) for c in call_set)
        other, other_on = total - n, total_on - on
        share, other_share = on / n, other_on / other if other else float("nan")
        moments = sorted((found[names[0]][c][0] for c in call_set), key=lambda m: (not m.went_on, m.file, m.at))
        rows.append(
            {
                "phrase": " / ".join(names[:3]),
                "calls": n,
                "went_on": on,
                "other_calls": other,
                "other_went_on": other_on,
                "lift": share / other_share if other_share else float("inf"),
                "p_value": fisher_p(on, n, other_on, other),
                "moments": moments,
            }
        )
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["q_value"] = _benjamini_hochberg(frame["p_value"].to_numpy(dtype=float))
    # Helpful moves first (they went on more often), then by strength of evidence.
    frame["_helps"] = frame["went_on"] / frame["calls"] > frame["other_went_on"] / frame["other_calls"].clip(lower=1)
    frame = frame.sort_values(["_helps", "p_value", "lift", "phrase"], ascending=[False, True, False, True])
    return frame[columns].reset_index(drop=True)


def moves_text(frame: pd.DataFrame, stage: str, shown: int = SHOWN) -> list[str]:
    """The phrases as lines a QA specialist reads, each with its numbers and a moment to play."""
    if frame.empty:
        return [
            _(
                "at {stage}: no phrase of the rep was said in {minimum} or more of the calls to compare",
                stage=stage,
                minimum=MIN_CALLS,
            )
        ]
    calls = int(frame["calls"].iloc[0] + frame["other_calls"].iloc[0])
    lines = [_("at {stage} ({calls} calls in which it occurred):", stage=stage, calls=calls)]
    for row in frame.head(shown).to_dict("records"):
        if row["lift"] == float("inf"):
            lift = _("where the others did not")
        else:
            lift = _("{times}x as often", times=number(row["lift"], ".1f"))
        counts = _(
            "{went_on} of {calls} against {other_went_on} of {other_calls} without",
            went_on=row["went_on"],
            calls=row["calls"],
            other_went_on=row["other_went_on"],
            other_calls=row["other_calls"],
        )
        lines.append(
            "  "
            + _('"{phrase}": calls with it went on {lift}', phrase=row["phrase"], lift=lift)
            + f" ({counts}; p = {number(row['p_value'], '.2g')}, q = {number(row['q_value'], '.2g')})"
        )
        for moment in row["moments"][:1]:
            lines.append(
                "    "
                + _(
                    'e.g. {file} at {moment}: "{text}"',
                    file=moment.file,
                    moment=clock(moment.at),
                    text=shorten(moment.text, 100),
                )
            )
    if not (frame["q_value"] < 0.05).any():
        lines.append(
            "  " + _("(with {calls} calls no phrase makes a significant difference yet: q >= 0.05)", calls=calls)
        )
    return lines
