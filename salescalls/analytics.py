"""Questions the QA specialist asks, answered in SQL on a read-only connection."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from .outcomes import MIN_CONFIDENCE

DROPOFF_SQL = """
WITH scored AS (
    SELECT c.call_id, c.script_id, c.script_version, c.stage_model, r.end_stage, r.ended_by, r.stages_reached,
           coalesce(c.crm_outcome, r.detected_outcome,
                    CASE WHEN r.outcome_confidence >= ? THEN r.predicted_outcome END, 'unknown') AS outcome
    FROM calls c JOIN call_results r USING (call_id)
    WHERE (CAST(? AS VARCHAR) IS NULL OR c.script_id = ?)
      AND (CAST(? AS INTEGER) IS NULL OR c.script_version = ?)
      AND (CAST(? AS TIMESTAMP) IS NULL OR c.started_at >= ?)
      AND (CAST(? AS TIMESTAMP) IS NULL OR c.started_at < ?)
      AND (CAST(? AS VARCHAR) IS NULL OR c.segment = ?)
      AND (CAST(? AS VARCHAR) IS NULL OR c.campaign = ?)
      AND (CAST(? AS VARCHAR) IS NULL OR c.rep = ?)
),
reached AS (
    SELECT script_id, script_version, stage, count(*) AS n
    FROM (SELECT script_id, script_version, unnest(stages_reached) AS stage FROM scored)
    GROUP BY ALL
),
ended AS (
    SELECT script_id, script_version, end_stage AS stage, count(*) AS n,
           count(*) FILTER (WHERE ended_by = 'customer') AS by_customer,
           string_agg(outcome, ', ' ORDER BY outcome) AS outcomes
    FROM scored
    GROUP BY ALL
),
totals AS (
    SELECT script_id, script_version, count(*) AS calls,
           string_agg(DISTINCT stage_model, ', ' ORDER BY stage_model) AS stage_models
    FROM scored GROUP BY ALL
)
SELECT s.script_id, s.script_version, s.position, s.stage, s.required, t.calls, t.stage_models,
       coalesce(reached.n, 0) AS reached,
       coalesce(ended.n, 0) AS ended_here,
       coalesce(ended.n, 0) / nullif(coalesce(reached.n, 0), 0) AS share_ended,
       coalesce(ended.by_customer, 0) AS ended_by_customer,
       ended.outcomes AS outcomes_of_ended
