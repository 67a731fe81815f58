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
- Training plan: the rep's three errors (analytics.ERRORS) most above the rest of the team, the
  significant ones (Fisher's exact test) first; each with the rep's own moments (call, time, text),
  a contrasting moment of a top-quartile rep on the same stage from a call without that error, and
  a 30-day target: the team's rate, or half the rep's rate where the team's is lower than that.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from salescalls.db.sql import execute
from salescalls.insights.analytics import (
    CALL_FACTS_SQL,
    ERROR_COUNTS_SQL,
    ERRORS,
    REQUIRED_SQL,
    clock,
    fact_params,
    format_table,
    profile_from_counts,
    shorten,
    stage_orders,
)
from salescalls.text import questions

MIN_RATED_CALLS = 3  # fewer calls in a period than this give no rating: one call decides too much
BALANCED_TALK = (0.35, 0.65)  # rep share of the talk time that counts as a balanced conversation
PLAN_GAPS = 3  # gaps in a training plan
SPECIFIC_ERRORS = ("forbidden_phrase", "skipped_required_stage", "stages_out_of_order", "no_close_attempt")
QUOTE_WIDTH = 110  # characters of an example moment's text shown in the plan
RATING_LABELS = {1: "missed goals", 2: "partly met goals", 3: "met goals", 4: "exceeded goals"}
# The error a missed KPI is trained on: a plan always covers what the rating says was missed.
KPI_ERRORS = {
    "stages_covered": "skipped_required_stage",
    "close_attempted": "no_close_attempt",
    "clean_language": "forbidden_phrase",
    "balanced_talk": "talks_too_much",
}


@dataclass(frozen=True)
class Kpi:
    name: str  # column name in the rating table
    meaning: str  # for people
    target: float  # at or above: goal met
    stretch: float  # at or above: goal exceeded


KPI_TARGETS = (
    Kpi("conversion", "calls ending in a sale or a meeting, of calls with a known outcome", 0.25, 0.40),
    Kpi("stages_covered", "calls with no required stage skipped", 0.85, 0.95),
    Kpi("close_attempted", "calls that reached the offer and moved on to the close", 0.80, 0.95),
    Kpi("clean_language", "calls without a forbidden phrase", 0.95, 1.00),
    Kpi(
        "balanced_talk",
        f"calls where the rep talks {BALANCED_TALK[0]:.0%}-{BALANCED_TALK[1]:.0%} of the time",
        0.70,
        0.90,
    ),
)


def load_targets(path: str | Path) -> tuple[Kpi, ...]:
    """KPI targets from a YAML file `{kpi: {target: 0.3, stretch: 0.5}}`; KPIs it omits keep the defaults."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read KPI targets: {error}") from None
    known = {kpi.name: kpi for kpi in KPI_TARGETS}
    if not isinstance(data, dict) or set(data) - set(known):
        unknown = ", ".join(sorted(set(data) - set(known))) if isinstance(data, dict) else "not a mapping"
        raise ValueError(f"{path}: unknown KPIs ({unknown}); known: {', '.join(known)}")
    result = []
    for name, kpi in known.items():
        given = data.get(name) or {}
        target, stretch = float(given.get("target", kpi.target)), float(given.get("stretch", kpi.stretch))
        if not 0 <= target <= stretch <= 1:
            raise ValueError(f"{path}: {name} needs 0 <= target <= stretch <= 1, got {target} and {stretch}")
        result.append(replace(kpi, target=target, stretch=stretch))
    return tuple(result)


KPI_SQL = """
SELECT rep, period, count(*) AS calls,
       count(*) FILTER (WHERE outcome IN ('sale', 'meeting')) AS conversion_k,
       count(*) FILTER (WHERE outcome <> 'unknown') AS conversion_n,
       count(*) FILTER (WHERE NOT skipped_required_stage) AS stages_covered_k,
       count(*) AS stages_covered_n,
       count(*) FILTER (WHERE offered AND NOT no_close_attempt) AS close_attempted_k,
       count(*) FILTER (WHERE offered) AS close_attempted_n,
       count(*) FILTER (WHERE NOT forbidden_phrase) AS clean_language_k,
       count(*) AS clean_language_n,
       count(*) FILTER (WHERE talk_ratio BETWEEN $balanced_low AND $balanced_high) AS balanced_talk_k,
       count(*) FILTER (WHERE talk_ratio IS NOT NULL) AS balanced_talk_n
FROM ({source}) GROUP BY ALL ORDER BY rep, period
"""


def _kpi_counts(con: duckdb.DuckDBPyConnection, source: str, params: dict | None = None) -> pd.DataFrame:
    """KPI_SQL over the call facts in `source` (CALL_FACTS_SQL with `params`, or a table of them)."""
    low, high = BALANCED_TALK
    return execute(con, KPI_SQL.format(source=source), params, balanced_low=low, balanced_high=high).df()


def rating_of(missed: int, exceeded: int, judged: int) -> int | None:
    """The 1-4 rating from how many judged KPIs were missed and exceeded (module docstring)."""
    if judged == 0:
        return None
    if missed >= 3:
        return 1
    if missed >= 1:
        return 2
    return 4 if exceeded >= 3 else 3


def ratings(
    con: duckdb.DuckDBPyConnection,
    period: str | None = None,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    **filters,
) -> pd.DataFrame:
    """Per rep (and per period when given): each KPI's value and status, the 1-4 rating, and the
    trend against the rep's previous period (up, down, same)."""
    return rate(_kpi_counts(con, CALL_FACTS_SQL, fact_params(period, **filters)), targets)


def team_kpis(
    con: duckdb.DuckDBPyConnection,
    period: str | None = None,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    **filters,
) -> pd.DataFrame:
    """The whole team's KPIs (every call counts once), per period when given, rated like a rep."""
    per_rep = _kpi_counts(con, CALL_FACTS_SQL, fact_params(period, **filters))
    if per_rep.empty:
        return rate(per_rep, targets)
    team = per_rep.drop(columns="rep").groupby("period", dropna=False, sort=True).sum().reset_index()
    return rate(team.assign(rep="team"), targets)


def rate(frame: pd.DataFrame, targets: tuple[Kpi, ...] = KPI_TARGETS) -> pd.DataFrame:
    """KPI values, statuses, rating and trend from per-rep (and period) counts `<kpi>_k` of `<kpi>_n`,
    rows in period order within each rep."""
    frame = frame.copy()
    if frame.empty:
        return frame
    statuses = []
    for kpi in targets:
        k, n = frame[f"{kpi.name}_k"], frame[f"{kpi.name}_n"]
        value = (k / n.where(n > 0)).astype(float)
        frame[kpi.name] = value
        status = np.select(
            [value >= kpi.stretch, value >= kpi.target, value.notna()], ["exceeded", "met", "missed"], ""
        )
        frame[f"{kpi.name}_status"] = status
        statuses.append(status)
    table = np.array(statuses).T  # rows: reps (and periods), columns: KPIs
    frame["missed"] = (table == "missed").sum(axis=1)
    frame["exceeded"] = (table == "exceeded").sum(axis=1)
    frame["judged"] = (table != "").sum(axis=1)
    points = (table == "met").sum(axis=1) + 2 * frame["exceeded"]
    enough = frame["calls"] >= MIN_RATED_CALLS
    frame["points"] = np.where(enough & (frame["judged"] > 0), points / frame["judged"].clip(lower=1), np.nan)
    frame["rating"] = [
        rating_of(m, e, j) if ok else None
        for m, e, j, ok in zip(frame["missed"], frame["exceeded"], frame["judged"], enough, strict=True)
    ]
    frame["rating"] = frame["rating"].astype("Int64")
    frame["rating_label"] = frame["rating"].map(
        lambda r: RATING_LABELS.get(r, "too few calls") if pd.notna(r) else "too few calls"
    )
    rating = frame["rating"].astype(float)
    previous = rating.groupby(frame["rep"]).shift()  # the rep's previous period (rows are in period order)
    frame["trend"] = np.select(
        [(previous.isna() | rating.isna()).to_numpy(), (rating > previous).to_numpy(), (rating < previous).to_numpy()],
        ["", "up", "down"],
        "same",
    )
    return frame


def top_quartile(frame: pd.DataFrame) -> list[str]:
    """Rated reps whose KPI points are at or above the 75th percentile of the rated reps."""
    rated = frame[frame["points"].notna()]
    if rated.empty:
        return []
    threshold = float(np.percentile(rated["points"], 75))
    return sorted(rated.loc[rated["points"] >= threshold - 1e-9, "rep"])


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
                before = utterances[i - 1]["stage"] if i else "the start"
                return {**u, "note": f"{skipped_stage} belonged here: the call went from {before} to {u['stage']}"}
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
        return moment["note"].split(" belonged here")[0] if moment.get("note") else result["stages_skipped"][0]
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
    firsts = [first for _, first, _ in calls if first is not None]
    lasts = [last for _, _, last in calls if last is not None]
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
                    f'forbidden phrase "{result["phrase"]}"' if error == "forbidden_phrase" else moment.get("note", ""),
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
    call_id, idx, start, stage, text, _, _ = min(candidates, key=lambda c: (not c[5], -c[6], recency[c[0]], c[0], c[1]))
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
    script orders are computed once for all of them; `profiles` (rep -> analytics.error_profile
    over the same calls), when the caller has them already, are used instead of recomputing them."""
    facts = f"plan_facts_{uuid.uuid4().hex}"
    execute(con, f"CREATE TEMP TABLE {facts} AS {CALL_FACTS_SQL}", fact_params(**filters))
    try:
        counts = con.execute(ERROR_COUNTS_SQL.format(source=f"SELECT * FROM {facts}")).df()
        rated = rate(_kpi_counts(con, f"SELECT * FROM {facts}"), targets)
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
            meaning = f"the required stage {focus} was skipped"
            if skipped_in < gap["errors"]:
                meaning += f" (in {skipped_in} of the {gap['errors']} calls that skipped one)"
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
    """The training plan as text for the terminal or a printout."""
    if frame.empty:
        return f"{rep}: no error above the team's rate; nothing to train this month."
    lines = [f"Training plan for {rep} (30 days)"]
    for gap in frame.to_dict("records"):
        significance = "significant" if gap["flagged"] else "not yet significant"
        team = "-"
        if gap["team_rate"] == gap["team_rate"]:
            team = f"{gap['team_errors']} of {gap['team_calls']} calls ({gap['team_rate']:.0%})"
        missed = f"; the rating's KPI {gap['missed_kpi'].replace('_', ' ')} was missed" if gap.get("missed_kpi") else ""
        lines += [
            "",
            f"{gap['rank']}. {gap['meaning']}: {gap['errors']} of {gap['calls']} calls ({gap['rate']:.0%}); "
            f"rest of the team {team}; p = {gap['p_value']:.3f}, {significance}{missed}",
            f"   target in 30 days: at most {gap['target_30d']:.0%} of calls",
        ]
        for moment in gap["examples"]:
            lines.append(
                f"   your call {moment.file} ({moment.started_at[:16]}) at {clock(moment.at)}, {moment.stage}:"
            )
            lines.append(
                f'      "{shorten(moment.text, QUOTE_WIDTH)}"' + (f"  <- {moment.note}" if moment.note else "")
            )
        contrast = gap["contrast"]
        if contrast is not None:
            lines.append(f"   how {contrast.rep} does it ({contrast.file} at {clock(contrast.at)}, {contrast.stage}):")
            lines.append(f'      "{shorten(contrast.text, QUOTE_WIDTH)}"')
    return "\n".join(lines)


def ratings_table(frame: pd.DataFrame, targets: tuple[Kpi, ...] = KPI_TARGETS) -> str:
    if frame.empty:
        return "no scored calls yet"
    shown = frame.assign(
        **{
            kpi.name: [
                f"{v:.0%} of {int(n)} {s}" if v == v else "-"
                for v, n, s in zip(frame[kpi.name], frame[f"{kpi.name}_n"], frame[f"{kpi.name}_status"], strict=True)
            ]
            for kpi in targets
        },
        rating=[
            f"{r} {label}" if pd.notna(r) else label
            for r, label in zip(frame["rating"], frame["rating_label"], strict=True)
        ],
        period=frame["period"].astype(object).map(lambda p: "" if p is None or p != p else f"{p:%Y-%m-%d}"),
    )
    columns = {"rep": "rep"}
    if shown["period"].ne("").any():
        columns["period"] = "period from"
    columns |= {"calls": "calls", **{kpi.name: kpi.name.replace("_", " ") for kpi in targets}, "rating": "rating"}
    if shown["trend"].ne("").any():
        columns["trend"] = "trend"
    return format_table(shown, columns)
