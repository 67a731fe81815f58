"""The offline HTML report: a static site written from the database after each nightly run.

    salescalls report --out data/report        # then open data/report/index.html

Pages: an overview (calls, quarantined files, outcome mix, the team's KPI trend), the script
funnel with filters by period, client segment and campaign, a page per stage listing the calls
that ended there (transcript coloured by stage, an audio player that jumps to the moment), a reps
table with the 1-4 rating, and a page per rep (error profile against the team, conversation
metrics, training plan with playable example moments).

The site needs no network: plotly.js comes from the installed plotly package, every page embeds
its own data (so pages work opened from disk, where browsers refuse to fetch files), and the
recordings it plays are transcoded to MP3 beside the pages. It reads the database on a read-only
connection and writes only the site, which it builds aside and swaps in whole, so a web server
never serves half a report.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from markupsafe import Markup, escape

from salescalls.db import store
from salescalls.db.sql import OUTCOME, execute
from salescalls.insights import analytics, coaching
from salescalls.insights.coaching import KPI_TARGETS, Kpi
from salescalls.report import charts
from salescalls.script.spec import Script
from salescalls.speech import privacy

MARKER = ".salescalls-report"  # the site's root holds this file; only such a folder is ever replaced
AUDIO_BITRATE = "48k"  # speech at 22 kHz: ~0.35 MB a minute, plays in every browser
LEAD_IN = 1.0  # seconds of audio played before a moment, so the listener hears it start


@dataclass(frozen=True)
class ReportOptions:
    period: str = "auto"  # day, week, month or quarter: the funnel's period filter and the trends; auto: by data span
    calls_per_stage: int = 20  # latest calls listed on each stage page
    examples: int = 2  # the rep's own example moments per training-plan gap
    audio: bool = True  # publish the recordings the pages play (transcoded to MP3)
    audio_dirs: tuple[Path, ...] = ()  # where to look for recordings moved since they were processed
    targets: tuple[Kpi, ...] = KPI_TARGETS  # the team's KPI targets
    title: str = "salescalls"  # shown in every page's header
    script: Script | None = None  # the team's script: its trackers page and own reasons (else generic reasons)
    phrases: int = 5  # what-to-change phrases shown per stage page


@dataclass
class Site:
    """What a build wrote, for the CLI, the flow's artifact and tests."""

    folder: Path  # the site's root
    pages: list[str] = field(default_factory=list)  # paths relative to the root
    audio: int = 0  # recordings published
    audio_missing: list[str] = field(default_factory=list)  # recordings not found: file names
    seconds: float = 0.0  # build time

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def page_id(key: str) -> str:
    """A short, file-name-safe, stable name for a call or other key (call ids may hold ':' or '/')."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def rep_page(rep: str) -> str:
    """reps/<readable-part>-<hash>.html: readable where the name is Latin, unique always."""
    ascii_name = unicodedata.normalize("NFKD", rep).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40]
    return f"reps/{slug + '-' if slug else ''}{page_id(rep)[:8]}.html"


def stage_page(script_id: str, version: int, stage: str) -> str:
    return f"stages/{page_id(f'{script_id}@{version}/{stage}')}.html"


def _clean(value):
    """JSON-safe copies of collected data: NaN/NA to None, timestamps to ISO text, numpy to Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as clean dicts for the templates."""
    return [_clean(row) for row in frame.to_dict("records")]


def _script_json(value) -> str:
    """JSON for a <script type="application/json"> block: no NaN, and nothing that closes the tag."""
    text = json.dumps(_clean(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------- collecting (read-only SQL)


def _distinct(con: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    sql = f"SELECT DISTINCT {column} FROM calls WHERE {column} IS NOT NULL ORDER BY 1"
    return [row[0] for row in con.execute(sql).fetchall()]


def _labels(starts, period: str) -> list[str]:
    """Period start dates as people name the periods (analytics.period_label)."""
    return [analytics.period_label(start, period) for start in starts]


def weakest(group: pd.DataFrame) -> tuple[set[str], list[str]]:
    """The stages the report highlights and the lines that say why: the same as `salescalls
    dropoff` prints (analytics.highlighted, analytics.weak_stage_lines)."""
    ranked = analytics.weakest_stages(group)
    lines = analytics.weak_stage_lines(ranked, int(group["calls"].iloc[0]))
    return set(analytics.highlighted(ranked)["stage"]), lines


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
        frame = analytics.dropoff(con, segment=segment, campaign=campaign, rep=rep, period=split)
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
    rows = _records(execute(con, CALLS_SQL, call_ids=call_ids).df())
    calls = {row["call_id"]: row for row in rows}
    errors = execute(
        con,
        f"SELECT call_id, {', '.join(analytics.ERRORS)} FROM ({analytics.CALL_FACTS_SQL}) "
        "WHERE call_id IN (SELECT unnest($call_ids))",
        analytics.fact_params(),
        call_ids=call_ids,
    ).df()
    for row in errors.to_dict("records"):
        calls[row["call_id"]]["errors"] = [analytics.ERRORS[e] for e in analytics.ERRORS if row[e]]
    positions = {
        key: {stage: i for i, stage in enumerate(stages)} for key, stages in analytics.stage_orders(con).items()
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
        turns = _records(group)
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
    overall = coaching.ratings(con, None, options.targets)
    by_period = coaching.ratings(con, options.period, options.targets)
    counts = analytics.error_counts(con)
    metrics = analytics.rep_conversation_metrics(con).set_index("rep")
    reps = overall["rep"].tolist()
    profiles = {rep: analytics.profile_from_counts(counts, rep) for rep in reps}
    plans = coaching.training_plans(con, reps, examples=options.examples, targets=options.targets, profiles=profiles)
    table, pages = [], {}
    for row in overall.to_dict("records"):
        rep = row["rep"]
        periods = by_period[by_period["rep"] == rep].copy()
        periods["label"] = _labels(periods["period"], options.period)
        period_rows = _records(periods)
        latest = period_rows[-1] if period_rows else {}
        mine = _clean(metrics.loc[rep].to_dict()) if rep in metrics.index else {}
        rest = metrics.drop(index=rep, errors="ignore")
        team = {
            m: float((rest[m] * rest["calls"]).sum() / rest["calls"].sum()) if rest["calls"].sum() else None
            for m in analytics.REP_AVERAGED
        }
        profile, plan = profiles[rep], plans[rep]
        link = rep_page(rep)
        row = _clean(row)
        table.append({**row, "page": link, "latest": latest, "metrics": mine})
        pages[rep] = {
            "rep": rep,
            "page": link,
            "rating": row,
            "periods": period_rows,
            "metrics": mine,
            "team_metrics": team,
            "profile": _records(profile),
            "profile_figure": charts.error_profile(profile, rep) if not profile.empty else None,
            "plan": _records(plan) if "examples" in plan.columns else [],
        }
    return table, pages


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
    mix["period"] = _labels(mix["period"], options.period)
    totals = mix.groupby("outcome")["calls"].sum().to_dict()  # every call lies in one period
    team = coaching.team_kpis(con, options.period, options.targets)
    kpis = [k.name for k in options.targets]
    trend = None
    if not team.empty:
        team["period"] = _labels(team["period"], options.period)
        trend = charts.kpi_trend(team, kpis)
    return {
        "calls": calls,
        "hours": hours,
        "reps": reps,
        "first": first,
        "last": last,
        "runs": _records(runs),
        "quarantined": quarantined,
        "quarantine": _records(reasons),
        "outcomes": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
        "outcome_figure": charts.outcome_mix(mix) if not mix.empty else None,
        "team": _records(team),
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
        "team": _records(team),
        "by_rep": _records(by_rep),
        "examples": _records(latest.drop(columns=["period"], errors="ignore")) if not latest.empty else [],
    }


# ---------------------------------------------------------------- audio


def find_recording(call: dict, audio_dirs: tuple[Path, ...]) -> Path | None:
    """The call's recording where it was processed, else under one of `audio_dirs` by file name."""
    candidates = [Path(call["source"])] if call.get("source") else []
    candidates += [Path(folder) / call["file"] for folder in audio_dirs]
    return next((path for path in candidates if path.is_file()), None)


