"""Questions the QA specialist asks, answered in SQL on a read-only connection."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salescalls.db import conversation
from salescalls.db.sql import OUTCOME, PERIOD, SCRIPT_ENDS, SUCCESS_OUTCOMES, CallFilter, completed, execute, optional

PERIODS = ("day", "week", "month", "quarter")  # weeks start on Monday (ISO)


def check_period(period: str | None) -> str | None:
    if period is not None and period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not '{period}'")
    return period


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
    return ", ".join(f"{name} {n}" for name, n in sorted(outcomes.items()))


Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MIN_CALLS = 5  # a stage fewer calls got to is not ranked at all: its drop-off share says nothing yet
SIGNIFICANT = 0.05  # a stage is weak when its drop-off is higher than the other stages' at this level (Holm)


def wilson_interval(successes, trials, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval of a proportion; (nan, nan) where there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 % and 100 % and for
    small counts, which is what a stage reached by a dozen calls has.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(k == 0, 0.0, low), np.where(k == n, 1.0, high)  # exact at the ends, no rounding noise
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def dropoff(
    con: duckdb.DuckDBPyConnection,
    script_id: str | None = None,
    *,
    script_version: int | None = None,
    since: str | None = None,
    until: str | None = None,
    segment: str | None = None,
    campaign: str | None = None,
    rep: str | None = None,
    period: str | None = None,
    success: tuple[str, ...] = SUCCESS_OUTCOMES,
) -> pd.DataFrame:
    """The funnel: per script stage, calls that got at least this far (`got_here`, by script
    position, so it never rises down the script), calls in which the stage occurred, calls that
    ended here, split into `dropped` (ended here before the script's end and without a `success`
    outcome) and `completed`, and the drop-off share dropped / got_here with its 95 % Wilson
    interval; who ended the calls and the outcome mix of those that ended here.

    The sign-off row's `got_here` counts the calls that went through the whole script and said
    goodbye. One row per stage of every script version that has scored calls, in script order;
    with `period` (day, week, month, quarter) one such block per period, `period` holding its
    first day. Filters: script and version, call date (`since` inclusive, `until` exclusive, ISO
    dates), client segment (cold/warm/hot), campaign and rep.
    """
    calls = CallFilter(script_id, script_version, since, until, segment, campaign, rep)
    frame = execute(con, DROPOFF_SQL, calls=calls, period=check_period(period), success=success).df()
    frame["outcomes"] = [dict(o) if isinstance(o, dict) else {} for o in frame["outcomes"]]  # outcome -> calls
    frame["outcomes_of_ended"] = frame["outcomes"].map(_outcome_mix)
    frame["drop_low"], frame["drop_high"] = wilson_interval(frame["dropped"], frame["got_here"])
    return frame


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: family-wise error held at the level over all stages judged."""
    order = np.argsort(p_values)
    adjusted = np.empty_like(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


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
    for _, group in content.groupby(script, sort=True):
        judged = group[group["got_here"] >= min_calls]
        if judged.empty:
            continue
        total_dropped, total_got = group["dropped"].sum(), group["got_here"].sum()
        rows = []
        for _, row in judged.iterrows():
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
        ranked["p_adjusted"] = _holm(ranked["p_value"].to_numpy(dtype=float))
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
    """The weak-stage summary the CLI prints and the report shows, one line each."""
    judged = len(ranked)
    if ranked.empty:
        return [f"weakest stages: none judged, no stage was got to by {min_calls} or more calls ({calls} calls)"]
    lines = [
        f"weakest stages (drop-off share against the other stages' together; Fisher's exact test, "
        f"Holm-adjusted over the {judged} stage{'' if judged == 1 else 's'} at least {min_calls} calls got to):"
    ]
    shown = highlighted(ranked)
    if shown.empty:
        return [*lines, f"  none: no stage loses more calls than the others ({calls} calls)"]
    if not shown["significant"].any():
        lines.append(
            f"  with {calls} calls no stage's drop-off is significantly higher than the others' yet "
            f"(smallest adjusted p = {ranked['p_adjusted'].min():.2f}); the highest:"
        )
    for _, row in shown.iterrows():
        when = f"{row['period']:%Y-%m-%d} " if row["period"] != "" else ""
        needed = row["calls_needed"]
        tail = ""
        if not row["significant"] and needed == needed and needed is not None:
            tail = f"; at these shares significant from about {int(needed)} calls getting here"
        lines.append(
            f"  {when}{row['stage']}: {int(row['dropped'])} of {int(row['got_here'])} calls dropped here "
            f"({row['drop_share']:.0%}, {row['drop_low']:.0%}-{row['drop_high']:.0%}) against "
            f"{row['other_share']:.0%} at the other stages (n = {int(row['other_got_here'])}), "
            f"p = {row['p_adjusted']:.2g}{tail}"
        )
    return lines


def compare_versions(
    con: duckdb.DuckDBPyConnection,
    script_id: str,
    version: int | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    days: int | None = None,
) -> pd.DataFrame:
    """Did the team's edit help? Per stage, the drop-off of script `version` (default: the latest
    with calls) against the version before it that has calls: calls that got there and dropped
    there in each, the difference in points and Fisher's exact test of the two shares.

    With `days`, each version is judged on comparable periods: its calls of the `days` days
    before version N's first call (N-1) and of the first `days` days from it (N). Stages are
    matched by name; a stage one version lacks shows NaN there.
    """
    versions = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT script_version FROM calls WHERE script_id = ? ORDER BY 1", [script_id]
        ).fetchall()
    ]
    if version is None and versions:
        version = versions[-1]
    if version not in versions:
        raise ValueError(f"no scored calls of {script_id} v{version}; versions with calls: {versions or 'none'}")
    earlier = [v for v in versions if v < version]
    if not earlier:
        raise ValueError(f"{script_id} v{version} has no earlier version with calls to compare with")
    previous = earlier[-1]
    windows = {previous: (since, until), version: (since, until)}
    if days is not None:
        (first,) = con.execute(
            "SELECT min(started_at) FROM calls WHERE script_id = ? AND script_version = ?", [script_id, version]
        ).fetchone()
        start = pd.Timestamp(first).normalize()
        windows = {
            previous: (str((start - pd.Timedelta(days=days)).date()), str(start.date())),
            version: (str(start.date()), str((start + pd.Timedelta(days=days)).date())),
        }
    frames = {}
    for v, (low, high) in windows.items():
        frame = dropoff(con, script_id, script_version=v, since=low, until=high)
        frames[v] = frame.set_index("stage")[["position", "got_here", "dropped", "drop_share", "calls"]]
    old, new = frames[previous], frames[version]
    rows = []
    for stage in list(new.index) + [s for s in old.index if s not in new.index]:
        row = {"stage": stage, "previous": previous, "version": version}
        for label, frame in (("previous", old), ("current", new)):
            present = stage in frame.index
            row[f"{label}_calls"] = int(frame["calls"].iloc[0]) if len(frame) else 0
            row[f"{label}_got_here"] = int(frame.loc[stage, "got_here"]) if present else np.nan
            row[f"{label}_dropped"] = int(frame.loc[stage, "dropped"]) if present else np.nan
            row[f"{label}_share"] = frame.loc[stage, "drop_share"] if present else np.nan
        both = stage in old.index and stage in new.index and row["previous_got_here"] and row["current_got_here"]
        row["change"] = row["current_share"] - row["previous_share"] if both else np.nan
        row["p_value"] = (
            fisher_p(row["current_dropped"], row["current_got_here"], row["previous_dropped"], row["previous_got_here"])
            if both
            else np.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)


