"""What the trainer needs: a 1-4 rating from five KPIs, its trend, and a training plan per rep.

Definitions (also in the README):
- Five KPIs, as sales managers recommend (few, and each one a rep can act on): conversion, required
  stages covered, close attempted, clean language, balanced talk. Each is a share of calls, has a
  target (goal met at or above it) and a stretch (goal exceeded at or above it); KPI_TARGETS holds
  the defaults and `load_targets` reads a team's own.
- Rating: 4 exceeded goals (no KPI missed, at least three exceeded), 3 met goals (no KPI missed),
  2 partly met (one or two missed), 1 missed goals (three or more missed). A KPI with no calls to
  judge it (e.g. close attempted when no call reached the offer) is left out; a rep with fewer than
  MIN_RATED_CALLS calls in the period gets no rating.
- Top-quartile reps: rated reps whose KPI points (0 missed, 1 met, 2 exceeded, averaged over the
  judged KPIs) are at or above the 75th percentile of all rated reps.
- Training plan: the rep's three errors (rep_errors.ERRORS) most above the rest of the team, the
  significant ones (Fisher's exact test) first; each with the rep's own moments (call, time, text),
  a contrasting moment of a top-quartile rep on the same stage from a call without that error, and
  a 30-day target: the team's rate, or half the rep's rate where the team's is lower than that.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import duckdb
import pandas as pd

from salescalls.db.sql import execute
from salescalls.i18n import _, number, percent
from salescalls.insights.rep_errors import (
    CALL_FACTS_SQL,
    ERROR_COUNTS_SQL,
    ERRORS,
    REQUIRED_SQL,
    fact_params,
    profile_from_counts,
    stage_orders,
)
from salescalls.insights.scorecard import (
    KPI_ERRORS,
    KPI_TARGETS,
    Kpi,
    kpi_counts,
    kpi_name,
    rate,
    top_quartile,
)
from salescalls.insights.tables import clock, shorten
from salescalls.text import questions

PLAN_GAPS = 3  # gaps in a training plan
SPECIFIC_ERRORS = ("forbidden_phrase", "skipped_required_stage", "stages_out_of_order", "no_close_attempt")
QUOTE_WIDTH = 110  # characters of an example moment's text shown in the plan


@dataclass(frozen=True)
class Moment:
    call_id: str  # stored call (audio hash)
    file: str  # recording's file name
    started_at: str  # when the call took place
    rep: str  # whose call it is
    at: float  # seconds from the call's start
    stage: str  # the utterance's script stage
    text: str  # what was said
    note: str = ""  # what to look at, e.g. the forbidden phrase


def locate(error: str, result: dict, utterances: list[dict], stage_order: list[str]) -> dict | None:
    """The utterance that shows `error` in one call: result is the call's call_results row,
    utterances its non-back-channel utterances in order (dicts with idx, role, start_s, stage, text)."""
    rep_turns = [u for u in utterances if u["role"] == "rep"]
    position = {stage: i for i, stage in enumerate(stage_order)}

    def first(candidates):
        return next(iter(candidates), None)

    if error == "skipped_required_stage" and len(result["stages_skipped"]):
        skipped_stage = result.get("focus_stage") or result["stages_skipped"][0]
        if skipped_stage not in list(result["stages_skipped"]):
            skipped_stage = result["stages_skipped"][0]
        skipped = position.get(skipped_stage, -1)
        for i, u in enumerate(utterances):  # the first words past the stage: where the call jumped over it
            if position.get(u["stage"], -1) > skipped:
                before = utterances[i - 1]["stage"] if i else _("the start")
                note = _(
                    "{skipped} belonged here: the call went from {before} to {stage}",
                    skipped=skipped_stage,
                    before=before,
                    stage=u["stage"],
                )
                return {**u, "note": note, "skipped_stage": skipped_stage}
        return None
    if error == "stages_out_of_order" and len(result["out_of_order"]):
        return first(u for u in utterances if u["stage"] == result["out_of_order"][0])
    if error == "forbidden_phrase" and result["forbidden_idx"] is not None:
        return first(u for u in utterances if u["idx"] == result["forbidden_idx"])
    if error == "no_close_attempt":  # the rep's last words before the sign-off: where the close belonged
        before_sign_off = [u for u in rep_turns if u["stage"] != stage_order[-1]] if stage_order else []
        return (before_sign_off or rep_turns or [None])[-1]
    if error in ("long_monologue", "talks_too_much") and result["longest_monologue_at"] is not None:
        return first(u for u in rep_turns if u["start_s"] >= result["longest_monologue_at"] - 1e-6)
    if error == "few_questions":
        return first(u for u in rep_turns if u["stage"] != stage_order[0]) or first(rep_turns)
    if error == "interrupts" and result["first_interruption_at"] is not None:
        return first(u for u in rep_turns if u["start_s"] >= result["first_interruption_at"] - 1e-6)
    return None


def _contrast_stage(error: str, result: dict, moment: dict, close_stage: str | None) -> str:
    """Which stage a good example of the same moment comes from."""
    if error == "skipped_required_stage":
        return moment.get("skipped_stage") or result["stages_skipped"][0]
    if error == "no_close_attempt" and close_stage:
        return close_stage
    return moment["stage"]


def _latest_calls(con, facts: str, where: str, value, errors: list[str], has_error: bool, limit: int) -> dict:
    """error -> the latest calls (call_id, first and last utterance id) in the facts table that
    match `where` and have (or do not have) that error."""
    found = {}
    for error in errors:
        if error not in ERRORS:  # a column name, not a value: it cannot be a parameter
            raise ValueError(f"unknown error '{error}'")
        found[error] = con.execute(
            f"SELECT call_id, first_utterance_id, last_utterance_id FROM {facts} "
            f"WHERE {where} AND {error} = ? ORDER BY started_at DESC, call_id LIMIT ?",
            [value, has_error, limit],
        ).fetchall()
    return found


def _id_range(calls: list[tuple]) -> list:
    """[lowest, highest] utterance id of the calls: lets DuckDB skip the rest of the utterances."""
    firsts = [first for _call, first, _last in calls if first is not None]
    lasts = [last for _call, _first, last in calls if last is not None]
    return [min(firsts), max(lasts)] if firsts else [0, -1]


def _call_moments(
    con, calls: list[tuple], error: str, stage_order_of, focus_stage: str | None = None
) -> list[tuple[Moment, str]]:
    """(moment, stage a contrast should come from) for each call, where the error can be located."""
    if not calls:
        return []
    call_ids = [call[0] for call in calls]
    results = con.execute(
        "SELECT c.call_id, c.file, CAST(c.started_at AS VARCHAR) AS started_at, coalesce(c.rep, '(unknown)') AS rep, "
        "c.script_id, c.script_version, r.stages_skipped, r.out_of_order, "
        "CAST(r.forbidden->'$[0].utterance' AS INTEGER) AS forbidden_idx, r.forbidden->>'$[0].phrase' AS phrase, "
        "r.longest_monologue_at, r.first_interruption_at "
        "FROM calls c JOIN call_results r USING (call_id) WHERE c.call_id IN (SELECT unnest(?))",
        [call_ids],
    ).df()
    spoken = con.execute(
        "SELECT call_id, idx, role, start_s, stage, text FROM utterances "
        "WHERE utterance_id BETWEEN ? AND ? AND call_id IN (SELECT unnest(?)) AND NOT backchannel "
        "ORDER BY call_id, idx",
        [*_id_range(calls), call_ids],
    ).df()
    by_call = {call_id: group.to_dict("records") for call_id, group in spoken.groupby("call_id")}
    found = []
    for result in results.set_index("call_id").loc[call_ids].reset_index().to_dict("records"):
        order, close_stage = stage_order_of(result["script_id"], result["script_version"])
        moment = locate(error, {**result, "focus_stage": focus_stage}, by_call.get(result["call_id"], []), order)
        if moment is None:
            continue
        found.append(
            (
                Moment(
                    result["call_id"],
                    result["file"],
                    result["started_at"],
                    result["rep"],
                    float(moment["start_s"]),
                    moment["stage"],
                    moment["text"],
                    _('forbidden phrase "{phrase}"', phrase=result["phrase"])
                    if error == "forbidden_phrase"
                    else moment.get("note", ""),
                ),
                _contrast_stage(error, result, moment, close_stage),
            )
        )
    return found


CONTRAST_CALLS = 200  # latest calls of the top reps searched for a contrasting example


def _contrast(con, calls: list[tuple], error: str, stage: str, used: set | None = None) -> Moment | None:
    """A top-quartile rep's utterance on `stage` from one of `calls` (their latest without `error`):
    a question where the error is about asking too little or talking too much, else the most
    confidently labelled utterance of the stage."""
    if not calls:
        return None
    wants_question = error in ("few_questions", "talks_too_much", "long_monologue")
    recency = {call[0]: i for i, call in enumerate(calls)}  # calls come latest first
    candidates = con.execute(
        f"SELECT call_id, idx, start_s, stage, text, {questions.SQL.format(text='text')} AND ? AS preferred, "
        "confidence FROM utterances WHERE utterance_id BETWEEN ? AND ? AND call_id IN (SELECT unnest(?)) "
        "AND stage = ? AND role = 'rep' AND NOT backchannel",
        [questions.PATTERN, wants_question, *_id_range(calls), list(recency), stage],
    ).fetchall()
    candidates = [c for c in candidates if (c[0], c[1]) not in (used or set())]  # never the same moment twice
    if not candidates:
        return None
    call_id, idx, start, stage, text, _skip, _rank = min(
        candidates, key=lambda c: (not c[5], -c[6], recency[c[0]], c[0], c[1])
    )
    if used is not None:
        used.add((call_id, idx))
    file, started_at, rep = con.execute(
        "SELECT file, CAST(started_at AS VARCHAR), coalesce(rep, '(unknown)') FROM calls WHERE call_id = ?", [call_id]
    ).fetchone()
    return Moment(call_id, file, started_at, rep, float(start), stage, text)


def target_rate(rate: float, team_rate: float) -> float:
    """The 30-day target: the team's rate, or half the rep's own where the team's is lower than that."""
    if math.isnan(team_rate):
        return rate / 2
    return max(team_rate, rate / 2)


