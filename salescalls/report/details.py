"""The data of the report's call pages (transcript coloured by stage, errors, the end moment) and
rep pages (rating, error profile, metrics against the team, training plan)."""

from __future__ import annotations

import duckdb

from salescalls.db.sql import OUTCOME, execute
from salescalls.insights import analytics, coaching, rep_errors, scorecard
from salescalls.report import charts
from salescalls.report.layout import ReportOptions, page_id, rep_page
from salescalls.report.values import clean, records

CALLS_SQL = f"""
SELECT c.call_id, c.file, c.source, c.rep, c.started_at, c.duration, c.segment, c.campaign, c.language,
       c.script_id, c.script_version, c.diarization, c.redacted, r.end_stage, r.ended_by,
       {OUTCOME} AS outcome,
       r.stages_reached, r.stages_skipped, r.talk_ratio, r.rep_questions, r.longest_monologue,
       r.rep_interruptions
FROM calls c JOIN call_results r USING (call_no)
WHERE c.call_id IN (SELECT unnest($call_ids))
"""

STAGE_CALLS_SQL = """
SELECT c.script_id, c.script_version, r.end_stage, c.call_id,
       count(*) OVER (PARTITION BY c.script_id, c.script_version, r.end_stage) AS ended_here
FROM calls c JOIN call_results r USING (call_no)
WHERE r.end_stage IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY c.script_id, c.script_version, r.end_stage
                           ORDER BY c.started_at DESC, c.call_id) <= ?
ORDER BY c.script_id, c.script_version, r.end_stage, c.started_at DESC, c.call_id
"""


def period_labels(starts, period: str) -> list[str]:
    """Period start dates as people name the periods (analytics.period_label)."""
    return [analytics.period_label(start, period) for start in starts]


def stage_calls(con: duckdb.DuckDBPyConnection, limit: int) -> dict[tuple, dict]:
    """Per (script, version, end stage): the latest `limit` calls that ended there, and how many did."""
    found: dict[tuple, dict] = {}
    for script_id, version, stage, call_id, ended_here in con.execute(STAGE_CALLS_SQL, [limit]).fetchall():
        entry = found.setdefault((script_id, version, stage), {"calls": [], "ended_here": ended_here})
        entry["calls"].append(call_id)
    return found


def call_details(con: duckdb.DuckDBPyConnection, call_ids: list[str]) -> dict[str, dict]:
    """Each call's CRM fields, results, errors and utterances (with the end moment marked)."""
    if not call_ids:
        return {}
    rows = records(execute(con, CALLS_SQL, call_ids=call_ids).df())
    calls = {row["call_id"]: row for row in rows}
    errors = execute(
        con,
        f"SELECT call_id, {', '.join(rep_errors.ERRORS)} FROM ({rep_errors.CALL_FACTS_SQL}) "
        "WHERE call_id IN (SELECT unnest($call_ids))",
        rep_errors.fact_params(),
        call_ids=call_ids,
    ).df()
    for row in errors.to_dict("records"):
        calls[row["call_id"]]["errors"] = [rep_errors.error_meaning(e) for e in rep_errors.ERRORS if row[e]]
    positions = {
        key: {stage: i for i, stage in enumerate(stages)} for key, stages in rep_errors.stage_orders(con).items()
    }
    utterances = con.execute(
        "SELECT call_id, idx, role, start_s, end_s, text, stage, backchannel FROM utterances "
        "WHERE call_id IN (SELECT unnest(?)) ORDER BY call_id, idx",
        [call_ids],
    ).df()
    for call_id, group in utterances.groupby("call_id", sort=False):
        call = calls.get(call_id)
        if call is None:
            continue
        order = positions.get((call["script_id"], call["script_version"]), {})
        turns = records(group)
        duration = max(float(call.get("duration") or 0.0), max((t["end_s"] for t in turns), default=0.0), 1e-6)
        for turn in turns:
            position = order.get(turn["stage"])
            turn["colour"] = charts.stage_colour(position) if position is not None else "#BBBBBB"
            # where the turn sits on the call's timeline, in percent of the call (at least a sliver)
            turn["left"] = round(100 * turn["start_s"] / duration, 2)
            turn["width"] = round(max(0.4, 100 * (turn["end_s"] - turn["start_s"]) / duration), 2)
        call["utterances"] = turns
        call["stages_shown"] = [
            {"stage": stage, "colour": charts.stage_colour(i)}
            for stage, i in sorted(order.items(), key=lambda pair: pair[1])
            if any(t["stage"] == stage for t in turns)
        ]
        call["end_at"] = end_moment(turns, call["end_stage"])
    removed = con.execute(
        "SELECT call_id, start_s, end_s FROM redactions WHERE call_id IN (SELECT unnest(?)) ORDER BY call_id, start_s",
        [call_ids],
    ).fetchall()
    for call_id, start_s, end_s in removed:
        if call_id in calls:
            calls[call_id].setdefault("silence", []).append((start_s, end_s))
    for call in calls.values():
        call.setdefault("silence", [])
        call.setdefault("utterances", [])
        call.setdefault("errors", [])
        call.setdefault("end_at", None)
        call["page"] = f"calls/{page_id(call['call_id'])}.html"
        call["rep_page"] = rep_page(call["rep"]) if call.get("rep") else None
        call["audio"] = None  # set when the recording is published
    return calls


def end_moment(turns: list[dict], end_stage: str | None) -> float | None:
    """Where the call stopped: the start of its last utterance in the end stage (else its last)."""
    spoken = [t for t in turns if not t["backchannel"]]
    if not spoken:
        return None
    in_stage = [t for t in spoken if t["stage"] == end_stage]
    return float((in_stage or spoken)[-1]["start_s"])


def rep_pages(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> tuple[list[dict], dict[str, dict]]:
    """The reps table (rating overall and in the latest period, KPIs, conversation metrics) and
    each rep's page data: error profile, ratings per period, metrics against the rest of the team,
    training plan."""
    overall = scorecard.ratings(con, None, options.targets)
    by_period = scorecard.ratings(con, options.period, options.targets)
    counts = rep_errors.error_counts(con)
    metrics = analytics.rep_conversation_metrics(con).set_index("rep")
    reps = overall["rep"].tolist()
    profiles = {rep: rep_errors.profile_from_counts(counts, rep) for rep in reps}
    plans = coaching.training_plans(con, reps, examples=options.examples, targets=options.targets, profiles=profiles)
    table, pages = [], {}
    for row in overall.to_dict("records"):
        rep = row["rep"]
        periods = by_period[by_period["rep"] == rep].copy()
        periods["label"] = period_labels(periods["period"], options.period)
        period_rows = records(periods)
        latest = period_rows[-1] if period_rows else {}
        mine = clean(metrics.loc[rep].to_dict()) if rep in metrics.index else {}
        rest = metrics.drop(index=rep, errors="ignore")
        team = {
            m: float((rest[m] * rest["calls"]).sum() / rest["calls"].sum()) if rest["calls"].sum() else None
            for m in analytics.REP_AVERAGED
        }
        profile, plan = profiles[rep], plans[rep]
        link = rep_page(rep)
        row = clean(row)
        table.append({**row, "page": link, "latest": latest, "metrics": mine})
        pages[rep] = {
            "rep": rep,
            "page": link,
            "rating": row,
            "periods": period_rows,
            "metrics": mine,
            "team_metrics": team,
            "profile": records(profile),
            "profile_figure": charts.error_profile(profile, rep) if not profile.empty else None,
            "plan": records(plan) if "examples" in plan.columns else [],
        }
    return table, pages