def versions_table(frame: pd.DataFrame) -> str:
    """compare_versions as text: one line per stage, shares with their n, change and p."""
    if frame.empty:
        return "nothing to compare"
    previous, version = int(frame["previous"].iloc[0]), int(frame["version"].iloc[0])

    def share(row, label):
        if row[f"{label}_got_here"] != row[f"{label}_got_here"]:
            return "-"
        return f"{row[f'{label}_share']:.0%} of {int(row[f'{label}_got_here'])}"

    shown = frame.assign(
        before=[share(row, "previous") for _, row in frame.iterrows()],
        after=[share(row, "current") for _, row in frame.iterrows()],
        points=[f"{c * 100:+.0f}" if c == c else "" for c in frame["change"]],
        p=[f"{p:.2g}" if p == p else "" for p in frame["p_value"]],
    )
    header = (
        f"drop-off per stage, v{previous} ({int(frame['previous_calls'].iloc[0])} calls) against "
        f"v{version} ({int(frame['current_calls'].iloc[0])} calls); Fisher's exact test"
    )
    table = format_table(
        shown,
        {
            "stage": "stage",
            "before": f"v{previous} drop-off",
            "after": f"v{version} drop-off",
            "points": "change",
            "p": "p",
        },
    )
    return header + "\n" + table


