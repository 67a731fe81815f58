"""A rep's error profile: the errors each call made (skipped stages, monologues, few questions, ...)
and each rep's rates against the rest of the team, flagged only when Fisher's test says so."""

from __future__ import annotations

import duckdb
import pandas as pd

from salescalls.db.sql import OUTCOME, PERIOD, SUCCESS, CallFilter, execute
from salescalls.i18n import N_, _, percent
from salescalls.insights.analytics import check_period
from salescalls.insights.stats import fisher_p, wilson_interval

LONG_MONOLOGUE = 60.0  # seconds: a rep turn longer than this is a monologue error


HIGH_TALK_RATIO = 0.65  # the rep talking more than this share is an error (won calls sit near 43 %)


FEW_QUESTIONS = 2  # fewer rep questions than this in a call that got past the greeting is an error


SIGNIFICANCE = 0.05  # a rep's error rate is flagged when Fisher's exact test against the team is below this


ERRORS = {  # error -> what it means for people (error_meaning fills the thresholds in)
    "skipped_required_stage": N_("a required stage was skipped"),
    "stages_out_of_order": N_("required stages out of the script's order"),
    "forbidden_phrase": N_("the rep said a forbidden phrase"),
    "no_close_attempt": N_("the call reached the offer but the rep never moved to the close"),
    "long_monologue": N_("a rep monologue over {seconds} s"),
    "talks_too_much": N_("the rep talked over {share} of the time"),
    "few_questions": N_("fewer than {questions} questions in a call past the greeting"),
    "interrupts": N_("the rep interrupted the customer"),
}


ERROR_NAMES = {  # short names for charts and tables (the extractor reads literals, hence written out)
    "skipped_required_stage": N_("skipped required stage"),
    "stages_out_of_order": N_("stages out of order"),
    "forbidden_phrase": N_("forbidden phrase"),
    "no_close_attempt": N_("no close attempt"),
    "long_monologue": N_("long monologue"),
    "talks_too_much": N_("talks too much"),
    "few_questions": N_("few questions"),
    "interrupts": N_("interrupts"),
}


def error_name(error: str) -> str:
    """An error's short name in the UI language."""
    return _(ERROR_NAMES[error])


def error_meaning(error: str) -> str:
    """What `error` means, in the UI language, with this module's thresholds."""
    return _(ERRORS[error], seconds=f"{LONG_MONOLOGUE:.0f}", share=percent(HIGH_TALK_RATIO), questions=FEW_QUESTIONS)


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
       list_contains({SUCCESS}, {OUTCOME}) AS success,
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


def profile_from_counts(counts: pd.DataFrame, rep: str) -> pd.DataFrame:
    """error_profile's table from error_counts' per-rep counts."""
    if counts.empty or rep not in set(counts["rep"]):
        return pd.DataFrame()
    mine = counts[counts["rep"] == rep].iloc[0]
    team = counts[counts["rep"] != rep].drop(columns="rep").sum()
    n, n_team = int(mine["calls"]), int(team["calls"])  # team: zeros when the rep is the only one
    rows = []
    for error in ERRORS:
        k, k_team = int(mine[error]), int(team[error])
        p_value = fisher_p(k, n, k_team, n_team) if n_team else float("nan")
        (low,), (high,) = wilson_interval([k], [n])
        (team_low,), (team_high,) = wilson_interval([k_team], [n_team])
        rows.append(
            {
                "error": error,
                "meaning": error_meaning(error),
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
