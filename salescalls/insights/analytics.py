"""Periods (how calls are grouped by day, week, month or quarter), the outcome mix per period and
the conversation metrics of calls and reps (talk ratio, monologues, questions, interruptions)."""

from __future__ import annotations

import duckdb
import pandas as pd

from salescalls.db import conversation
from salescalls.db.sql import OUTCOME, PERIOD, CallFilter, execute, optional
from salescalls.i18n import N_, named

PERIODS = ("day", "week", "month", "quarter")  # weeks start on Monday (ISO)


def check_period(period: str | None) -> str | None:
    if period is not None and period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not '{period}'")
    return period


OUTCOME_MIX_SQL = f"""
SELECT {PERIOD} AS period, {OUTCOME} AS outcome, count(*) AS calls
FROM calls c JOIN call_results r USING (call_no)
WHERE {CallFilter.SQL}
GROUP BY ALL ORDER BY period, outcome
"""


def outcome_mix(con: duckdb.DuckDBPyConnection, period: str | None = None, **filters) -> pd.DataFrame:
    """Calls per outcome (sale, meeting, callback, refusal, unknown), per period when given."""
    return execute(con, OUTCOME_MIX_SQL, calls=CallFilter(**filters), period=check_period(period)).df()


OUTCOMES = {  # the outcomes a call can have (crm_outcome, or what the words said), for people
    "sale": N_("sale"),
    "meeting": N_("meeting"),
    "callback": N_("callback"),
    "refusal": N_("refusal"),
    "unknown": N_("unknown"),
}


def outcome_name(outcome: str) -> str:
    """An outcome as the UI language says it (an outcome of the team's own: as the team wrote it)."""
    return named(OUTCOMES, outcome)


def period_label(start, period: str | None) -> str:
    """A period's first day as people name the period: 2026-11-23, 2026-W48, 2026-11, 2026-Q4; 'all' without one."""
    if period is None or start is None or start != start:
        return "all"
    start = pd.Timestamp(start)
    if period == "week":
        year, week, _weekday = start.isocalendar()
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
