"""The script funnel: per stage, calls that got this far, in which it occurred, that dropped or
completed there, with intervals; the weak stages by drop-off hazard against the other stages."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salescalls.db.sql import OUTCOME, PERIOD, SCRIPT_ENDS, SUCCESS_OUTCOMES, CallFilter, completed, execute
from salescalls.i18n import _, ngettext, number, percent
from salescalls.insights.analytics import check_period, outcome_name
from salescalls.insights.stats import fisher_p, holm, wilson_interval
from salescalls.insights.tables import format_table

DROPOFF_SQL = f"""
WITH scored AS (
    SELECT c.script_id, c.script_version, c.stage_model, r.end_stage, r.ended_by, r.stages_reached,
           {PERIOD} AS period,
           {OUTCOME} AS outcome
    FROM calls c JOIN call_results r USING (call_no)
    WHERE {CallFilter.SQL}
),
paths AS (  -- one pass over the calls: how many took each path through the script, ending how
    -- (grouped on the path's 64-bit hash, cheaper than on the list; with a few thousand distinct
    -- paths a collision is astronomically unlikely)
    SELECT row_number() OVER () AS path_no, *
    FROM (SELECT script_id, script_version, period, stage_model, hash(stages_reached) AS path, end_stage, ended_by,
                 outcome, any_value(stages_reached) AS stages_reached, count(*) AS n
          FROM scored GROUP BY script_id, script_version, period, stage_model, path, end_stage, ended_by, outcome)
),
ends AS (  -- per script version: the sign-off (its last stage) and the script's end (the stage before it)
    {SCRIPT_ENDS}
),
furthest AS (  -- per path: the furthest stage before the sign-off it reached, by script position
    SELECT path_no, max(s.position) AS furthest
    FROM (SELECT path_no, script_id, script_version, unnest(stages_reached) AS stage FROM paths) p
    JOIN script_stages s USING (script_id, script_version, stage)
    JOIN ends e USING (script_id, script_version)
    WHERE s.position < e.sign_off
    GROUP BY path_no
),
walked AS (  -- each path with how far it got, whether it signed off, and whether it ended complete
    SELECT p.*, coalesce(f.furthest, -1) AS furthest, e.sign_off, e.script_end,
           list_contains(p.stages_reached, so.stage) AS signed_off,
           {completed("end_pos.position", "p.outcome")} AS complete
    FROM paths p
    JOIN ends e USING (script_id, script_version)
    JOIN script_stages so ON so.script_id = p.script_id AND so.script_version = p.script_version
        AND so.position = e.sign_off
    LEFT JOIN furthest f USING (path_no)
    LEFT JOIN script_stages end_pos ON end_pos.script_id = p.script_id AND end_pos.script_version = p.script_version
        AND end_pos.stage = p.end_stage
),
got AS (  -- calls that got at least this far: monotone down the script
    SELECT s.script_id, s.script_version, w.period, s.stage,
           sum(w.n) FILTER (WHERE CASE WHEN s.position < w.sign_off THEN w.furthest >= s.position
                                       ELSE w.furthest = w.script_end AND w.signed_off END) AS n
    FROM script_stages s JOIN walked w USING (script_id, script_version)
    GROUP BY ALL
),
occurred AS (
    SELECT script_id, script_version, period, stage, sum(n) AS n
    FROM (SELECT script_id, script_version, period, n, unnest(stages_reached) AS stage FROM walked)
    GROUP BY ALL
),
ended AS (
    SELECT script_id, script_version, period, end_stage AS stage, sum(n) AS n,
           coalesce(sum(n) FILTER (WHERE NOT complete), 0) AS dropped,
           coalesce(sum(n) FILTER (WHERE ended_by = 'customer'), 0) AS by_customer,
           coalesce(sum(n) FILTER (WHERE ended_by = 'rep'), 0) AS by_rep,
           coalesce(sum(n) FILTER (WHERE NOT complete AND ended_by = 'customer'), 0) AS dropped_by_customer
    FROM walked GROUP BY ALL
),
mix AS (
    SELECT script_id, script_version, period, stage,
           map(list(outcome ORDER BY outcome), list(n ORDER BY outcome)) AS outcomes
    FROM (SELECT script_id, script_version, period, end_stage AS stage, outcome, CAST(sum(n) AS BIGINT) AS n
          FROM walked GROUP BY ALL)
    GROUP BY ALL
),
totals AS (
    SELECT script_id, script_version, period, sum(n) AS calls,
           string_agg(DISTINCT stage_model, ', ' ORDER BY stage_model) AS stage_models
    FROM walked GROUP BY ALL
)
SELECT s.script_id, s.script_version, t.period, s.position, s.stage, s.required, t.calls, t.stage_models,
       CAST(coalesce(got.n, 0) AS BIGINT) AS got_here,
       CAST(coalesce(occurred.n, 0) AS BIGINT) AS occurred,
       CAST(coalesce(ended.n, 0) AS BIGINT) AS ended_here,
       CAST(coalesce(ended.dropped, 0) AS BIGINT) AS dropped,
       CAST(coalesce(ended.n, 0) - coalesce(ended.dropped, 0) AS BIGINT) AS completed,
       coalesce(ended.dropped, 0) / nullif(coalesce(got.n, 0), 0) AS drop_share,
       CAST(coalesce(ended.by_customer, 0) AS BIGINT) AS ended_by_customer,
       CAST(coalesce(ended.by_rep, 0) AS BIGINT) AS ended_by_rep,
       CAST(coalesce(ended.dropped_by_customer, 0) AS BIGINT) AS dropped_by_customer,
       mix.outcomes
