"""Collecting what the report's overview, funnel, stage and trackers pages show, on one read-only
connection (the calls' and reps' pages: `details`)."""

from __future__ import annotations

import itertools
import math

import duckdb
import pandas as pd

from salescalls.insights import analytics, funnel, scorecard
from salescalls.report import charts
from salescalls.report.details import call_details, period_labels, rep_pages, stage_calls
from salescalls.report.layout import ReportOptions, stage_page
from salescalls.report.values import records
from salescalls.script.spec import Script


def _distinct(con: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    sql = f"SELECT DISTINCT {column} FROM calls WHERE {column} IS NOT NULL ORDER BY 1"
    return [row[0] for row in con.execute(sql).fetchall()]


def weakest(group: pd.DataFrame) -> tuple[set[str], list[str]]:
    """The stages the report highlights and the lines that say why: the same as `salescalls
    dropoff` prints (funnel.highlighted, funnel.weak_stage_lines)."""
    ranked = funnel.weakest_stages(group)
    lines = funnel.weak_stage_lines(ranked, int(group["calls"].iloc[0]))
    return set(funnel.highlighted(ranked)["stage"]), lines


def choose_period(con: duckdb.DuckDBPyConnection) -> str:
    """The finest period that splits the stored calls into a readable number of periods:
    days up to two weeks of calls, weeks up to four months, months up to two years, else quarters."""
    first, last = con.execute("SELECT min(started_at), max(started_at) FROM calls").fetchone()
    if first is None:
        return "month"
    days = (last - first).days + 1
    for period, longest in (("day", 14), ("week", 16 * 7), ("month", 2 * 366)):
        if days <= longest:
            return period
    return "quarter"


def funnel_views(con: duckdb.DuckDBPyConnection, period: str) -> dict:
    """Every funnel the filters can show: all time and each `period`, crossed with each client
    segment and campaign (and 'all' of each), and each rep over all segments and campaigns (a rep
    crossed with the others would multiply the views by the team's size); per view, each script
    version's stages and chart. Views are keyed 'period|segment|campaign|rep'."""
    segments, campaigns, reps = _distinct(con, "segment"), _distinct(con, "campaign"), _distinct(con, "rep")
    views: dict[str, list[dict]] = {}
    periods: set[str] = set()
    choices = [(segment, campaign, None) for segment in [None, *segments] for campaign in [None, *campaigns]]
    choices += [(None, None, rep) for rep in reps]
    for (segment, campaign, rep), split in itertools.product(choices, (None, period)):
        frame = funnel.dropoff(con, segment=segment, campaign=campaign, rep=rep, period=split)
        if frame.empty:
            continue
        frame = frame.assign(period=frame["period"].astype(object))
        for (script_id, version, start), group in frame.groupby(
            ["script_id", "script_version", "period"], dropna=False, sort=True
        ):
            label = analytics.period_label(start, split)
            if split:
                periods.add(label)
            weak, weak_lines = weakest(group)
            rows = group[
                [
                    "stage",
                    "required",
                    "got_here",
                    "occurred",
                    "ended_here",
                    "dropped",
                    "completed",
                    "drop_share",
                    "drop_low",
                    "drop_high",
                    "ended_by_customer",
                    "ended_by_rep",
                    "dropped_by_customer",
                    "outcomes_of_ended",
                ]
            ].to_dict("records")
            for row in rows:
                row["weak"] = row["stage"] in weak
                row["page"] = stage_page(script_id, int(version), row["stage"]) if row["ended_here"] else None
            key = f"{label}|{segment or ''}|{campaign or ''}|{rep or ''}"
            views.setdefault(key, []).append(
                {
                    "script": f"{script_id} v{int(version)}",
                    "calls": int(group["calls"].iloc[0]),
                    "stage_models": group["stage_models"].iloc[0],
                    "rows": rows,
                    "weakest": sorted(weak),
                    "weakest_lines": weak_lines,
                    "figure": charts.funnel(group, weak),
                }
            )
    return {
        "views": views,
        "periods": sorted(periods, reverse=True),
        "segments": segments,
        "campaigns": campaigns,
        "reps": reps,
    }


def overview(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> dict:
    calls, hours, reps, first, last = con.execute(
        "SELECT count(*), coalesce(sum(duration), 0) / 3600, count(DISTINCT rep), min(started_at), max(started_at) "
        "FROM calls"
    ).fetchone()
    runs = con.execute(
        "SELECT started_at, finished_at, status, inbox, files_seen, calls_added, calls_skipped, quarantined, message "
        "FROM runs ORDER BY started_at DESC LIMIT 10"
    ).df()
    quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    reasons = con.execute(
        "SELECT file, reason, quarantined_at, moved_to FROM quarantine ORDER BY quarantined_at DESC LIMIT 100"
    ).df()
    mix = analytics.outcome_mix(con, options.period)
    mix["period"] = period_labels(mix["period"], options.period)
    totals = mix.groupby("outcome")["calls"].sum().to_dict()  # every call lies in one period
    team = scorecard.team_kpis(con, options.period, options.targets)
    kpis = [k.name for k in options.targets]
    trend = None
    if not team.empty:
        team["period"] = period_labels(team["period"], options.period)
        trend = charts.kpi_trend(team, kpis)
    return {
        "calls": calls,
        "hours": hours,
        "reps": reps,
        "first": first,
        "last": last,
        "runs": records(runs),
        "quarantined": quarantined,
        "quarantine": records(reasons),
        "outcomes": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
        "outcome_figure": charts.outcome_mix(mix) if not mix.empty else None,
        "team": records(team),
        "kpi_figure": trend,
    }


def collect(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> dict:
    """Everything the pages show, from one read-only connection (options with a concrete period)."""
    analytics.check_period(options.period)
    data = {"overview": overview(con, options), "funnel": funnel_views(con, options.period)}
    data["reps"], data["rep_pages"] = rep_pages(con, options)
    ended = stage_calls(con, options.calls_per_stage)
    wanted = {call_id for entry in ended.values() for call_id in entry["calls"]}
    for page in data["rep_pages"].values():
        for gap in page["plan"]:
            wanted.update(m.call_id for m in gap["examples"])
            if gap["contrast"] is not None:
                wanted.add(gap["contrast"].call_id)
    insights = stage_insights(con, options, set(ended))
    for entry in insights.values():
        wanted.update(row["moment"].call_id for row in entry["moves"])
        wanted.update(row["call_id"] for row in entry["reasons"])
    data["trackers"] = tracker_view(con, options.script)
    if data["trackers"] is not None:
        wanted.update(hit["call_id"] for hit in data["trackers"]["examples"])
    data["calls"] = call_details(con, sorted(wanted))
    for call in data["calls"].values():  # the funnel's period names, so stage pages can follow its filters
        call["period_label"] = analytics.period_label(call["started_at"], options.period)
    data["stages"] = [
        {
            "script": f"{script_id} v{version}",
            "stage": stage,
            "page": stage_page(script_id, version, stage),
            "ended_here": entry["ended_here"],
            "calls": [call_id for call_id in entry["calls"] if call_id in data["calls"]],
            **insights.get((script_id, version, stage), {"moves": [], "reasons": [], "dropped": 0}),
        }
        for (script_id, version, stage), entry in sorted(ended.items())
    ]
    data["kpis"] = options.targets
    return data


def stage_insights(con: duckdb.DuckDBPyConnection, options: ReportOptions, keys: set[tuple]) -> dict[tuple, dict]:
    """Per (script, version, stage) where calls dropped: why the customers left (the same reasons
    as `salescalls reasons`) and what the rep said in calls that got past it (`salescalls advice`)."""
    from salescalls.insights import advice, reasons

    has_own = options.script is not None and options.script.reasons
    own = reasons.with_goodbyes(options.script.reasons) if has_own else None
    left = reasons.why_customers_leave(con, reasons=own)
    found: dict[tuple, dict] = {}
    for key, group in left.groupby(["script_id", "script_version", "stage"], sort=True):
        if key not in keys:
            continue
        rows = []
        for reason, mine in group.groupby("reason", sort=True):
            example = mine[mine["text"] != ""].head(1)
            rows.append(
                {
                    "reason": reason,
                    "calls": len(mine),
                    "reps": ", ".join(f"{rep} {n}" for rep, n in mine["rep"].value_counts().sort_index().items()),
                    "text": example["text"].iloc[0] if len(example) else "",
                    "call_id": (example if len(example) else mine)["call_id"].iloc[0],
                }
            )
        rows.sort(key=lambda row: (-row["calls"], row["reason"]))
        moves = advice.stage_moves(con, key[0], int(key[1]), key[2]).head(options.phrases)
        found[(key[0], int(key[1]), key[2])] = {
            "dropped": len(group),
            "reasons": rows,
            "moves": [
                {
                    **{k: row[k] for k in ("phrase", "calls", "went_on", "other_calls", "other_went_on")},
                    "lift": None if math.isinf(row["lift"]) else float(row["lift"]),
                    "p_value": float(row["p_value"]),
                    "q_value": float(row["q_value"]),
                    "moment": row["moments"][0],
                }
                for row in moves.to_dict("records")
            ],
        }
    return found


TRACKER_EXAMPLES = 3  # latest mentions of each tracker listed on its page


def tracker_view(con: duckdb.DuckDBPyConnection, script: Script | None) -> dict | None:
    """The script's trackers per rep (rate with interval, stages they came up in) and their latest
    mentions; None when the report has no script with trackers."""
    from salescalls.insights import trackers

    if script is None or not script.trackers:
        return None
    hits = trackers.find(con, script)
    by_rep = trackers.summary(hits, "rep")
    everyone = hits.assign(team="team")
    everyone.attrs["calls"] = hits.attrs["calls"].assign(team="team")
    team = trackers.summary(everyone, "team")
    latest = hits.merge(hits.attrs["calls"][["call_id", "started_at"]], on="call_id") if not hits.empty else hits
    if not latest.empty:
        latest = latest.sort_values(["tracker", "started_at", "start_s"], ascending=[True, False, True])
        latest = latest.groupby("tracker", sort=True).head(TRACKER_EXAMPLES)
    return {
        "script": script.id,
        "names": sorted(script.trackers),
        "searched": len(hits.attrs["calls"]),
        "team": records(team),
        "by_rep": records(by_rep),
        "examples": records(latest.drop(columns=["period"], errors="ignore")) if not latest.empty else [],
    }