def format_table(frame: pd.DataFrame, columns: dict[str, str], floats: dict[str, str] | None = None) -> str:
    """A plain-text table for the terminal: `columns` maps frame columns to headers."""
    floats = floats or {}
    rows = [[header for header in columns.values()]]
    for _, record in frame.iterrows():
        row = []
        for column in columns:
            value = record[column]
            if column in floats and pd.notna(value):
                row.append(format(value, floats[column]))
            else:
                row.append("" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths).rstrip())
    return "\n".join(lines)


def clock(seconds: float) -> str:
    """83.4 -> '1:23.4': a moment in a call."""
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def shorten(text: str, width: int) -> str:
    """The text, cut to `width` characters with an ellipsis when longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def dropoff_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no scored calls yet"
    parts = []
    frame = frame.assign(
        interval=[
            f"{low:.0%}-{high:.0%}" if low == low else ""
            for low, high in zip(frame["drop_low"], frame["drop_high"], strict=True)
        ]
    )
    frame = frame.assign(period=frame["period"].astype(object).fillna(""))
    for (script_id, version, period), group in frame.groupby(["script_id", "script_version", "period"], sort=True):
        calls = int(group["calls"].iloc[0])
        when = f", period from {period:%Y-%m-%d}" if period != "" else ""
        parts.append(f"Script {script_id} v{version}{when}: {calls} calls, stages by {group['stage_models'].iloc[0]}")
        parts.append(
            format_table(
                group,
                {
                    "stage": "stage",
                    "got_here": "got this far",
                    "occurred": "occurred",
                    "dropped": "dropped here",
                    "drop_share": "drop-off",
                    "interval": "95% interval",
                    "completed": "completed here",
                    "dropped_by_customer": "dropped by customer",
                    "outcomes_of_ended": "outcomes of calls ended here",
                },
                {"drop_share": ".0%"},
            )
        )
    return "\n".join(parts)


OUTCOME_MIX_SQL = f"""
SELECT {PERIOD} AS period, {OUTCOME} AS outcome, count(*) AS calls
FROM calls c JOIN call_results r USING (call_no)
WHERE {CallFilter.SQL}
GROUP BY ALL ORDER BY period, outcome
"""


def outcome_mix(con: duckdb.DuckDBPyConnection, period: str | None = None, **filters) -> pd.DataFrame:
    """Calls per outcome (sale, meeting, callback, refusal, unknown), per period when given."""
    return execute(con, OUTCOME_MIX_SQL, calls=CallFilter(**filters), period=check_period(period)).df()


def period_label(start, period: str | None) -> str:
    """A period's first day as people name the period: 2026-11-23, 2026-W48, 2026-11, 2026-Q4; 'all' without one."""
    if period is None or start is None or start != start:
        return "all"
    start = pd.Timestamp(start)
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{start:%Y-%m}"
    if period == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start:%Y-%m-%d}"


STORED_METRICS_SQL = f"""
SELECT c.call_id, c.file, c.rep, c.started_at, c.duration, {", ".join("r." + m for m in conversation.METRICS)}
FROM calls c JOIN call_results r USING (call_no)
WHERE r.talk_ratio IS NOT NULL AND {optional("c.call_id", "call_id")} AND {CallFilter.SQL}
ORDER BY c.started_at, c.call_id
"""
REP_AVERAGED = (
    "talk_ratio",
    "longest_monologue",
    "longest_customer_story",
    "rep_interruptions",
    "customer_interruptions",
    "rep_questions",
    "rep_words_per_minute",
    "silence_share",
)


def conversation_metrics(con: duckdb.DuckDBPyConnection, call_id: str | None = None, **filters) -> pd.DataFrame:
    """Per call: talk-to-listen ratio, longest rep monologue, customer's longest story,
    interruptions by each party, questions the rep asked, rep words per minute, silence share
    (definitions in salescalls.db.conversation; computed when the call was stored)."""
    return execute(con, STORED_METRICS_SQL, calls=CallFilter(**filters), call_id=call_id).df()