def training_plan(
    con: duckdb.DuckDBPyConnection,
    rep: str,
    *,
    examples: int = 2,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    **filters,
) -> pd.DataFrame:
    """The rep's top gaps (module docstring), one row each: the error, rep and team rates, the
    30-day target, the rep's own example moments and a top-quartile contrast. Empty when the rep
    has no calls; no rows when no error is above the team's rate.

    The calls' facts are computed once into a temporary table (the connection may be read-only)
    that every step reads."""
    return training_plans(con, [rep], examples=examples, targets=targets, **filters)[rep]


def training_plans(
    con: duckdb.DuckDBPyConnection,
    reps: list[str],
    *,
    examples: int = 2,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    profiles: dict[str, pd.DataFrame] | None = None,
    **filters,
) -> dict[str, pd.DataFrame]:
    """training_plan for each of `reps`. The calls' facts, the team's error counts, ratings and
    script orders are computed once for all of them; `profiles` (rep -> rep_errors.error_profile
    over the same calls), when the caller has them already, are used instead of recomputing them."""
    facts = f"plan_facts_{uuid.uuid4().hex}"
    execute(con, f"CREATE TEMP TABLE {facts} AS {CALL_FACTS_SQL}", fact_params(**filters))
    try:
        counts = con.execute(ERROR_COUNTS_SQL.format(source=f"SELECT * FROM {facts}")).df()
        rated = rate(kpi_counts(con, f"SELECT * FROM {facts}"), targets)
        required = {(s, v): list(r) for s, v, r in con.execute(REQUIRED_SQL).fetchall()}
        orders = stage_orders(con)

        def stage_order_of(script_id, version):
            needed = required.get((script_id, version), [])
            return orders.get((script_id, version), []), needed[-1] if needed else None

        plans = {}
        for rep in reps:
            profile = (profiles or {}).get(rep)
            if profile is None:
                profile = profile_from_counts(counts, rep)
            plans[rep] = _training_plan(con, facts, rep, examples, profile, rated, stage_order_of, targets)
        return plans
    finally:
        con.execute(f"DROP TABLE IF EXISTS {facts}")