def transcode(source: Path, target: Path, silence: list[tuple[float, float]] = ()) -> None:
    """The recording as MP3 (speech quality), written under a temporary name and then renamed;
    `silence` lists (start, end) seconds muted in it (where personal data was said)."""
    partial = target.with_name(target.name + ".part")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-vn", "-map_metadata", "-1"]
    if silence:
        spans = "+".join(f"between(t,{start:.3f},{end:.3f})" for start, end in silence)
        command += ["-af", f"volume=enable='{spans}':volume=0"]
    command += ["-ar", "22050", "-c:a", "libmp3lame", "-b:a", AUDIO_BITRATE, "-f", "mp3", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not convert {source.name}: {result.stderr.strip()[:300]}")
    partial.replace(target)


def publish_audio(
    calls: dict[str, dict], folder: Path, previous: Path | None, options: ReportOptions, site: Site, progress
) -> None:
    """Transcode each listed call's recording into folder/audio, reusing the previous site's copy
    (named by the call id, which is the recording's hash, so the same name is the same audio)."""
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    jobs = []
    for call in calls.values():
        # A recording with personal data silenced gets its own name: never confused with an unredacted copy.
        name = f"audio/{page_id(call['call_id'])}{'-redacted' if call['silence'] else ''}.mp3"
        old = previous / name if previous else None
        if old is not None and old.is_file():
            _link_or_copy(old, folder / name)
            call["audio"] = name
            continue
        source = find_recording(call, options.audio_dirs)
        if source is None:
            site.audio_missing.append(call["file"])
            continue
        jobs.append((call, source, folder / name, name))

    def run(job):
        call, source, target, name = job
        try:
            transcode(source, target, call["silence"])
            call["audio"] = name
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            call["audio_error"] = str(error)
            site.audio_missing.append(call["file"])

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, _ in enumerate(pool.map(run, jobs), start=1):
            if done % 25 == 0 or done == len(jobs):
                progress(f"audio: {done} of {len(jobs)} recordings converted")
    site.audio = sum(1 for call in calls.values() if call["audio"])


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no second copy on disk), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# ---------------------------------------------------------------- rendering