def rep_conversation_metrics(con: duckdb.DuckDBPyConnection, **filters) -> pd.DataFrame:
    """The per-call metrics averaged per rep (each call counts once), with the number of calls."""
    averages = ", ".join(f"avg(r.{m}) AS {m}" for m in REP_AVERAGED)
    return execute(
        con,
        f"SELECT coalesce(c.rep, '(unknown)') AS rep, count(*) AS calls, {averages} "
        f"FROM calls c JOIN call_results r USING (call_no) WHERE r.talk_ratio IS NOT NULL AND {CallFilter.SQL} "
        "GROUP BY ALL ORDER BY rep",
        calls=CallFilter(**filters),
    ).df()


LONG_MONOLOGUE = 60.0  # seconds: a rep turn longer than this is a monologue error
HIGH_TALK_RATIO = 0.65  # the rep talking more than this share is an error (won calls sit near 43 %)
FEW_QUESTIONS = 2  # fewer rep questions than this in a call that got past the greeting is an error
SIGNIFICANCE = 0.05  # a rep's error rate is flagged when Fisher's exact test against the team is below this

ERRORS = {
    "skipped_required_stage": "a required stage was skipped",
    "stages_out_of_order": "required stages out of the script's order",
    "forbidden_phrase": "the rep said a forbidden phrase",
    "no_close_attempt": "the call reached the offer but the rep never moved to the close",
    "long_monologue": f"a rep monologue over {LONG_MONOLOGUE:.0f} s",
    "talks_too_much": f"the rep talked over {HIGH_TALK_RATIO:.0%} of the time",
    "few_questions": f"fewer than {FEW_QUESTIONS} questions in a call past the greeting",
    "interrupts": "the rep interrupted the customer",
}


def stage_orders(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], list[str]]:
    """(script_id, script_version) -> its stages in script order."""
    rows = con.execute(
        "SELECT script_id, script_version, list(stage ORDER BY position) FROM script_stages GROUP BY ALL"
    ).fetchall()
    return {(script_id, version): list(stages) for script_id, version, stages in rows}


# Per script version: its required stages before the sign-off (the last stage), in order. The last
# two are the offer and the close: a call that reached the first and not the second had no close.
REQUIRED_SQL = """
SELECT script_id, script_version, list(stage ORDER BY position) AS required
FROM script_stages s
WHERE required AND position < (SELECT max(position) FROM script_stages l
                               WHERE l.script_id = s.script_id AND l.script_version = s.script_version)
GROUP BY ALL
"""

# One row per call: its errors (ERRORS) and what the KPIs need (coaching). Parameters: fact_params.
CALL_FACTS_SQL = f"""
SELECT c.call_id, coalesce(c.rep, '(unknown)') AS rep, c.started_at,
       {PERIOD} AS period,
       {OUTCOME} AS outcome,
       coalesce(len(q.required) >= 2 AND list_contains(r.stages_reached, q.required[-2]), false) AS offered,
       r.talk_ratio,
       len(r.stages_skipped) > 0 AS skipped_required_stage,
       len(r.out_of_order) > 0 AS stages_out_of_order,
       coalesce(CAST(r.forbidden AS VARCHAR), '[]') <> '[]' AS forbidden_phrase,
       offered AND NOT list_contains(r.stages_reached, q.required[-1]) AS no_close_attempt,
       coalesce(r.longest_monologue, 0) > $long_monologue AS long_monologue,
       coalesce(r.talk_ratio, 0) > $high_talk_ratio AS talks_too_much,
       len(r.stages_reached) > 1 AND coalesce(r.rep_questions, 0) < $few_questions AS few_questions,
       coalesce(r.rep_interruptions, 0) > 0 AS interrupts,
       r.first_utterance_id, r.last_utterance_id
FROM calls c JOIN call_results r USING (call_no)
LEFT JOIN ({REQUIRED_SQL}) q USING (script_id, script_version)
WHERE {CallFilter.SQL}
"""
ERROR_COUNTS_SQL = (
    "SELECT rep, count(*) AS calls, "
    + ", ".join(f"count(*) FILTER (WHERE {error}) AS {error}" for error in ERRORS)
    + " FROM ({source}) GROUP BY rep ORDER BY rep"
)


