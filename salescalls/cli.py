"""The `salescalls` command line. Flows and notebooks call the same functions."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from salescalls.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Find, link or download the speech models.")
script_app = typer.Typer(no_args_is_help=True, help="Check call-script files.")
labels_app = typer.Typer(no_args_is_help=True, help="Stage labels from people, for retraining.")
app.add_typer(models_app, name="models")
app.add_typer(script_app, name="script")
app.add_typer(labels_app, name="labels")

DB_OPTION = typer.Option(None, "--db", help="DuckDB file (default: SALESCALLS_DB or data/salescalls.duckdb)")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _read(db: Path | None, query):
    """query(connection) on a read-only connection to the database; a clear error when there is none
    or when it is older than this salescalls (readers never upgrade it)."""
    from salescalls.db import store

    try:
        with store.reader(Settings.from_env(database=db).database) as con:
            store.require_current_schema(con)
            return query(con)
    except (FileNotFoundError, store.NotADatabase) as error:
        _fail(str(error))


def _existing_database(db: Path | None) -> Path:
    """The database a command that writes to stored calls works on; it must exist already."""
    database = Settings.from_env(database=db).database
    if not database.is_file():
        _fail(f"no database at {database}: run `salescalls run INBOX` first")
    return database


SINCE_OPTION = typer.Option(None, help="calls on or after this date (YYYY-MM-DD)")
UNTIL_OPTION = typer.Option(None, help="calls before this date (YYYY-MM-DD)")
PERIODS_HELP = "day, week, month or quarter"


def _dates(**values: str | None) -> None:
    """Dates must be ISO dates; a clear error names the option otherwise."""
    from datetime import date

    for name, value in values.items():
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                _fail(f"--{name} must be a date like 2026-11-01, not '{value}'")


def _check_period(period: str | None) -> None:
    from salescalls.insights.analytics import check_period

    try:
        check_period(period)
    except ValueError as error:
        _fail(f"--{error}")


def _write(text: str, output: Path | None, done: str) -> None:
    """To standard output, or to a file with a note on standard error."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(done, err=True)


@app.command()
def run(
    inbox: Path = typer.Argument(..., help="folder of new recordings (and optionally calls.csv)"),
    db: Path | None = DB_OPTION,
    metadata: Path | None = typer.Option(None, help="CRM metadata CSV (default: INBOX/calls.csv)"),
    script: Path | None = typer.Option(None, help="call script YAML (default: SALESCALLS_SCRIPT)"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu); default: detect"),
    workers: int | None = typer.Option(
        None, min=1, help="calls at once: N>1 starts N local worker processes (default: SALESCALLS_WORKERS or 1)"
    ),
    dask_address: str | None = typer.Option(
        None, help="run the calls on this Dask scheduler, e.g. tcp://host:8786 (default: SALESCALLS_DASK_ADDRESS)"
    ),
) -> None:
    """Run the nightly flow on INBOX: new calls are transcribed, scored and stored; prints the drop-off table."""
    from salescalls.config import SettingsError
    from salescalls.db import store
    from salescalls.insights import analytics
    from salescalls.nightly.flow import nightly
    from salescalls.nightly.inbox import RunInProgress
    from salescalls.script.spec import ScriptError
    from salescalls.speech.transcribe import ModelMissingError

    if not inbox.is_dir():
        _fail(f"inbox is not a folder: {inbox}")
    try:
        Settings.from_env(workers=workers, dask_address=dask_address)  # a bad variable: one line, before Prefect starts
        summary = nightly(
            str(inbox),
            database=str(db) if db else None,
            metadata=str(metadata) if metadata else None,
            script=str(script) if script else None,
            language=language,
            workers=workers,
            dask_address=dask_address,
        )
    except (ScriptError, ModelMissingError, FileNotFoundError, RunInProgress, SettingsError) as error:
        _fail(str(error))
    typer.echo(
        f"\nrun {summary['run_id']}: {summary['files_seen']} recordings, {summary['calls_added']} added, "
        f"{summary['calls_skipped']} already stored, {summary['quarantined']} quarantined\n"
    )
    with store.reader(summary["database"]) as con:
        typer.echo(analytics.dropoff_table(analytics.dropoff(con)))
    if summary.get("report"):
        typer.echo(f"\nHTML report: {summary['report']}")


