"""SQL the questions share, written once: which calls a question is about (`CallFilter`), the
outcome and period a call counts with, where a script ends and whether a call completed it, and
`transaction()`.

Every fragment uses named parameters (`$rep`, `$since`, ...) and `execute` passes a query exactly
the parameters it names, so no caller counts `?`s and a fragment can be used any number of times
in one query. Imports nothing of the package but the outcome threshold and default success (records).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import duckdb

from salescalls.records import DEFAULT_SUCCESS, MIN_CONFIDENCE

__all__ = [
    "CallFilter",
    "OUTCOME",
    "PERIOD",
    "SCRIPT_ENDS",
    "SUCCESS",
    "SUCCESS_OUTCOMES",
    "UNTIL_DAY",
    "completed",
    "execute",
    "optional",
    "transaction",
]

# Outcomes that make a call complete wherever it ended (it did what the call was for), for a
# script version stored without its own list (the script's `success:`, table script_versions).
SUCCESS_OUTCOMES = DEFAULT_SUCCESS

# The outcome a call counts with: the CRM's, else a marker phrase heard in the call, else a
# confident model ($min_confidence). Over `calls c JOIN call_results r`.
OUTCOME = """coalesce(c.crm_outcome, r.detected_outcome,
                    CASE WHEN r.outcome_confidence >= $min_confidence THEN r.predicted_outcome END, 'unknown')"""

# The first day of the call's period ($period: day, week, month, quarter), or NULL when the answer
# is not split by period.
PERIOD = "CAST(CASE WHEN CAST($period AS VARCHAR) IS NOT NULL THEN date_trunc($period, c.started_at) END AS DATE)"


def success_of(alias: str) -> str:
    """The success outcomes of the script version in row `alias` (its script_id, script_version):
    the script's own (table script_versions), else $success for a version stored before them."""
    return f"""coalesce((SELECT sv.success FROM script_versions sv
    WHERE sv.script_id = {alias}.script_id AND sv.script_version = {alias}.script_version),
    CAST($success AS VARCHAR[]))"""


# Per script version: its sign-off (the last stage), the script's end (the stage before it) and
# its success outcomes.
SCRIPT_ENDS = f"""SELECT g.*, {success_of("g")} AS success_outcomes FROM (
    SELECT script_id, script_version, max(position) AS sign_off, max(position) - 1 AS script_end
    FROM script_stages GROUP BY ALL) g"""

# A call's script version's success outcomes, over `calls c`.
SUCCESS = success_of("c")


def completed(end_position: str, outcome: str, ends: str = "e") -> str:
    """Whether a call is complete: it ended at the script's end (`ends` is a SCRIPT_ENDS row), or
    with one of its script's success outcomes wherever it ended. Not complete and ended: it dropped."""
    return f"(coalesce({end_position}, -1) = {ends}.script_end OR list_contains({ends}.success_outcomes, {outcome}))"


# Calls up to and including the day $until (a user's "until 2026-11-16" means that day too).
UNTIL_DAY = "(CAST($until AS DATE) IS NULL OR c.started_at < CAST($until AS DATE) + INTERVAL 1 DAY)"


def optional(column: str, parameter: str, sql_type: str = "VARCHAR", op: str = "=") -> str:
    """`column op $parameter`, or true when the parameter is NULL (a filter left out)."""
    return f"(CAST(${parameter} AS {sql_type}) IS NULL OR {column} {op} ${parameter})"


@dataclass(frozen=True)
class CallFilter:
    """Which calls a question is about; every field is optional (None: all)."""

    script_id: str | None = None  # one call script (its id)
    script_version: int | None = None  # one version of it
    since: str | None = None  # calls from this day on (ISO date, inclusive)
    until: str | None = None  # calls on or before this day (ISO date, inclusive)
    segment: str | None = None  # client temperature: cold, warm or hot
    campaign: str | None = None  # one campaign
    rep: str | None = None  # one rep's calls

    # Over `calls c`: the filter as a WHERE condition with named parameters.
    SQL: ClassVar[str] = " AND ".join(
        [
            optional("c.script_id", "script_id"),
            optional("c.script_version", "script_version", "INTEGER"),
            optional("c.started_at", "since", "TIMESTAMP", ">="),
            UNTIL_DAY,
            optional("c.segment", "segment"),
            optional("c.campaign", "campaign"),
            optional("c.rep", "rep"),
        ]
    )

    def params(self) -> dict[str, Any]:
        return asdict(self)


_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def execute(
    con: duckdb.DuckDBPyConnection,
    query: str,
    /,
    params: Mapping[str, Any] | None = None,
    *,
    calls: CallFilter | None = None,
    **values: Any,
) -> duckdb.DuckDBPyConnection:
    """Run `query` with the named parameters it uses: taken from `values`, then `params`, then the
    filter `calls`, with $min_confidence and $success defaulting to the shared ones. A parameter
    the query names and nobody gives is an error naming it."""
    given = {"min_confidence": MIN_CONFIDENCE, "success": list(SUCCESS_OUTCOMES), "period": None}
    given |= (calls or CallFilter()).params() | dict(params or {}) | values
    used = dict.fromkeys(_NAMED.findall(query))
    missing = [name for name in used if name not in given]
    if missing:
        raise KeyError(f"query parameters not given: {', '.join('$' + m for m in missing)}")
    return con.execute(query, {name: _plain(given[name]) for name in used})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK when the block (or the commit) raises; the error goes on."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