def fact_params(period: str | None = None, **filters) -> dict:
    """CALL_FACTS_SQL's parameters: the period, the error thresholds and the call filter."""
    thresholds = {"long_monologue": LONG_MONOLOGUE, "high_talk_ratio": HIGH_TALK_RATIO, "few_questions": FEW_QUESTIONS}
    return {"period": check_period(period), **thresholds, **CallFilter(**filters).params()}


def call_errors(con: duckdb.DuckDBPyConnection, **filters) -> pd.DataFrame:
    """One row per call with a True/False column per error in ERRORS (definitions there)."""
    sql = f"SELECT call_id, rep, started_at, {', '.join(ERRORS)} FROM ({CALL_FACTS_SQL})"
    return execute(con, sql + " ORDER BY started_at, call_id", fact_params(**filters)).df()


def error_counts(con: duckdb.DuckDBPyConnection, **filters) -> pd.DataFrame:
    """Per rep: calls, and the number of calls with each error."""
    return execute(con, ERROR_COUNTS_SQL.format(source=CALL_FACTS_SQL), fact_params(**filters)).df()


def error_profile(con: duckdb.DuckDBPyConnection, rep: str, **filters) -> pd.DataFrame:
    """Each error's rate for the rep and for the rest of the team, with 95 % Wilson intervals,
    Fisher's exact test of the difference, and `flagged` when the rep's rate is significantly higher."""
    return profile_from_counts(error_counts(con, **filters), rep)


def fisher_p(k: int, n: int, k_other: int, n_other: int) -> float:
    """Two-sided p-value of Fisher's exact test that k of n and k_other of n_other share one rate.

    The same test as scipy.stats.fisher_exact on [[k, n - k], [k_other, n_other - k_other]] (the sum
    of the hypergeometric probabilities no larger than the observed one), computed over the whole
    support at once: at a team's thousands of calls this is ~40x faster, which a report with
    hundreds of reps needs.
    """
    from scipy.special import gammaln

    total, hits = n + n_other, k + k_other

    def log_pmf(x):  # log P(X = x), X hypergeometric: n draws from `total` holding `hits` successes
        return (
            gammaln(hits + 1) - gammaln(x + 1) - gammaln(hits - x + 1)
            + gammaln(total - hits + 1) - gammaln(n - x + 1) - gammaln(total - hits - n + x + 1)
            - gammaln(total + 1) + gammaln(n + 1) + gammaln(total - n + 1)
        )  # fmt: skip

    support = np.arange(max(0, n - (total - hits)), min(n, hits) + 1)
    probabilities = np.exp(log_pmf(support))
    observed = np.exp(log_pmf(np.array(k)))
    return float(min(1.0, probabilities[probabilities <= observed * (1 + 1e-7)].sum()))


def profile_from_counts(counts: pd.DataFrame, rep: str) -> pd.DataFrame:
    """error_profile's table from error_counts' per-rep counts."""
    if counts.empty or rep not in set(counts["rep"]):
        return pd.DataFrame()
    mine = counts[counts["rep"] == rep].iloc[0]
    team = counts[counts["rep"] != rep].drop(columns="rep").sum()
    n, n_team = int(mine["calls"]), int(team["calls"])  # team: zeros when the rep is the only one
    rows = []
    for error, meaning in ERRORS.items():
        k, k_team = int(mine[error]), int(team[error])
        p_value = fisher_p(k, n, k_team, n_team) if n_team else float("nan")
        (low,), (high,) = wilson_interval([k], [n])
        (team_low,), (team_high,) = wilson_interval([k_team], [n_team])
        rows.append(
            {
                "error": error,
                "meaning": meaning,
                "calls": n,
                "errors": k,
                "rate": k / n,
                "low": low,
                "high": high,
                "team_calls": n_team,
                "team_errors": k_team,
                "team_rate": k_team / n_team if n_team else float("nan"),
                "team_low": team_low,
                "team_high": team_high,
                "p_value": p_value,
                "flagged": bool(n_team and p_value < SIGNIFICANCE and k / n > k_team / n_team),
            }
        )
    return pd.DataFrame(rows)