@app.command()
def serve(
    inbox: Path = typer.Argument(..., help="folder the recordings arrive in (and optionally calls.csv)"),
    cron: str = typer.Option("0 2 * * *", help="when to run, as cron: minute hour day month weekday"),
    timezone: str | None = typer.Option(None, help="the cron's time zone, e.g. Europe/Budapest (default: UTC)"),
    name: str = typer.Option("nightly", help="the deployment's name in Prefect"),
    db: Path | None = DB_OPTION,
    metadata: Path | None = typer.Option(None, help="CRM metadata CSV (default: INBOX/calls.csv)"),
    script: Path | None = typer.Option(None, help="call script YAML (default: SALESCALLS_SCRIPT)"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu); default: detect"),
    workers: int | None = typer.Option(None, min=1, help="calls at once (default: SALESCALLS_WORKERS or 1)"),
    dask_address: str | None = typer.Option(None, help="a Dask scheduler to run the calls on"),
) -> None:
    """Run the nightly flow on a schedule: registers the deployment with the Prefect server
    (PREFECT_API_URL) and starts each scheduled run, until stopped (Ctrl-C, or the service manager)."""
    import os

    from salescalls.config import SettingsError
    from salescalls.nightly.flow import schedule
    from salescalls.nightly.flow import serve as serve_flow

    if not os.environ.get("PREFECT_API_URL"):
        _fail(
            "PREFECT_API_URL is not set: a schedule lives on a Prefect server. Start one with "
            "`prefect server start` and export PREFECT_API_URL=http://127.0.0.1:4200/api (README: Operations)"
        )
    if not inbox.is_dir():
        _fail(f"inbox is not a folder: {inbox}")
    try:
        Settings.from_env(workers=workers, dask_address=dask_address)
        schedule(cron, timezone)
    except (SettingsError, ValueError) as error:
        _fail(str(error))
    serve_flow(
        str(inbox.resolve()),
        cron,
        timezone,
        name,
        database=str(db.resolve()) if db else None,
        metadata=str(metadata.resolve()) if metadata else None,
        script=str(script.resolve()) if script else None,
        language=language,
        workers=workers,
        dask_address=dask_address,
    )