FROM script_stages s
JOIN totals t USING (script_id, script_version)
LEFT JOIN got ON got.script_id = s.script_id AND got.script_version = s.script_version
    AND got.period IS NOT DISTINCT FROM t.period AND got.stage = s.stage
LEFT JOIN occurred ON occurred.script_id = s.script_id AND occurred.script_version = s.script_version
    AND occurred.period IS NOT DISTINCT FROM t.period AND occurred.stage = s.stage
LEFT JOIN ended ON ended.script_id = s.script_id AND ended.script_version = s.script_version
    AND ended.period IS NOT DISTINCT FROM t.period AND ended.stage = s.stage
LEFT JOIN mix ON mix.script_id = s.script_id AND mix.script_version = s.script_version
    AND mix.period IS NOT DISTINCT FROM t.period AND mix.stage = s.stage
ORDER BY s.script_id, s.script_version, t.period, s.position
"""


def _outcome_mix(outcomes) -> str:
    """{'refusal': 2, 'sale': 1} -> 'refusal 2, sale 1' (empty for stages no call ended at)."""
    return ", ".join(f"{outcome_name(name)} {n}" for name, n in sorted(outcomes.items()))


MIN_CALLS = 5  # a stage fewer calls got to is not ranked at all: its drop-off share says nothing yet


SIGNIFICANT = 0.05  # a stage is weak when its drop-off is higher than the other stages' at this level (Holm)


def dropoff(
    con: duckdb.DuckDBPyConnection,
    script_id: str | None = None,
    *,
    period: str | None = None,
    success: tuple[str, ...] = SUCCESS_OUTCOMES,
    **filters,
) -> pd.DataFrame:
    """The funnel: per script stage, calls that got at least this far (`got_here`, by script
    position, so it never rises down the script), calls in which the stage occurred, calls that
    ended here, split into `dropped` (ended here before the script's end and without a `success`
    outcome) and `completed`, and the drop-off share dropped / got_here with its 95 % Wilson
    interval; who ended the calls and the outcome mix of those that ended here.

    The sign-off row's `got_here` counts the calls that went through the whole script and said
    goodbye. One row per stage of every script version that has scored calls, in script order;
    with `period` (day, week, month, quarter) one such block per period, `period` holding its
    first day. `filters` are CallFilter's: script version, call date (`since` inclusive, `until`
    exclusive, ISO dates), client segment (cold/warm/hot), campaign and rep.
    """
    calls = CallFilter(script_id=script_id, **filters)
    frame = execute(con, DROPOFF_SQL, calls=calls, period=check_period(period), success=success).df()
    frame["outcomes"] = [dict(o) if isinstance(o, dict) else {} for o in frame["outcomes"]]  # outcome -> calls
    frame["outcomes_of_ended"] = frame["outcomes"].map(_outcome_mix)
    frame["drop_low"], frame["drop_high"] = wilson_interval(frame["dropped"], frame["got_here"])
    return frame


def calls_needed(dropped: int, got: int, dropped_other: int, got_other: int, level: float = SIGNIFICANT) -> int | None:
    """About how many calls would have to get to the stage, at today's shares (the other stages'
    growing in proportion), for its higher drop-off to be significant; None if it is not higher."""
    if not got or not got_other or dropped / got <= dropped_other / got_other:
        return None
    if fisher_p(dropped, got, dropped_other, got_other) < level:
        return got
    low, high = 1.0, 2.0
    while (
        fisher_p(round(dropped * high), round(got * high), round(dropped_other * high), round(got_other * high))
        >= level
    ):
        low, high = high, high * 2
        if high > 1e5:
            return None
    while high - low > 0.01 * low:
        middle = (low + high) / 2
        p_value = fisher_p(
            round(dropped * middle), round(got * middle), round(dropped_other * middle), round(got_other * middle)
        )
        low, high = (low, middle) if p_value < level else (middle, high)
    return int(np.ceil(got * high))


def weakest_stages(frame: pd.DataFrame, min_calls: int = MIN_CALLS) -> pd.DataFrame:
    """Stages ranked by how much higher their drop-off share (the hazard: dropped / got here) is
    than that of the script's other stages taken together, in each script version and period.

    Completions are not drop-offs, and the sign-off is not judged. A stage is judged when at least
    `min_calls` calls got to it; `p_value` is Fisher's exact test of its share against the other
    stages' pooled share, `p_adjusted` Holm's adjustment over the stages judged, `significant`
    that adjusted value under SIGNIFICANT with a higher share, and `calls_needed` about how many
    calls getting here would make today's difference significant.
    """
    script = ["script_id", "script_version", "period"]
    frame = frame.assign(period=frame["period"].astype(object).fillna(""))  # groupby drops NaN keys
    last = frame.groupby(script)["position"].transform("max")
    content = frame[frame["position"] < last]
    parts = []
    for _script, group in content.groupby(script, sort=True):
        judged = group[group["got_here"] >= min_calls]
        if judged.empty:
            continue
        total_dropped, total_got = group["dropped"].sum(), group["got_here"].sum()
        rows = []
        for _index, row in judged.iterrows():
            d, g = int(row["dropped"]), int(row["got_here"])
            d_other, g_other = int(total_dropped - d), int(total_got - g)
            other_share = d_other / g_other if g_other else float("nan")
            level = SIGNIFICANT / len(judged)  # the first step of Holm's adjustment
            rows.append(
                {
                    **row.to_dict(),
                    "other_dropped": d_other,
                    "other_got_here": g_other,
                    "other_share": other_share,
                    "worse_by": row["drop_share"] - other_share if g_other else float("nan"),
                    "p_value": fisher_p(d, g, d_other, g_other) if g_other else 1.0,
                    "calls_needed": calls_needed(d, g, d_other, g_other, level),
                }
            )
        ranked = pd.DataFrame(rows)
        ranked["p_adjusted"] = holm(ranked["p_value"].to_numpy(dtype=float))
        ranked["significant"] = (ranked["p_adjusted"] < SIGNIFICANT) & (ranked["worse_by"] > 0)
        parts.append(ranked)
    if not parts:
        return frame.iloc[0:0].assign(worse_by=[], p_value=[], p_adjusted=[], significant=[])
    ranked = pd.concat(parts, ignore_index=True)
    return ranked.sort_values(["worse_by", "p_value"], ascending=[False, True], kind="stable").reset_index(drop=True)


def highlighted(ranked: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The weak stages a reader is shown: the significant ones; when none is, the one with the
    highest drop-off (marked not significant), so the table never reads as all clear."""
    if ranked.empty:
        return ranked
    significant = ranked[ranked["significant"]]
    if not significant.empty:
        return significant.head(top)
    higher = ranked[ranked["worse_by"] > 0]
    return higher.head(1)


