"""Questions the QA specialist asks, answered in SQL on a read-only connection."""

from __future__ import annotations

import duckdb
import pandas as pd

from .outcomes import MIN_CONFIDENCE

DROPOFF_SQL = """
WITH scored AS (
    SELECT c.call_id, c.script_id, c.script_version, c.stage_model, r.end_stage, r.ended_by, r.stages_reached,
           coalesce(c.crm_outcome, r.detected_outcome,
                    CASE WHEN r.outcome_confidence >= ? THEN r.predicted_outcome END, 'unknown') AS outcome
    FROM calls c JOIN call_results r USING (call_id)
    WHERE (CAST(? AS VARCHAR) IS NULL OR c.script_id = ?)
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


def dropoff(con: duckdb.DuckDBPyConnection, script_id: str | None = None) -> pd.DataFrame:
    """Per script stage: calls that reached it, calls that ended there, and the share that ended.

    One row per stage of every script version that has scored calls, in script order.
    """
    frame = con.execute(DROPOFF_SQL, [MIN_CONFIDENCE, script_id, script_id]).df()
    frame["outcomes_of_ended"] = frame["outcomes_of_ended"].map(_outcome_mix)
    return frame


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
                    "ended_by_customer": "by customer",
                    "outcomes_of_ended": "outcomes of calls ended here",
                },
                {"share_ended": ".0%"},
            )
        )
    return "\n".join(parts)