def missed_kpis(rated: pd.DataFrame, rep: str, targets: tuple[Kpi, ...] = KPI_TARGETS) -> list[str]:
    """The KPIs the rep's rating counts as missed (over the plan's calls, not split by period)."""
    mine = rated[rated["rep"] == rep]
    if mine.empty:
        return []
    row = mine.iloc[-1]
    return [kpi.name for kpi in targets if row.get(f"{kpi.name}_status") == "missed"]


def skipped_stage(con, facts: str, rep: str) -> tuple[str | None, int]:
    """The required stage the rep's calls skip most often, and in how many calls."""
    found = con.execute(
        f"SELECT stage, count(*) AS n FROM (SELECT unnest(r.stages_skipped) AS stage FROM {facts} f "
        "JOIN call_results r USING (call_id) WHERE f.rep = ? AND f.skipped_required_stage) "
        "GROUP BY stage ORDER BY n DESC, stage LIMIT 1",
        [rep],
    ).fetchone()
    return (found[0], int(found[1])) if found else (None, 0)


def _training_plan(
    con, facts: str, rep: str, examples: int, profile, rated, stage_order_of, targets: tuple[Kpi, ...] = KPI_TARGETS
) -> pd.DataFrame:
    if profile.empty:
        return profile
    # Gaps: every error behind a KPI the rating says was missed (so rating and plan never
    # disagree), then the errors most above the rest of the team, up to PLAN_GAPS in all.
    missed = {KPI_ERRORS[name]: name for name in missed_kpis(rated, rep, targets) if name in KPI_ERRORS}
    gaps = profile[
        (profile["errors"] > 0) & (~(profile["rate"] <= profile["team_rate"]) | profile["error"].isin(missed))
    ]
    gaps = gaps.copy()
    gaps["difference"] = gaps["rate"] - gaps["team_rate"].fillna(0)
    gaps["missed_kpi"] = gaps["error"].map(missed)
    gaps = gaps.sort_values(
        ["flagged", "missed_kpi", "difference", "p_value"], ascending=[False, True, False, True], na_position="last"
    )
    must = gaps["missed_kpi"].notna() | gaps["flagged"]  # significant, or behind a missed KPI
    gaps = pd.concat([gaps[must], gaps[~must].head(max(0, PLAN_GAPS - int(must.sum())))])
    kpi_target = {kpi.name: kpi.target for kpi in targets}
    top = [r for r in top_quartile(rated) if r != rep]
    if not top:  # the rep is the team's best, or nobody is rated: learn from the best of the others
        others = rated[(rated["rep"] != rep) & rated["points"].notna()].sort_values("points", ascending=False)
        top = others["rep"].head(1).tolist()

    errors = gaps["error"].tolist()
    own_calls = _latest_calls(con, facts, "rep = ?", rep, errors, True, examples)
    pools = _latest_calls(con, facts, "rep IN (SELECT unnest(?))", top, errors, False, CONTRAST_CALLS) if top else {}
    focus, skipped_in = skipped_stage(con, facts, rep) if "skipped_required_stage" in errors else (None, 0)
    # Each moment shows one gap. Errors tied to one utterance (the forbidden phrase, where a stage
    # was skipped or the close was missing) choose first; the monologue or question moments, which
    # many utterances could show, take what is left.
    own_moments: dict[str, list[tuple[Moment, str]]] = {}
    used_moments: set = set()
    for error in sorted(errors, key=lambda e: e not in SPECIFIC_ERRORS):
        found = _call_moments(
            con, own_calls[error], error, stage_order_of, focus if error == "skipped_required_stage" else None
        )
        own_moments[error] = [(m, stage) for m, stage in found if (m.call_id, m.at) not in used_moments]
        used_moments |= {(m.call_id, m.at) for m, _ in own_moments[error]}
    used_contrasts: set = set()
    rows = []
    for rank, gap in enumerate(gaps.to_dict("records"), start=1):
        meaning = gap["meaning"]
        if gap["error"] == "skipped_required_stage" and focus:
            meaning = _("the required stage {stage} was skipped", stage=focus)
            if skipped_in < gap["errors"]:
                meaning += _(
                    " (in {skipped} of the {errors} calls that skipped one)", skipped=skipped_in, errors=gap["errors"]
                )
        target = target_rate(gap["rate"], gap["team_rate"])
        if isinstance(gap["missed_kpi"], str):  # the KPI's own target, as an error rate
            target = min(target, 1 - kpi_target[gap["missed_kpi"]])
        own = own_moments[gap["error"]]
        stage = own[0][1] if own else (focus if gap["error"] == "skipped_required_stage" else None)
        contrast = _contrast(con, pools.get(gap["error"], []), gap["error"], stage, used_contrasts) if stage else None
        rows.append(
            {
                "rep": rep,
                "rank": rank,
                "error": gap["error"],
                "meaning": meaning,
                "stage": focus if gap["error"] == "skipped_required_stage" else None,
                "calls": gap["calls"],
                "errors": gap["errors"],
                "rate": gap["rate"],
                "team_calls": gap["team_calls"],
                "team_errors": gap["team_errors"],
                "team_rate": gap["team_rate"],
                "p_value": gap["p_value"],
                "flagged": gap["flagged"],
                "missed_kpi": gap["missed_kpi"] if isinstance(gap["missed_kpi"], str) else None,
                "target_30d": target,
                "examples": [moment for moment, _ in own],
                "contrast": contrast,
                "top_reps": top,
            }
        )
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["rep", "rank", "error"])