FROM script_stages s
JOIN totals t USING (script_id, script_version)
LEFT JOIN reached USING (script_id, script_version, stage)
LEFT JOIN ended USING (script_id, script_version, stage)
ORDER BY s.script_id, s.script_version, s.position
"""


def _outcome_mix(outcomes) -> str:
    """'refusal, refusal, sale' -> 'refusal 2, sale 1' (empty for stages no call ended at)."""
    if not isinstance(outcomes, str) or not outcomes:
        return ""
    counts: dict[str, int] = {}
    for outcome in outcomes.split(", "):
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{name} {n}" for name, n in counts.items())


Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MIN_CALLS = 10  # a stage reached by fewer calls is not ranked: its drop-off rate is too uncertain


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
) -> pd.DataFrame:
    """Per script stage: calls that reached it, calls that ended there, and the share that ended,
    with its 95 % Wilson interval.

    One row per stage of every script version that has scored calls, in script order. Filters:
    script and version, call date (`since` inclusive, `until` exclusive, ISO dates), client
    segment (cold/warm/hot), campaign and rep.
    """
    filters = [script_id, script_version, since, until, segment, campaign, rep]
    parameters = [MIN_CONFIDENCE] + [value for value in filters for _ in (0, 1)]
    frame = con.execute(DROPOFF_SQL, parameters).df()
    frame["outcomes_of_ended"] = frame["outcomes_of_ended"].map(_outcome_mix)
    frame["share_low"], frame["share_high"] = wilson_interval(frame["ended_here"], frame["reached"])
    return frame


def weakest_stages(frame: pd.DataFrame, min_calls: int = MIN_CALLS) -> pd.DataFrame:
    """Stages ranked by how much more often calls end there than at the stage before.

    Only stages reached by at least `min_calls` calls are ranked (and compared only with a
    previous stage that also was); the sign-off stage is left out, since ending there is how a
    complete call ends. `worse_by` is the difference in drop-off share, in points of 1.
    """
    script = ["script_id", "script_version"]
    last = frame.groupby(script)["position"].transform("max")
    judged = frame[(frame["reached"] >= min_calls) & (frame["position"] < last)].sort_values([*script, "position"])
    if judged.empty:
        return judged.reset_index(drop=True)
    # The first judged stage of a script is compared with no drop-off at all.
    worse_by = judged["share_ended"] - judged.groupby(script)["share_ended"].shift(fill_value=0.0)
    ranked = judged.assign(worse_by=worse_by)
    return ranked.sort_values("worse_by", ascending=False, kind="stable").reset_index(drop=True)


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
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def dropoff_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no scored calls yet"
    parts = []
    frame = frame.assign(
        interval=[
            f"{low:.0%}-{high:.0%}" if low == low else ""
            for low, high in zip(frame["share_low"], frame["share_high"], strict=True)
        ]
    )
    for (script_id, version), group in frame.groupby(["script_id", "script_version"], sort=True):
        calls = int(group["calls"].iloc[0])
        parts.append(f"Script {script_id} v{version}: {calls} calls, stages by {group['stage_models'].iloc[0]}")
        parts.append(
            format_table(
                group,
                {
                    "stage": "stage",
                    "reached": "reached",
                    "ended_here": "ended here",
                    "share_ended": "share ended",
                    "interval": "95% interval",
                    "ended_by_customer": "by customer",
                    "outcomes_of_ended": "outcomes of calls ended here",
                },
                {"share_ended": ".0%"},
            )
        )
    return "\n".join(parts)


MONOLOGUE_GAP = 1.5  # seconds: one party's utterances closer than this, with no reply between, are one turn
INTERRUPTION_OVERLAP = 0.3  # seconds of talking over the other party's utterance that make an interruption

CONVERSATION_SQL = """
WITH spoken AS (
    SELECT u.call_id, u.idx, u.role, u.start_s, u.end_s, u.text,
           len(string_split(trim(u.text), ' ')) AS words
    FROM utterances u JOIN calls c USING (call_id)
    WHERE NOT u.backchannel AND u.role IN ('rep', 'customer')
      AND (CAST(? AS VARCHAR) IS NULL OR c.call_id = ?)
),
ordered AS (
    SELECT *,
           lag(role) OVER w AS previous_role,
           lag(end_s) OVER w AS previous_end,
           max(end_s) OVER (PARTITION BY call_id ORDER BY start_s, idx
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS speech_until
    FROM spoken
    WINDOW w AS (PARTITION BY call_id ORDER BY start_s, idx)
),
turns AS (  -- consecutive utterances of one party with no reply between and short pauses form a turn
    SELECT *, sum(CASE WHEN previous_role IS DISTINCT FROM role OR start_s - previous_end > ? THEN 1 ELSE 0 END)
                  OVER (PARTITION BY call_id ORDER BY start_s, idx) AS turn
    FROM ordered
),
turn_lengths AS (
    SELECT call_id, role, turn, max(end_s) - min(start_s) AS seconds FROM turns GROUP BY ALL
),
speech AS (  -- seconds in which anyone speaks: overlapping utterances counted once
    SELECT call_id, sum(greatest(end_s - greatest(start_s, coalesce(speech_until, start_s)), 0)) AS seconds
    FROM ordered GROUP BY call_id
)
SELECT c.call_id, c.file, c.rep, c.started_at, c.duration,
       sum(o.end_s - o.start_s) FILTER (WHERE o.role = 'rep') AS rep_seconds,
       sum(o.end_s - o.start_s) FILTER (WHERE o.role = 'customer') AS customer_seconds,
       rep_seconds / nullif(rep_seconds + customer_seconds, 0) AS talk_ratio,
       (SELECT max(seconds) FROM turn_lengths t WHERE t.call_id = c.call_id AND t.role = 'rep')
           AS longest_monologue,
       (SELECT max(seconds) FROM turn_lengths t WHERE t.call_id = c.call_id AND t.role = 'customer')
           AS longest_customer_story,
       count(*) FILTER (WHERE o.role = 'rep' AND o.previous_role = 'customer'
                        AND o.previous_end - o.start_s > ?) AS rep_interruptions,
       count(*) FILTER (WHERE o.role = 'customer' AND o.previous_role = 'rep'
                        AND o.previous_end - o.start_s > ?) AS customer_interruptions,
       count(*) FILTER (WHERE o.role = 'rep' AND rtrim(o.text) LIKE '%?') AS rep_questions,
       sum(o.words) FILTER (WHERE o.role = 'rep') / nullif(rep_seconds / 60, 0) AS rep_words_per_minute,
       greatest(1 - any_value(s.seconds) / nullif(c.duration, 0), 0) AS silence_share
FROM calls c JOIN ordered o USING (call_id) JOIN speech s USING (call_id)
GROUP BY c.call_id, c.file, c.rep, c.started_at, c.duration
ORDER BY c.started_at, c.call_id
"""


def conversation_metrics(con: duckdb.DuckDBPyConnection, call_id: str | None = None) -> pd.DataFrame:
    """Per call: talk-to-listen ratio, longest rep monologue, customer's longest story,
    interruptions by each party, questions the rep asked, rep words per minute, silence share.

    Back-channels ("uh-huh") are listening, not talking, and are left out. A monologue is a run of
    one party's utterances with no reply between and pauses under MONOLOGUE_GAP seconds; an
    interruption is an utterance that starts more than INTERRUPTION_OVERLAP seconds before the
    other party's utterance ended.
    """
    parameters = [call_id, call_id, MONOLOGUE_GAP, INTERRUPTION_OVERLAP, INTERRUPTION_OVERLAP]
    return con.execute(CONVERSATION_SQL, parameters).df()


def rep_conversation_metrics(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The per-call metrics averaged per rep (each call counts once), with the number of calls."""
    frame = conversation_metrics(con)
    if frame.empty:
        return frame
    frame["rep"] = frame["rep"].fillna("(unknown)")
    columns = [
        "talk_ratio",
        "longest_monologue",
        "longest_customer_story",
        "rep_interruptions",
        "customer_interruptions",
        "rep_questions",
        "rep_words_per_minute",
        "silence_share",
    ]
    grouped = frame.groupby("rep")[columns].mean()
    grouped.insert(0, "calls", frame.groupby("rep").size())
    return grouped.reset_index()


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


def call_errors(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per call with a True/False column per error in ERRORS (definitions there)."""
    results = con.execute(
        """
        SELECT c.call_id, coalesce(c.rep, '(unknown)') AS rep, c.script_id, c.script_version,
               len(r.stages_skipped) > 0 AS skipped_required_stage,
               len(r.out_of_order) > 0 AS stages_out_of_order,
               json_array_length(r.forbidden) > 0 AS forbidden_phrase,
               r.stages_reached, r.end_stage
        FROM calls c JOIN call_results r USING (call_id)
        """
    ).df()
    if results.empty:
        return results
    stages = con.execute(
        "SELECT script_id, script_version, stage, position, required FROM script_stages ORDER BY position"
    ).df()
    metrics = conversation_metrics(con).set_index("call_id")[
        ["longest_monologue", "talk_ratio", "rep_questions", "rep_interruptions"]
    ]
    close_of: dict[tuple, tuple[str, str] | None] = {}
    for key, group in stages.groupby(["script_id", "script_version"]):
        ordered = group.sort_values("position")
        sign_off = ordered["stage"].iloc[-1]
        required = [s for s in ordered[ordered["required"]]["stage"] if s != sign_off]
        close_of[key] = (required[-2], required[-1]) if len(required) >= 2 else None

    def no_close(row) -> bool:
        pair = close_of.get((row["script_id"], row["script_version"]))
        reached = list(row["stages_reached"])
        return bool(pair) and pair[0] in reached and pair[1] not in reached

    results["no_close_attempt"] = results.apply(no_close, axis=1)
    joined = results.join(metrics, on="call_id")
    results["long_monologue"] = joined["longest_monologue"].fillna(0) > LONG_MONOLOGUE
    results["talks_too_much"] = joined["talk_ratio"].fillna(0) > HIGH_TALK_RATIO
    past_greeting = results["stages_reached"].map(len) > 1
    results["few_questions"] = past_greeting & (joined["rep_questions"].fillna(0) < FEW_QUESTIONS)
    results["interrupts"] = joined["rep_interruptions"].fillna(0) > 0
    return results[["call_id", "rep", *ERRORS]]


def error_profile(con: duckdb.DuckDBPyConnection, rep: str) -> pd.DataFrame:
    """Each error's rate for the rep and for the rest of the team, with 95 % Wilson intervals,
    Fisher's exact test of the difference, and `flagged` when the rep's rate is significantly higher."""
    from scipy.stats import fisher_exact

    errors = call_errors(con)
    if errors.empty or rep not in set(errors["rep"]):
        return pd.DataFrame()
    mine, team = errors[errors["rep"] == rep], errors[errors["rep"] != rep]
    rows = []
    for error, meaning in ERRORS.items():
        k, n = int(mine[error].sum()), len(mine)
        k_team, n_team = int(team[error].sum()), len(team)
        p_value = fisher_exact([[k, n - k], [k_team, n_team - k_team]])[1] if n_team else float("nan")
        (low,), (high,) = wilson_interval([k], [n])
        (team_low,), (team_high,) = wilson_interval([k_team], [n_team])
        rows.append(
            {
                "error": error,
                "meaning": meaning,
                "calls": n,
                "rate": k / n,
                "low": low,
                "high": high,
                "team_calls": n_team,
                "team_rate": k_team / n_team if n_team else float("nan"),
                "team_low": team_low,
                "team_high": team_high,
                "p_value": p_value,
                "flagged": bool(n_team and p_value < SIGNIFICANCE and k / n > k_team / n_team),
            }
        )
    return pd.DataFrame(rows)