@app.command()
def dropoff(
    db: Path | None = DB_OPTION,
    script_id: str | None = typer.Option(None, help="only this script"),
    script_version: int | None = typer.Option(None, help="only this script version"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    segment: str | None = typer.Option(None, help="client temperature: cold, warm or hot"),
    campaign: str | None = typer.Option(None, help="only this campaign"),
    rep: str | None = typer.Option(None, help="only this rep's calls"),
    period: str | None = typer.Option(None, help=f"one table per {PERIODS_HELP}"),
    min_calls: int | None = typer.Option(None, min=1, help="stages fewer calls got to are not judged (default 5)"),
) -> None:
    """The funnel per script stage: calls that got this far, in which it occurred, that dropped or
    completed here, the drop-off share with its 95 % interval and the outcomes; then the stages
    whose drop-off is highest against the other stages', with Fisher's test (read-only)."""
    from salescalls.insights import analytics

    _dates(since=since, until=until)
    _check_period(period)
    filters = {"script_version": script_version, "since": since, "until": until, "segment": segment}
    filters |= {"campaign": campaign, "rep": rep, "period": period}
    frame = _read(db, lambda con: analytics.dropoff(con, script_id, **filters))
    typer.echo(analytics.dropoff_table(frame))
    minimum = analytics.MIN_CALLS if min_calls is None else min_calls
    if not frame.empty:
        blocks = frame.assign(period=frame["period"].astype(object).fillna(""))
        for _, group in blocks.groupby(["script_id", "script_version", "period"], sort=True):
            typer.echo("")
            ranked = analytics.weakest_stages(group, minimum)
            for line in analytics.weak_stage_lines(ranked, int(group["calls"].iloc[0]), minimum):
                typer.echo(line)


@app.command()
def advice(
    db: Path | None = DB_OPTION,
    stage: list[str] = typer.Option(None, help="this stage (repeatable; default: the weakest stages)"),
    script_id: str | None = typer.Option(None, help="this script (default: the one with the most calls)"),
    script_version: int | None = typer.Option(None, help="this version (default: its latest with calls)"),
    top: int = typer.Option(5, min=1, help="phrases per stage"),
) -> None:
    """What to change in the script: at each weak stage, the rep's phrases in calls that got past it
    against calls that dropped there, with Fisher's test and a moment to play (read-only)."""
    from salescalls.insights import advice as script_advice
    from salescalls.insights import analytics

    def answer(con):
        found = con.execute(
            "SELECT script_id, script_version, count(*) AS n FROM calls "
            "WHERE (CAST($script_id AS VARCHAR) IS NULL OR script_id = $script_id) "
            "AND (CAST($version AS INTEGER) IS NULL OR script_version = $version) "
            "GROUP BY ALL ORDER BY n DESC, script_version DESC LIMIT 1",
            {"script_id": script_id, "version": script_version},
        ).fetchone()
        if found is None:
            return None
        chosen_id, version, _ = found
        stages = list(stage or [])
        if not stages:
            frame = analytics.dropoff(con, chosen_id, script_version=version)
            stages = analytics.highlighted(analytics.weakest_stages(frame))["stage"].tolist()
        known = [
            row[0]
            for row in con.execute(
                "SELECT stage FROM script_stages WHERE script_id = ? AND script_version = ? ORDER BY position",
                [chosen_id, version],
            ).fetchall()
        ]
        unknown = [name for name in stages if name not in known]
        if unknown:
            raise ValueError(f"no stage {', '.join(unknown)} in {chosen_id} v{version}; its stages: {', '.join(known)}")
        lines = [f"Script {chosen_id} v{version}: what the rep said where calls went on, against where they dropped"]
        for name in stages:
            moves = script_advice.stage_moves(con, chosen_id, version, name)
            lines += ["", *script_advice.moves_text(moves, name, top)]
        return lines

    try:
        lines = _read(db, answer)
    except ValueError as error:
        _fail(str(error))
    typer.echo("no scored calls yet" if lines is None else "\n".join(lines))


@app.command()
def reasons(
    db: Path | None = DB_OPTION,
    script_id: str | None = typer.Option(None, help="only this script"),
    script_version: int | None = typer.Option(None, help="only this script version"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    segment: str | None = typer.Option(None, help="client temperature: cold, warm or hot"),
    campaign: str | None = typer.Option(None, help="only this campaign"),
    rep: str | None = typer.Option(None, help="only this rep's calls"),
    period: str | None = typer.Option(None, help=f"one table per {PERIODS_HELP}"),
    script: Path | None = typer.Option(None, help="a call script whose `reasons:` to use (default: the generic ones)"),
) -> None:
    """Why customers leave: the calls that dropped, per stage and reason (from the customer's last
    words), with the reps who had them and what the customer said (read-only)."""
    from salescalls.insights import reasons as why
    from salescalls.script.spec import ScriptError, load_script

    _dates(since=since, until=until)
    _check_period(period)
    own = None
    if script is not None:
        try:
            own = load_script(script).reasons or None
        except (ScriptError, FileNotFoundError) as error:
            _fail(str(error))
        if own is None:
            _fail(f"{script} names no reasons: add a `reasons:` section, or leave out --script for the generic ones")
        own = why.with_goodbyes(own)
    filters = {"script_version": script_version, "since": since, "until": until, "segment": segment}
    filters |= {"campaign": campaign, "rep": rep, "period": period, "reasons": own}
    frame = _read(db, lambda con: why.why_customers_leave(con, script_id, **filters))
    if frame.empty or not period:
        typer.echo(why.reasons_table(frame))
        return
    for start, group in frame.groupby("period", sort=True):
        typer.echo(f"period from {start:%Y-%m-%d}: {len(group)} dropped calls")
        typer.echo(why.reasons_table(group) + "\n")


@app.command()
def trackers(
    db: Path | None = DB_OPTION,
    script: Path | None = typer.Option(None, help="call script YAML with `trackers:` (default: SALESCALLS_SCRIPT)"),
    by: str = typer.Option("rep", help="rep or period"),
    period: str | None = typer.Option(None, help=f"with --by period: {PERIODS_HELP} (default week)"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    rep: str | None = typer.Option(None, help="only this rep's calls"),
) -> None:
    """The script's trackers (competitors, discounts, ...): how often each comes up per rep or
    period, and in which stages (read-only)."""
    from salescalls.insights import trackers as tracked
    from salescalls.script.spec import ScriptError, load_script

    if by not in ("rep", "period"):
        _fail(f"--by must be rep or period, not '{by}'")
    _dates(since=since, until=until)
    period = period or ("week" if by == "period" else None)
    _check_period(period)
    try:
        call_script = load_script(Settings.from_env(script=script).script)
    except (ScriptError, FileNotFoundError) as error:
        _fail(str(error))
    if not call_script.trackers:
        _fail(
            f"{call_script.id} lists no trackers: add a `trackers:` section to the script (see data/scripts/demo.yaml)"
        )
    hits = _read(db, lambda con: tracked.find(con, call_script, period, since=since, until=until, rep=rep))
    typer.echo(tracked.summary_table(tracked.summary(hits, by), by))


@app.command("compare-versions")
def compare_versions(
    script_id: str = typer.Argument(..., help="the script whose versions to compare"),
    db: Path | None = DB_OPTION,
    version: int | None = typer.Option(None, help="this version against the one before it (default: the latest)"),
    days: int | None = typer.Option(None, min=1, help="compare the DAYS before and after the version's first call"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Did a script edit help? Drop-off per stage of a script version against the version before it,
    with Fisher's exact test (read-only)."""
    from salescalls.insights import analytics

    _dates(since=since, until=until)
    try:
        frame = _read(
            db, lambda con: analytics.compare_versions(con, script_id, version, since=since, until=until, days=days)
        )
    except ValueError as error:
        _fail(str(error))
    typer.echo(analytics.versions_table(frame))


@app.command()
def metrics(
    db: Path | None = DB_OPTION,
    by: str = typer.Option("rep", help="rep (averages per rep) or call"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    rep: str | None = typer.Option(None, help="only this rep's calls"),
) -> None:
    """Conversation metrics: talk ratio, longest monologue and customer story, interruptions, questions,
    words per minute, silence (read-only)."""
    from salescalls.insights import analytics

    if by not in ("rep", "call"):
        _fail(f"--by must be rep or call, not '{by}'")
    _dates(since=since, until=until)
    metrics_of = analytics.rep_conversation_metrics if by == "rep" else analytics.conversation_metrics
    frame = _read(db, lambda con: metrics_of(con, since=since, until=until, rep=rep))
    if frame.empty:
        typer.echo("no scored calls yet")
        return
    columns = {"rep": "rep", "calls": "calls"} if by == "rep" else {"file": "call", "rep": "rep"}
    columns |= {
        "talk_ratio": "rep talk",
        "longest_monologue": "longest monologue s",
        "longest_customer_story": "customer story s",
        "rep_interruptions": "rep interrupts",
        "customer_interruptions": "customer interrupts",
        "rep_questions": "questions",
        "rep_words_per_minute": "words/min",
        "silence_share": "silence",
    }
    floats = {"talk_ratio": ".0%", "silence_share": ".0%", "longest_monologue": ".1f"}
    floats |= {"longest_customer_story": ".1f", "rep_words_per_minute": ".0f"}
    floats |= {k: ".1f" for k in ("rep_interruptions", "customer_interruptions", "rep_questions")}
    typer.echo(analytics.format_table(frame, columns, floats))


@app.command()
def profile(
    rep: str = typer.Argument(..., help="the rep's name as in calls.csv"),
    db: Path | None = DB_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """A rep's error profile against the rest of the team; differences flagged only when significant."""
    from salescalls.insights import analytics

    _dates(since=since, until=until)
    frame = _read(db, lambda con: analytics.error_profile(con, rep, since=since, until=until))
    if frame.empty:
        _fail(f"no scored calls of a rep named '{rep}'")

    def rate(prefix: str) -> list[str]:
        columns = zip(frame[f"{prefix}rate"], frame[f"{prefix}low"], frame[f"{prefix}high"], strict=True)
        return [f"{r:.0%} ({lo:.0%}-{hi:.0%})" if r == r else "-" for r, lo, hi in columns]

    frame = frame.assign(rep_rate=rate(""), team=rate("team_"), flag=["WORSE" if f else "" for f in frame["flagged"]])
    calls, team_calls = int(frame["calls"].iloc[0]), int(frame["team_calls"].iloc[0])
    typer.echo(f"{rep}: {calls} calls; team (everyone else): {team_calls} calls; rates with 95 % intervals")
    columns = {"error": "error", "rep_rate": rep, "team": "team", "p_value": "p (Fisher)", "flag": ""}
    typer.echo(analytics.format_table(frame, columns, {"p_value": ".3f"}))


def _targets(path: Path | None):
    """The KPI targets: the file given, else SALESCALLS_TARGETS, else the built-in ones."""
    from salescalls.insights import coaching

    path = Settings.from_env(targets=path).targets
    if path is None:
        return coaching.KPI_TARGETS
    try:
        return coaching.load_targets(path)
    except ValueError as error:
        _fail(str(error))


def _report_script(path: Path, explicit: bool):
    """The report's script: the one asked for (it must load), or the configured one if it loads."""
    from salescalls.script.spec import ScriptError, load_script

    if not explicit and not path.is_file():
        return None
    try:
        return load_script(path)
    except (ScriptError, FileNotFoundError) as error:
        if explicit:
            _fail(str(error))
        typer.echo(f"warning: {error}; the report has no trackers page and uses the generic reasons", err=True)
        return None


TARGETS_OPTION = typer.Option(
    None, help="KPI targets YAML {kpi: {target, stretch}} (default: SALESCALLS_TARGETS, else built in)"
)


@app.command()
def rating(
    db: Path | None = DB_OPTION,
    period: str | None = typer.Option(None, help=f"a rating per {PERIODS_HELP}, with the trend"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    campaign: str | None = typer.Option(None, help="only this campaign"),
    segment: str | None = typer.Option(None, help="client temperature: cold, warm or hot"),
    targets: Path | None = TARGETS_OPTION,
) -> None:
    """Each rep's five KPIs against their targets and the 1-4 rating (4 exceeded, 3 met, 2 partly met,
    1 missed goals); with --period, one row per period and the trend."""
    from salescalls.insights import coaching

    _dates(since=since, until=until)
    _check_period(period)
    kpis = _targets(targets)
    filters = {"since": since, "until": until, "campaign": campaign, "segment": segment}
    frame = _read(db, lambda con: coaching.ratings(con, period, kpis, **filters))
    typer.echo(coaching.ratings_table(frame, kpis))
    if not frame.empty:
        typer.echo(
            "\ntargets (met / exceeded at or above): "
            + "; ".join(f"{k.name.replace('_', ' ')} {k.target:.0%} / {k.stretch:.0%}" for k in kpis)
        )


@app.command()
def plan(
    rep: str = typer.Argument(..., help="the rep's name as in calls.csv"),
    db: Path | None = DB_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    examples: int = typer.Option(2, min=1, max=10, help="the rep's own example moments per gap"),
    targets: Path | None = TARGETS_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """A rep's training plan: the top three gaps against the team, each with the rep's own moments,
    a top-quartile rep's example on the same stage, and a 30-day target."""
    from salescalls.insights import coaching

    _dates(since=since, until=until)
    kpis = _targets(targets)
    frame = _read(
        db, lambda con: coaching.training_plan(con, rep, examples=examples, targets=kpis, since=since, until=until)
    )
    if frame.columns.empty:  # not even an empty plan: the rep has no calls
        _fail(f"no scored calls of a rep named '{rep}'")
    if as_json:
        records = [
            {
                **row,
                "examples": [asdict(m) for m in row["examples"]],
                "contrast": row["contrast"] and asdict(row["contrast"]),
            }
            for row in frame.to_dict("records")
        ]
        typer.echo(json.dumps({"rep": rep, "gaps": records}, ensure_ascii=False, indent=1, default=str))
        return
    typer.echo(coaching.plan_text(frame, rep))


@app.command()
def runs(
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(10, min=1, help="how many of the latest runs"),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table"),
) -> None:
    """The latest nightly runs: status, what they found and did, what went wrong, where they ran.
    Exit code 3 when the latest run did not complete, so a monitor can alert on it."""
    from salescalls.db import store

    frame = _read(db, lambda con: store.recent_runs(con, limit))
    if as_json:
        typer.echo(frame.to_json(orient="records", date_format="iso", force_ascii=False, indent=1))
    elif frame.empty:
        typer.echo("no runs yet")
    else:
        for row in frame.to_dict("records"):
            errors = json.loads(row["errors"] or "{}")
            problems = ", ".join(f"{kind}: {n}" for kind, n in sorted(errors.items())) or "none"
            took = "" if row["minutes"] != row["minutes"] else f", {row['minutes']:.1f} min"
            typer.echo(
                f"{row['started_at']:%Y-%m-%d %H:%M}  {row['status']:<11} {row['files_seen']} files: "
                f"{row['calls_added']} added, {row['calls_skipped']} already stored, {row['quarantined']} quarantined, "
                f"{row['files_waiting']} still copying{took}"
            )
            if row["engine"]:
                peak = "" if row["peak_rss_mb"] != row["peak_rss_mb"] else f", peak {row['peak_rss_mb']:.0f} MB"
                plural = "" if row["workers"] == 1 else "s"
                typer.echo(f"    on {row['engine']} ({row['workers']} worker{plural}{peak}); problems: {problems}")
            if row["message"]:
                typer.echo(f"    {row['message']}")
    if not frame.empty and frame.iloc[0]["status"] != "completed":
        raise typer.Exit(code=3)


@app.command()
def export(
    folder: Path = typer.Argument(..., help="folder for the Parquet files (created if missing)"),
    db: Path | None = DB_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Every table as Parquet (zstd), e.g. for a BI tool or pandas; calls, utterances, results and
    labels only for calls in the date range."""
    from salescalls.db import store

    _dates(since=since, until=until)
    written = _read(db, lambda con: store.export_parquet(con, folder, since, until))
    for table, rows in written.items():
        typer.echo(f"{folder / (table + '.parquet')}: {rows} rows")


@app.command()
def report(
    db: Path | None = DB_OPTION,
    out: Path | None = typer.Option(None, "--out", help="site folder (default: SALESCALLS_REPORT_DIR or data/report)"),
    period: str | None = typer.Option(
        None,
        help=f"{PERIODS_HELP} or auto (by data span): the filter and trends (default: SALESCALLS_REPORT_PERIOD)",
    ),
    calls_per_stage: int = typer.Option(20, min=1, max=1000, help="latest calls listed per stage page"),
    examples: int = typer.Option(2, min=1, max=10, help="the rep's own example moments per training-plan gap"),
    audio: bool = typer.Option(True, "--audio/--no-audio", help="publish the recordings (MP3) so the pages play them"),
    audio_dir: list[Path] = typer.Option([], "--audio-dir", help="where moved recordings are now (repeatable)"),
    targets: Path | None = TARGETS_OPTION,
    script: Path | None = typer.Option(
        None, help="the team's call script: its trackers page and reasons (default: SALESCALLS_SCRIPT if it exists)"
    ),
    serve: int | None = typer.Option(None, "--serve", help="then serve the site on this port until Ctrl-C"),
) -> None:
    """Write the offline HTML report (overview, script funnel, stage pages with transcripts and audio,
    reps and training plans) from the database, read-only; open OUT/index.html or serve the folder."""
    from salescalls.report import site as site_report

    if period is not None and period != "auto":
        _check_period(period)
    settings = Settings.from_env(database=db, report_dir=out, script=script, report_period=period)
    if settings.report_dir is None:
        _fail("SALESCALLS_REPORT_DIR is off: pass --out FOLDER")
    options = site_report.ReportOptions(
        script=_report_script(settings.script, explicit=script is not None),
        period=settings.report_period,
        calls_per_stage=calls_per_stage,
        examples=examples,
        audio=audio,
        audio_dirs=tuple(audio_dir),
        targets=_targets(targets),
    )
    try:
        site = site_report.build(
            settings.database, settings.report_dir, options, progress=lambda m: typer.echo(m, err=True)
        )
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        _fail(str(error))
    if site.audio_missing:
        shown = ", ".join(site.audio_missing[:5]) + (" ..." if len(site.audio_missing) > 5 else "")
        typer.echo(f"warning: {len(site.audio_missing)} recordings not found or not convertible: {shown}", err=True)
    typer.echo(f"report: {len(site.pages)} pages, {site.audio} recordings, {site.seconds:.1f} s -> {site.index}")
    if serve is not None:
        httpd = site_report.server(settings.report_dir, port=serve)
        typer.echo(f"serving {settings.report_dir} at http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()


@app.command()
def search(
    query: str = typer.Argument(..., help="words to find in the transcripts"),
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(20, min=1, help="at most this many utterances"),
    rep: str | None = typer.Option(None, help="only this rep's calls"),
    stage: str | None = typer.Option(None, help="only utterances of this script stage"),
    role: str | None = typer.Option(None, help="rep or customer"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Full-text search over transcripts (BM25 ranked): who said it, in which call, when."""
    from salescalls.db import search as fts
    from salescalls.insights import analytics

    _dates(since=since, until=until)
    filters = {"rep": rep, "stage": stage, "role": role, "since": since, "until": until}
    try:
        found, note = _read(db, lambda con: fts.search(con, query, limit=limit, **filters))
    except ValueError as error:  # an empty query
        _fail(str(error))
    if found.empty:
        typer.echo(f"no utterance matches '{query}' ({note})")
        return
    found = found.assign(
        at=found["start_s"].map(analytics.clock),
        text=found["text"].map(lambda text: analytics.shorten(text, 100)),
    )
    columns = {"file": "call", "rep": "rep", "started_at": "date", "at": "at", "role": "who", "stage": "stage"}
    typer.echo(analytics.format_table(found, columns | {"text": "text"}))
    typer.echo(f"\n{len(found)} utterances; {note}")


@app.command()
def reindex(db: Path | None = DB_OPTION) -> None:
    """Rebuild the full-text search index (the nightly run does this after storing new calls)."""
    from salescalls.db import search as fts
    from salescalls.db import store

    with store.writer(_existing_database(db)) as con:
        result = fts.build_index(con)
    typer.echo(result.get("note") or f"indexed {result['indexed']} utterances (stemmer: {result['stemmer']})")


@app.command()
def analyse(
    file: Path = typer.Argument(..., help="one recording"),
    script: Path | None = typer.Option(None, help="call script YAML"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole result as JSON"),
) -> None:
    """Transcribe and score one recording without storing it: who said what, in which stage."""
    from salescalls.pipeline import analyse_call
    from salescalls.script.outcomes import reconcile
    from salescalls.script.spec import ScriptError, load_script
    from salescalls.speech.audio import AudioError
    from salescalls.speech.transcribe import ModelMissingError

    settings = Settings.from_env(script=script, language=language)
    try:
        record = analyse_call(file, settings, load_script(settings.script))
    except (AudioError, ScriptError, ModelMissingError) as error:
        _fail(f"{file}: {error}")
    if as_json:
        typer.echo(json.dumps(asdict(record), ensure_ascii=False, indent=1))
        return
    for u in record.utterances:
        marker = " (back-channel)" if u.backchannel else ""
        typer.echo(f"{u.start:7.2f}-{u.end:7.2f}  {u.role:8}  {u.stage:13} {u.confidence:4.2f}  {u.text}{marker}")
    score = record.score
    outcome, source = reconcile(
        record.metadata.get("crm_outcome"), score.detected_outcome, score.predicted_outcome, score.outcome_confidence
    )
    typer.echo(
        f"\nended at: {score.end_stage} (by {score.ended_by}); reached: {', '.join(score.stages_reached)}; "
        f"skipped: {', '.join(score.stages_skipped) or '-'}; outcome: {outcome or '-'}"
        + (f" (from {source})" if source else "")
    )
    typer.echo("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in record.timings.items()))


@app.command()
def transcribe(
    file: Path = typer.Argument(..., help="one recording"),
    fmt: str = typer.Option("txt", "--format", "-f", help="json, srt, vtt, rttm or txt"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write here instead of standard output"),
    script: Path | None = typer.Option(None, help="call script: rep/customer evidence and vocabulary"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu); default: detect"),
    vocabulary: bool | None = typer.Option(None, help="prompt whisper with the script's vocabulary"),
    progress: bool = typer.Option(True, help="progress on standard error"),
) -> None:
    """Who said what, when, for one recording (no stages, nothing stored)."""
    from salescalls.pipeline import assign_roles, recognise
    from salescalls.script.spec import ScriptError, load_script
    from salescalls.speech import audio, formats
    from salescalls.speech.transcribe import ModelMissingError

    if fmt not in formats.FORMATS:
        _fail(f"unknown format '{fmt}': choose from {', '.join(formats.FORMATS)}")
    settings = Settings.from_env(script=script, language=language, vocabulary_prompt=vocabulary)
    try:
        call_script = load_script(settings.script)
        info = audio.probe(file)
        samples = audio.load(file, info)
        prompt = call_script.prompt(settings.language) if settings.vocabulary_prompt else None
        speech = recognise(samples, settings, prompt, progress=progress)
    except (audio.AudioError, ScriptError, ModelMissingError) as error:
        _fail(f"{file}: {error}")
    roles = assign_roles(speech, settings, call_script)
    text = formats.render(fmt, speech, roles, samples.shape[1] / audio.SAMPLE_RATE, file.stem)
    _write(text, output, f"wrote {output}")


@models_app.command("setup")
def models_setup(whisper_model: str | None = typer.Option(None, help="whisper size (default: base)")) -> None:
    """Use models in SALESCALLS_MODELS_DIR, else link a shared offline copy, else download the official ones."""
    from salescalls.speech.models import setup
    from salescalls.speech.transcribe import ModelMissingError

    settings = Settings.from_env(whisper_model=whisper_model)
    try:
        for line in setup(settings.models_dir, settings.whisper_model):
            typer.echo(line)
    except ModelMissingError as error:
        _fail(str(error))


@models_app.command("check")
def models_check(whisper_model: str | None = typer.Option(None, help="whisper size (default: base)")) -> None:
    """Exit 0 when every model the pipeline needs is in place, else list what is missing."""
    from salescalls.speech.models import missing

    settings = Settings.from_env(whisper_model=whisper_model)
    gaps = missing(settings.models_dir, settings.whisper_model)
    if gaps:
        _fail("missing models: " + "; ".join(gaps) + ". Run `salescalls models setup`.")
    typer.echo(f"models ready in {settings.models_dir}")


@script_app.command("check")
def script_check(file: Path) -> None:
    """Validate a call script; errors name the file and line."""
    from salescalls.script.spec import ScriptError, load_script

    try:
        script = load_script(file)
    except ScriptError as error:
        _fail(str(error))
    required = ", ".join(s.name + ("" if s.required else " (optional)") for s in script.stages)
    typer.echo(f"{file}: script {script.id} v{script.version}, languages {', '.join(script.languages)}")
    typer.echo(f"stages: {required}")


def main() -> None:  # pragma: no cover - console entry point
    from salescalls.config import SettingsError

    try:
        sys.exit(app())
    except SettingsError as error:  # a bad SALESCALLS_* variable, whichever command read it
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)


def _stored_calls_and_script(db: Path | None, script: Path | None):
    """Settings and the loaded script for a command working on stored calls; clear errors otherwise."""
    from salescalls.script.spec import ScriptError, load_script

    settings = Settings.from_env(database=_existing_database(db), script=script)
    try:
        call_script = load_script(settings.script)
    except ScriptError as error:
        _fail(str(error))
    return settings, call_script


@app.command()
def review(
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(50, min=1, help="how many utterances"),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write here instead of standard output"),
    script_id: str | None = typer.Option(None, help="only calls scored against this script"),
) -> None:
    """The utterances (and calls) the stage model is least sure of, with an empty `label` column to fill in."""
    from salescalls.learning import review as qa

    if fmt not in ("csv", "json"):
        _fail(f"unknown format '{fmt}': choose csv or json")

    rows, calls = _read(db, lambda con: (qa.review_rows(con, limit, script_id), qa.review_calls(con, min(limit, 20))))
    text = qa.to_csv(rows) if fmt == "csv" else json.dumps({"utterances": rows, "calls": calls}, indent=1, default=str)
    _write(text, output, f"wrote {len(rows)} utterances to review to {output}")


@labels_app.command("import")
def labels_import(
    file: Path = typer.Argument(
        ...,
        help="a review file (CSV/JSON, label column filled in) or labelled transcripts (JSONL; CSV call,text,stage)",
    ),
    db: Path | None = DB_OPTION,
    by: str | None = typer.Option(None, help="who labelled (stored with every label)"),
    script: Path | None = typer.Option(None, help="call script the labelled transcripts follow"),
) -> None:
    """Store labels: a review file's corrections of stored calls, or a file of labelled transcripts
    (calls not in the database, e.g. before the first night) to train on."""
    from salescalls.db import store
    from salescalls.learning import corpus
    from salescalls.learning import review as qa

    if not file.is_file():
        _fail(f"no such file: {file}")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        _fail(f"{file}: not UTF-8 text; save it as UTF-8 and import again")
    if corpus.is_corpus_file(file, text):
        from salescalls.script.spec import ScriptError, load_script

        settings = Settings.from_env(database=db, script=script)
        try:
            call_script = load_script(settings.script)
            with store.writer(settings.database) as con:
                store.save_script(con, call_script)
                result = corpus.import_corpus(con, file, call_script)
        except (ScriptError, corpus.CorpusError) as error:
            _fail(str(error))
        for line in result.errors:
            typer.echo(line, err=True)
        typer.echo(
            f"{_count(result.dialogues, 'labelled call')} ({_count(result.turns, 'turn')}, "
            f"{result.labelled} with a stage) stored for {call_script.id}; `salescalls train` learns from them"
        )
        if not result.labelled:
            raise typer.Exit(code=1)
        return
    try:
        rows = qa.read_label_file(file)
    except (ValueError, UnicodeDecodeError) as error:
        _fail(f"{file}: cannot read labels: {error}")
    with store.writer(_existing_database(db)) as con:
        result = qa.import_labels(con, rows, file.name, by)
    for line in result.errors:
        typer.echo(line, err=True)
    typer.echo(f"{result.stored} labels stored, {result.skipped} rows without a label, {len(result.errors)} rejected")
    if result.errors and not result.stored:
        raise typer.Exit(code=1)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@app.command()
def train(db: Path | None = DB_OPTION, script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Train a stage-model candidate from the script's examples and every labelled call; it becomes
    the active model only when it measures at least as well on held-out labels."""
    from salescalls.db import store
    from salescalls.learning import training

    settings, call_script = _stored_calls_and_script(db, script)
    with store.reader(settings.database) as con:
        try:
            folder, record = training.train_from_labels(con, call_script, settings.models_dir)
        except ValueError as error:
            _fail(str(error))
    typer.echo(
        f"trained {folder} from {_count(record['labelled_calls'], 'labelled call')} "
        f"({record['labelled_utterances']} labelled utterances) and {record['script_examples']} script examples"
    )
    typer.echo(record["verdict"])
    outcome = record["outcome_model"]
    if isinstance(outcome, dict):
        typer.echo(
            f"outcome model from {outcome['calls']} calls with a CRM outcome: held-out accuracy "
            f"{outcome['accuracy']:.1%} (always the most common outcome: {outcome['majority_baseline_accuracy']:.1%})"
        )
    else:
        typer.echo(f"outcome model {outcome}")
    if record["promoted"]:
        typer.echo("run `salescalls rescore` to give the stored calls the new model's stages")
    else:
        typer.echo(f"the new version stays unused; `salescalls models use {folder.name[1:]}` would make it active")


@models_app.command("stages")
def models_stages(script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Every stage-model version of the script with what it measured; * marks the active one."""
    from salescalls.insights.analytics import format_table
    from salescalls.script import stage_versions
    from salescalls.script.spec import ScriptError, load_script

    settings = Settings.from_env(script=script)
    try:
        call_script = load_script(settings.script)
    except ScriptError as error:
        _fail(str(error))
    import pandas as pd

    rows = pd.DataFrame(
        [
            {
                "": "*" if row["active"] else "",
                "version": row["version"],
                "model": row["name"],
                "created": row["created_at"] or "",
                "labelled calls": row.get("labelled_calls") if row["version"] else "",
                "held-out accuracy": row.get("held_out_accuracy"),
                "replaced model's": row.get("replaced_accuracy"),
                "note": (row.get("verdict") or "")[:60] if row["version"] else "the script's examples only",
            }
            for row in stage_versions.versions(settings.models_dir, call_script)
        ]
    )
    typer.echo(f"stage models of {call_script.id} in {settings.models_dir}:")
    typer.echo(
        format_table(rows, {k: k for k in rows.columns}, {"held-out accuracy": ".1%", "replaced model's": ".1%"})
    )
    typer.echo("`salescalls models use N` activates version N (0: the cold start); then `salescalls rescore`")


@models_app.command("use")
def models_use(
    version: int = typer.Argument(..., help="the version to score calls with (0: the cold-start model)"),
    script: Path | None = typer.Option(None, help="call script YAML"),
) -> None:
    """Make a saved stage-model version (or the cold start) the active one: roll back or forward."""
    from salescalls.script import stage_versions
    from salescalls.script.spec import ScriptError, load_script

    settings = Settings.from_env(script=script)
    try:
        call_script = load_script(settings.script)
        stage_versions.set_active(settings.models_dir, call_script, version, "chosen with salescalls models use")
    except (ScriptError, stage_versions.VersionError) as error:
        _fail(str(error))
    name = stage_versions.load_model(settings.models_dir, call_script).name
    typer.echo(f"{call_script.id}: calls are now scored with {name}; run `salescalls rescore` for the stored ones")


@app.command()
def rescore(db: Path | None = DB_OPTION, script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Give every stored call of the script the current stage model's stages (no re-transcribing)."""
    from salescalls.db import store
    from salescalls.learning import review as qa

    settings, call_script = _stored_calls_and_script(db, script)
    with store.writer(settings.database) as con:
        store.save_script(con, call_script)
        count, name = qa.rescore(con, call_script, settings.models_dir)
    typer.echo(f"rescored {count} calls of {call_script.id} with {name}")


@app.command("config")
def show_config(as_json: bool = typer.Option(False, "--json", help="as JSON, one object per setting")) -> None:
    """The effective settings: each value, where it came from (default, a SALESCALLS_* variable)
    and what it means."""
    import json

    import pandas as pd

    from salescalls.config import SettingsError
    from salescalls.insights import analytics

    try:
        rows = Settings.from_env().described()
    except SettingsError as error:
        _fail(str(error))
    if as_json:
        keys = ("setting", "value", "from", "meaning")
        typer.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], ensure_ascii=False, indent=1))
        return
    frame = pd.DataFrame(rows, columns=["setting", "value", "from", "meaning"])
    typer.echo(analytics.format_table(frame, {c: c for c in frame.columns}))


if __name__ == "__main__":  # python -m salescalls.cli
    main()