def weak_stage_lines(ranked: pd.DataFrame, calls: int, min_calls: int = MIN_CALLS) -> list[str]:
    """The weak-stage summary the CLI prints and the report shows, one line each, in the UI language."""
    judged = len(ranked)
    if ranked.empty:
        return [
            _(
                "weakest stages: none judged, no stage was got to by {min_calls} or more calls (calls in all: {calls})",
                min_calls=min_calls,
                calls=calls,
            )
        ]
    lines = [
        ngettext(
            "weakest stages (drop-off share against the other stages' together; Fisher's exact test, "
            "Holm-adjusted over the {n} stage at least {min_calls} calls got to):",
            "weakest stages (drop-off share against the other stages' together; Fisher's exact test, "
            "Holm-adjusted over the {n} stages at least {min_calls} calls got to):",
            judged,
            min_calls=min_calls,
        )
    ]
    shown = highlighted(ranked)
    if shown.empty:
        none = _("none: no stage loses more calls than the others (calls in all: {calls})", calls=calls)
        return [*lines, "  " + none]
    if not shown["significant"].any():
        lines.append(
            "  "
            + _(
                "with {calls} calls no stage's drop-off is significantly higher than the others' yet "
                "(smallest adjusted p = {p}); the highest:",
                calls=calls,
                p=number(ranked["p_adjusted"].min(), ".2f"),
            )
        )
    for _row, row in shown.iterrows():
        when = f"{row['period']:%Y-%m-%d} " if row["period"] != "" else ""
        needed = row["calls_needed"]
        tail = ""
        if not row["significant"] and needed == needed and needed is not None:
            tail = _("; at these shares significant from about {n} calls getting here", n=int(needed))
        said = _(
            "{dropped} of {got} calls dropped here ({share}, {low}-{high}) against {other} at the other "
            "stages (n = {other_n}), p = {p}",
            dropped=int(row["dropped"]),
            got=int(row["got_here"]),
            share=percent(row["drop_share"]),
            low=percent(row["drop_low"]),
            high=percent(row["drop_high"]),
            other=percent(row["other_share"]),
            other_n=int(row["other_got_here"]),
            p=number(row["p_adjusted"], ".2g"),
        )
        lines.append(f"  {when}{row['stage']}: {said}{tail}")
    return lines


