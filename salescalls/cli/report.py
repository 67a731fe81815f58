"""The `report` command: the offline HTML report, optionally served."""

from __future__ import annotations

from pathlib import Path

import typer

from salescalls.cli.common import (
    DB_OPTION,
    PERIODS_HELP,
    TARGETS_OPTION,
    app,
    check_period,
    command,
    kpi_targets,
)
from salescalls.config import Settings
from salescalls.errors import InputError
from salescalls.i18n import _


def report_script(path: Path, explicit: bool):
    """The report's script: the one asked for (it must load), or the configured one if it loads."""
    from salescalls.script.spec import ScriptError, load_script

    if not explicit and not path.is_file():
        return None
    try:
        return load_script(path)
    except ScriptError as error:
        if explicit:
            raise
        typer.echo(f"warning: {error}; the report has no trackers page and uses the generic reasons", err=True)
        return None


@command(app)
def report(
    db: Path | None = DB_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="site folder (default: SALESCALLS_REPORT_DIR, else report/ beside the database)"
    ),
    period: str | None = typer.Option(
        None,
        help=f"{PERIODS_HELP} or auto (by data span): the filter and trends (default: SALESCALLS_REPORT_PERIOD)",
    ),
    calls_per_stage: int | None = typer.Option(
        None,
        min=1,
        max=1000,
        help="latest calls per stage page (default: SALESCALLS_REPORT_CALLS_PER_STAGE or 20)",
    ),
    examples: int | None = typer.Option(
        None,
        min=1,
        max=10,
        help="own moments per training-plan gap (default: SALESCALLS_REPORT_EXAMPLES or 2)",
    ),
    audio: bool | None = typer.Option(
        None, "--audio/--no-audio", help="publish the recordings (MP3) so the pages play them (default: yes)"
    ),
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

    check_period(period, auto=True)
    settings = Settings.from_env(
        database=db,
        report_dir=out,
        script=script,
        report_period=period,
        report_calls_per_stage=calls_per_stage,
        report_examples=examples,
        report_audio=audio,
    )
    if settings.report_dir is None:
        raise InputError(_("SALESCALLS_REPORT_DIR is off: pass --out FOLDER"))
    options = site_report.ReportOptions(
        script=report_script(settings.script, explicit=script is not None),
        period=settings.report_period,
        calls_per_stage=settings.report_calls_per_stage,
        examples=settings.report_examples,
        audio=settings.report_audio,
        audio_dirs=tuple(audio_dir),
        targets=kpi_targets(targets),
        language=settings.ui_language,
    )
    site = site_report.build(
        settings.database, settings.report_dir, options, progress=lambda m: typer.echo(m, err=True)
    )
    if site.audio_missing:
        shown = ", ".join(site.audio_missing[:5]) + (" ..." if len(site.audio_missing) > 5 else "")
        typer.echo(f"warning: {len(site.audio_missing)} recordings not found or not convertible: {shown}", err=True)
    typer.echo(f"report: {len(site.pages)} pages, {site.audio} recordings, {site.seconds:.1f} s -> {site.index}")
    if serve is not None:
        try:
            httpd = site_report.server(settings.report_dir, port=serve)
        except OSError as error:  # the port is taken, or below 1024
            raise InputError(
                _(
                    "cannot serve on port {port}: {reason}; choose another --serve port",
                    port=serve,
                    reason=error.strerror or error,
                )
            ) from None
        typer.echo(f"serving {settings.report_dir} at http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()