def plan_text(frame: pd.DataFrame, rep: str) -> str:
    """The training plan as text for the terminal or a printout, in the UI language."""
    if frame.empty:
        return _("{rep}: no error above the team's rate; nothing to train this month.", rep=rep)
    lines = [_("Training plan for {rep} (30 days)", rep=rep)]
    for gap in frame.to_dict("records"):
        significance = _("significant") if gap["flagged"] else _("not yet significant")
        team = "-"
        if gap["team_rate"] == gap["team_rate"]:
            team = _(
                "{errors} of {calls} calls ({rate})",
                errors=gap["team_errors"],
                calls=gap["team_calls"],
                rate=percent(gap["team_rate"]),
            )
        missed = ""
        if gap.get("missed_kpi"):
            missed = _("; the rating's KPI {kpi} was missed", kpi=kpi_name(gap["missed_kpi"]))
        own = _(
            "{errors} of {calls} calls ({rate})", errors=gap["errors"], calls=gap["calls"], rate=percent(gap["rate"])
        )
        lines += [
            "",
            f"{gap['rank']}. {gap['meaning']}: {own}; "
            + _(
                "rest of the team {team}; p = {p}, {significance}",
                team=team,
                p=number(gap["p_value"], ".3f"),
                significance=significance,
            )
            + missed,
            "   " + _("target in 30 days: at most {rate} of calls", rate=percent(gap["target_30d"])),
        ]
        for moment in gap["examples"]:
            lines.append(
                "   "
                + _(
                    "your call {file} ({when}) at {at}, {stage}:",
                    file=moment.file,
                    when=moment.started_at[:16],
                    at=clock(moment.at),
                    stage=moment.stage,
                )
            )
            lines.append(
                f'      "{shorten(moment.text, QUOTE_WIDTH)}"' + (f"  <- {moment.note}" if moment.note else "")
            )
        contrast = gap["contrast"]
        if contrast is not None:
            lines.append(
                "   "
                + _(
                    "how {rep} does it ({file} at {at}, {stage}):",
                    rep=contrast.rep,
                    file=contrast.file,
                    at=clock(contrast.at),
                    stage=contrast.stage,
                )
            )
            lines.append(f'      "{shorten(contrast.text, QUOTE_WIDTH)}"')
    return "\n".join(lines)
