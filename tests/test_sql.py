"""The shared SQL layer: named-parameter filters, the parameters a query is given, transactions."""

from __future__ import annotations

import duckdb
import pytest

from salescalls.db.sql import CallFilter, execute, optional, transaction


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE calls AS SELECT * FROM (VALUES "
        "('a', 's', 1, TIMESTAMP '2026-11-02 09:00', 'warm', 'x', 'Ann'), "
        "('b', 's', 2, TIMESTAMP '2026-11-03 23:59', 'cold', 'x', 'Bob'), "
        "('c', 't', 1, TIMESTAMP '2026-11-04 00:00', 'warm', 'y', 'Ann')) "
        "AS t(call_id, script_id, script_version, started_at, segment, campaign, rep)"
    )
    return con


def matching(con, calls: CallFilter) -> list[str]:
    sql = f"SELECT call_id FROM calls c WHERE {CallFilter.SQL} ORDER BY call_id"
    return [row[0] for row in execute(con, sql, calls=calls).fetchall()]


def test_call_filter_leaves_out_what_is_none_and_both_days_are_included(con):
    assert matching(con, CallFilter()) == ["a", "b", "c"]
    assert matching(con, CallFilter(rep="Ann")) == ["a", "c"]
    assert matching(con, CallFilter(script_id="s", script_version=2)) == ["b"]
    assert matching(con, CallFilter(since="2026-11-03", until="2026-11-03")) == ["b"]  # 23:59 included
    assert matching(con, CallFilter(since="2026-11-03", until="2026-11-04")) == ["b", "c"]
    assert matching(con, CallFilter(segment="warm", campaign="y")) == ["c"]
    assert "?" not in CallFilter.SQL


def test_execute_passes_only_the_parameters_a_query_names(con):
    sql = f"SELECT count(*) FROM calls WHERE {optional('rep', 'rep')} AND {optional('segment', 'rep')}"
    assert execute(con, sql, {"rep": None, "unused": 1}).fetchone() == (3,)
    assert execute(con, "SELECT $query || $limit", query="q", limit=3).fetchone() == ("q3",)
    assert execute(con, "SELECT list_contains($success, 'sale')").fetchone() == (True,)  # the shared default
    with pytest.raises(KeyError, match=r"\$nobody"):
        execute(con, "SELECT $nobody")


def test_transaction_commits_or_rolls_back(con):
    with transaction(con):
        con.execute("DELETE FROM calls WHERE call_id = 'a'")
    with pytest.raises(RuntimeError), transaction(con):
        con.execute("DELETE FROM calls")
        raise RuntimeError("midway")
    assert [r[0] for r in con.execute("SELECT call_id FROM calls ORDER BY 1").fetchall()] == ["b", "c"]


def test_reading_the_database_loads_no_model_code():
    """The report and the read commands import records, not the pipeline (and through it scikit-learn)."""
    import subprocess
    import sys

    code = (
        "import sys; import salescalls.db.store, salescalls.nightly.inbox, salescalls.report.site; "
        "import salescalls.insights.analytics; "
        "print(sorted(m for m in ('sklearn', 'salescalls.pipeline', 'salescalls.script.stages') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
