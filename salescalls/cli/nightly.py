"""Commands of the nightly job: run it now, run it on a schedule, list the runs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from salescalls.cli.common import DB_OPTION, app, command, debugging, read
from salescalls.config import Settings
from salescalls.errors import UsageError
from salescalls.i18n import _, named, ngettext, number, when


@command(app)
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
    from salescalls.db import store
    from salescalls.insights import funnel
    from salescalls.nightly.console import brief_console
    from salescalls.nightly.flow import nightly, script_for_run

    if not inbox.is_dir():
        raise UsageError(_("inbox is not a folder: {inbox}", inbox=inbox))
    # A bad variable or a file that is not a database: one line, before Prefect starts or a lock is taken.
    settings = Settings.from_env(database=db, script=script, workers=workers, dask_address=dask_address)
    if settings.database.exists():
        with store.reader(settings.database):
            pass
    script_for_run(settings, inbox)
    with contextlib.nullcontext() if debugging() else brief_console():  # no tracebacks on the console
        summary = nightly(
            str(inbox),
            database=str(db) if db else None,
            metadata=str(metadata) if metadata else None,
            script=str(script) if script else None,
            language=language,
            workers=workers,
            dask_address=dask_address,
        )
    typer.echo("\n" + _("run {run} ({done})", run=summary["run_id"], done=_done(summary, "recordings")) + "\n")
    with store.reader(summary["database"]) as con:
        typer.echo(funnel.dropoff_table(funnel.dropoff(con)))
    if summary.get("report"):
        typer.echo("\n" + _("HTML report: {path}", path=summary["report"]))


@command(app)
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

    from salescalls.errors import SetupError
    from salescalls.nightly.flow import schedule
    from salescalls.nightly.flow import serve as serve_flow

    if not os.environ.get("PREFECT_API_URL"):
        raise SetupError(
            _(
                "PREFECT_API_URL is not set: a schedule lives on a Prefect server. Start one with "
                "`prefect server start` and export PREFECT_API_URL=http://127.0.0.1:4200/api (README: Operations)"
            )
        )
    if not inbox.is_dir():
        raise UsageError(_("inbox is not a folder: {inbox}", inbox=inbox))
    Settings.from_env(workers=workers, dask_address=dask_address)
    schedule(cron, timezone)
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


@command(app)
def runs(
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(10, min=1, help="how many of the latest runs"),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table"),
) -> None:
    """The latest nightly runs: status, what they found and did, what went wrong, where they ran.
    Exit code 3 when the latest run did not complete, so a monitor can alert on it."""
    from salescalls.db import runlog

    frame = read(db, lambda con: runlog.recent_runs(con, limit))
    frame = frame.assign(errors=[json.loads(e or "{}") for e in frame["errors"]])  # kind -> how many
    if as_json:  # errors as the object they are, not a string holding JSON
        typer.echo(frame.to_json(orient="records", date_format="iso", force_ascii=False, indent=1))
    elif frame.empty:
        typer.echo(_("no runs yet"))
    else:
        from salescalls.report.words import RUN_STATUSES

        for row in frame.to_dict("records"):
            problems = ", ".join(f"{kind}: {n}" for kind, n in sorted(row["errors"].items())) or _("none")
            done = _done(row, "files") + ", " + _("{n} still copying", n=row["files_waiting"])
            if row["minutes"] == row["minutes"]:
                done += ", " + _("{minutes} min", minutes=number(row["minutes"], ".1f"))
            status = named(RUN_STATUSES, row["status"])
            typer.echo(f"{when(row['started_at'])}  {status:<11} {done}")
            if row["engine"]:
                workers = ngettext("{n} worker", "{n} workers", int(row["workers"]))
                if row["peak_rss_mb"] == row["peak_rss_mb"]:
                    workers += ", " + _("peak {megabytes} MB", megabytes=number(row["peak_rss_mb"], ".0f"))
                typer.echo(
                    "    "
                    + _(
                        "on {engine} ({workers}); problems: {problems}",
                        engine=row["engine"],
                        workers=workers,
                        problems=problems,
                    )
                )
            if row["message"]:
                typer.echo(f"    {row['message']}")
    if not frame.empty and frame.iloc[0]["status"] != "completed":
        raise typer.Exit(code=3)


def _done(counts: dict, seen: str) -> str:
    """'12 recordings: 10 added, 2 already stored, 0 quarantined' (`seen`: recordings or files)."""
    found = (
        ngettext("{n} recording", "{n} recordings", int(counts["files_seen"]))
        if seen == "recordings"
        else ngettext("{n} file", "{n} files", int(counts["files_seen"]))
    )
    return _(
        "{found}: {added} added, {skipped} already stored, {quarantined} quarantined",
        found=found,
        added=counts["calls_added"],
        skipped=counts["calls_skipped"],
        quarantined=counts["quarantined"],
    )
