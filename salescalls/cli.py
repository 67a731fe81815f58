"""The `salescalls` command line. Flows and notebooks call the same functions."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from .config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Find, link or download the speech models.")
script_app = typer.Typer(no_args_is_help=True, help="Check call-script files.")
app.add_typer(models_app, name="models")
app.add_typer(script_app, name="script")

DB_OPTION = typer.Option(None, "--db", help="DuckDB file (default: SALESCALLS_DB or data/salescalls.duckdb)")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@app.command()
def run(
    inbox: Path = typer.Argument(..., help="folder of new recordings (and optionally calls.csv)"),
    db: Path | None = DB_OPTION,
    metadata: Path | None = typer.Option(None, help="CRM metadata CSV (default: INBOX/calls.csv)"),
    script: Path | None = typer.Option(None, help="call script YAML (default: SALESCALLS_SCRIPT)"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu); default: detect"),
) -> None:
    """Run the nightly flow on INBOX: new calls are transcribed, scored and stored; prints the drop-off table."""
    from flows.nightly import nightly

    from . import analytics, store
    from .script import ScriptError
    from .transcribe import ModelMissingError

    if not inbox.is_dir():
        _fail(f"inbox is not a folder: {inbox}")
    try:
        summary = nightly(
            str(inbox),
            database=str(db) if db else None,
            metadata=str(metadata) if metadata else None,
            script=str(script) if script else None,
            language=language,
        )
    except (ScriptError, ModelMissingError, FileNotFoundError) as error:
        _fail(str(error))
    typer.echo(
        f"\nrun {summary['run_id']}: {summary['files_seen']} recordings, {summary['calls_added']} added, "
        f"{summary['calls_skipped']} already stored, {summary['quarantined']} quarantined\n"
    )
    with store.reader(summary["database"]) as con:
        typer.echo(analytics.dropoff_table(analytics.dropoff(con)))


@app.command()
def dropoff(db: Path | None = DB_OPTION, script_id: str | None = typer.Option(None, help="only this script")) -> None:
    """Per script stage: calls that reached it, ended there, and the share that ended (read-only)."""
    from . import analytics, store

    settings = Settings.from_env(database=db)
    try:
        with store.reader(settings.database) as con:
            typer.echo(analytics.dropoff_table(analytics.dropoff(con, script_id)))
    except FileNotFoundError as error:
        _fail(str(error))


@app.command()
def analyse(
    file: Path = typer.Argument(..., help="one recording"),
    script: Path | None = typer.Option(None, help="call script YAML"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole result as JSON"),
) -> None:
    """Transcribe and score one recording without storing it: who said what, in which stage."""
    from .audio import AudioError
    from .pipeline import analyse_call
    from .script import ScriptError, load_script
    from .transcribe import ModelMissingError

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
    typer.echo(
        f"\nended at: {score.end_stage} (by {score.ended_by}); reached: {', '.join(score.stages_reached)}; "
        f"skipped: {', '.join(score.stages_skipped) or '-'}; outcome: {score.detected_outcome or '-'}"
    )
    typer.echo("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in record.timings.items()))


@models_app.command("setup")
def models_setup(whisper_model: str | None = typer.Option(None, help="whisper size (default: base)")) -> None:
    """Use models in SALESCALLS_MODELS_DIR, else link a shared offline copy, else download the official ones."""
    from .models import setup
    from .transcribe import ModelMissingError

    settings = Settings.from_env(whisper_model=whisper_model)
    try:
        for line in setup(settings.models_dir, settings.whisper_model):
            typer.echo(line)
    except ModelMissingError as error:
        _fail(str(error))


@models_app.command("check")
def models_check(whisper_model: str | None = typer.Option(None, help="whisper size (default: base)")) -> None:
    """Exit 0 when every model the pipeline needs is in place, else list what is missing."""
    from .models import missing

    settings = Settings.from_env(whisper_model=whisper_model)
    gaps = missing(settings.models_dir, settings.whisper_model)
    if gaps:
        _fail("missing models: " + "; ".join(gaps) + ". Run `salescalls models setup`.")
    typer.echo(f"models ready in {settings.models_dir}")


@script_app.command("check")
def script_check(file: Path) -> None:
    """Validate a call script; errors name the file and line."""
    from .script import ScriptError, load_script

    try:
        script = load_script(file)
    except ScriptError as error:
        _fail(str(error))
    required = ", ".join(s.name + ("" if s.required else " (optional)") for s in script.stages)
    typer.echo(f"{file}: script {script.id} v{script.version}, languages {', '.join(script.languages)}")
    typer.echo(f"stages: {required}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