_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in privacy.PLACEHOLDERS.values()))


def _marked(text: str) -> Markup:
    """Escaped text with redaction placeholders shown as marks."""
    return Markup(_PLACEHOLDER.sub(r'<mark class="redacted">\g<0></mark>', str(escape(text))))


def moment_end(call: dict, at: float) -> float:
    """Where a moment's utterance ends (plus a breath), so a clip plays the whole of it."""
    for turn in call["utterances"]:
        if abs(turn["start_s"] - at) < 0.01:
            return float(turn["end_s"]) + 0.5
    return at + 10.0


def _missing(value) -> bool:
    """No value to show: None, NaN, or a field the data does not have (a rep with no metrics yet)."""
    return value is None or isinstance(value, Undefined) or value != value


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("salescalls.report", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = _script_json
    env.filters["marked"] = _marked
    env.filters["clock"] = lambda v: "" if _missing(v) else analytics.clock(float(v))
    env.filters["percent"] = lambda v: "–" if _missing(v) else f"{float(v):.0%}"
    env.filters["number"] = lambda v, fmt=".1f": "–" if _missing(v) else format(float(v), fmt)
    env.filters["when"] = lambda v: "" if _missing(v) else f"{pd.Timestamp(v):%Y-%m-%d %H:%M}"
    env.filters["day"] = lambda v: "" if _missing(v) else f"{pd.Timestamp(v):%Y-%m-%d}"
    env.globals["moment_end"] = moment_end
    env.globals["lead_in"] = LEAD_IN
    return env


def _assets(folder: Path) -> None:
    from importlib import resources

    import plotly

    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    for name in ("report.css", "report.js"):
        (assets / name).write_bytes(resources.files("salescalls.report").joinpath("assets", name).read_bytes())


def render(data: dict, folder: Path, options: ReportOptions, site: Site) -> None:
    """Write every page of the site into `folder`."""
    env = _environment()
    built = datetime.now()
    common = {
        "title": options.title,
        "built": built,
        "period": options.period,
        "calls": data["calls"],
        "audio_published": options.audio,
        "has_trackers": data.get("trackers") is not None,
        "has_script_reasons": options.script is not None and bool(options.script.reasons),
    }

    def write(path: str, template: str, **values) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(**common, root="../" * depth, here=path, **values)
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        site.pages.append(path)

    _assets(folder)
    write("index.html", "index.html", overview=data["overview"], kpis=data["kpis"])
    write("funnel.html", "funnel.html", funnel=data["funnel"])
    write("reps.html", "reps.html", reps=data["reps"], kpis=data["kpis"])
    for page in data["rep_pages"].values():
        write(page["page"], "rep.html", rep=page, kpis=data["kpis"])
    for stage in data["stages"]:
        write(stage["page"], "stage.html", stage=stage)
    if data["trackers"] is not None:
        write("trackers.html", "trackers.html", trackers=data["trackers"])
    for call in data["calls"].values():
        write(call["page"], "call.html", call=call)
    (folder / MARKER).write_text(f"salescalls report built {built.isoformat(timespec='seconds')}\n", encoding="utf-8")


def _replace(folder: Path, built: Path) -> None:
    """Swap the freshly built site in for the old one (renames: a reader sees one or the other)."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    built.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


class _Handler(SimpleHTTPRequestHandler):
    """Static files with HTTP range requests, which browsers need to seek in audio (the standard
    library's handler answers every request with the whole file)."""

    def send_head(self):
        spec = self.headers.get("Range", "")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file() or match.groups() == ("", ""):
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        self._remaining = None
        while remaining > 0:
            chunk = source.read(min(64 * 1024, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")  # tells the browser it may ask for ranges
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def server(folder: str | Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server for a built report (for a quick look; any web server will do as well).
    Call `serve_forever()` on it; port 0 picks a free port."""
    return ThreadingHTTPServer((host, port), functools.partial(_Handler, directory=str(folder)))


def build(
    database: str | Path,
    folder: str | Path,
    options: ReportOptions = ReportOptions(),
    progress: Callable[[str], None] = lambda message: None,
) -> Site:
    """Write the report for `database` into `folder` (replacing an earlier report there)."""
    started = time.perf_counter()
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MARKER).exists())):
        raise FileExistsError(f"{folder} exists and is not a salescalls report; choose an empty or new folder")
    with store.reader(database) as con:
        store.require_current_schema(con)
        if options.period == "auto":
            options = replace(options, period=choose_period(con))
        progress(f"reading the database (periods: {options.period})")
        data = collect(con, options)
    built = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir(parents=True)
    site = Site(folder=folder)
    try:
        if options.audio:
            progress(f"publishing the recordings of {len(data['calls'])} calls")
            publish_audio(data["calls"], built, folder if folder.exists() else None, options, site, progress)
        progress("writing pages")
        render(data, built, options, site)
        _replace(folder, built)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    site.seconds = time.perf_counter() - started
    return site