def dropoff_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return _("no scored calls yet")
    parts = []
    frame = frame.assign(
        interval=[
            f"{percent(low)}-{percent(high)}" if low == low else ""
            for low, high in zip(frame["drop_low"], frame["drop_high"], strict=True)
        ]
    )
    frame = frame.assign(period=frame["period"].astype(object).fillna(""))
    for (script_id, version, period), group in frame.groupby(["script_id", "script_version", "period"], sort=True):
        calls = int(group["calls"].iloc[0])
        when = _(", period from {day}", day=f"{period:%Y-%m-%d}") if period != "" else ""
        models = group["stage_models"].iloc[0]
        parts.append(
            ngettext(
                "Script {script} v{version}{when}: {n} call, stages by {models}",
                "Script {script} v{version}{when}: {n} calls, stages by {models}",
                calls,
                script=script_id,
                version=version,
                when=when,
                models=models,
            )
        )
        parts.append(
            format_table(
                group,
                {
                    "stage": _("stage"),
                    "got_here": _("got this far"),
                    "occurred": _("occurred"),
                    "dropped": _("dropped here"),
                    "drop_share": _("drop-off"),
                    "interval": _("{level} interval", level=percent(0.95)),
                    "completed": _("completed here"),
                    "dropped_by_customer": _("dropped by customer"),
                    "outcomes_of_ended": _("outcomes of calls ended here"),
                },
                {"drop_share": ".0%"},
            )
        )
    return "\n".join(parts)
