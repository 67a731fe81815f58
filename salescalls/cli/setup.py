"""Commands that set up and inspect the installation: models, stage-model versions, scripts, settings."""

from __future__ import annotations

from pathlib import Path

import typer

from salescalls.cli.common import app, command, models_app, script_app
from salescalls.config import ASR_ENGINES, Settings
from salescalls.i18n import _

_ENGINE_HELP = "openai, faster or all (default: the configured SALESCALLS_ASR_ENGINE)"


def _engine(engine: str | None, settings: Settings) -> str:
    from salescalls.errors import UsageError

    if engine is not None and engine not in (*ASR_ENGINES, "all"):
        raise UsageError(_("--engine {engine}: expected openai, faster or all", engine=engine))
    return engine or settings.asr_engine


@command(models_app, "setup")
def models_setup(
    whisper_model: str | None = typer.Option(None, help="whisper size (default: base)"),
    engine: str | None = typer.Option(None, help=_ENGINE_HELP),
) -> None:
    """Use models in SALESCALLS_MODELS_DIR, else link a shared offline copy, else download the official ones."""
    from salescalls.speech.models import setup

    settings = Settings.from_env(whisper_model=whisper_model)
    for line in setup(settings.models_dir, settings.whisper_model, _engine(engine, settings)):
        typer.echo(line)


@command(models_app, "check")
def models_check(
    whisper_model: str | None = typer.Option(None, help="whisper size (default: base)"),
    engine: str | None = typer.Option(None, help=_ENGINE_HELP),
) -> None:
    """Exit 0 when every model the pipeline needs is in place, else list what is missing."""
    from salescalls.speech.models import missing
    from salescalls.speech.transcribe import ModelMissingError

    settings = Settings.from_env(whisper_model=whisper_model)
    gaps = missing(settings.models_dir, settings.whisper_model, _engine(engine, settings))
    if gaps:
        raise ModelMissingError(_("missing models: {gaps}. Run `salescalls models setup`.", gaps="; ".join(gaps)))
    typer.echo(_("models ready in {folder}", folder=settings.models_dir))


@command(models_app, "stages")
def models_stages(script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Every stage-model version of the script with what it measured; * marks the active one."""
    from salescalls.insights.tables import format_table
    from salescalls.script import stage_versions
    from salescalls.script.spec import load_script

    settings = Settings.from_env(script=script)
    call_script = load_script(settings.script)
    import pandas as pd

    HELD_OUT, REPLACED = _("held-out accuracy"), _("replaced model's")  # noqa: N806 - two column names
    rows = pd.DataFrame(
        [
            {
                "": "*" if row["active"] else "",
                _("version"): row["version"],
                _("model"): row["name"],
                _("created"): row["created_at"] or "",
                _("labelled calls"): row.get("labelled_calls") if row["version"] else "",
                HELD_OUT: row.get("held_out_accuracy"),
                REPLACED: row.get("replaced_accuracy"),
                _("note"): (row.get("verdict") or "")[:60] if row["version"] else _("the script's examples only"),
            }
            for row in stage_versions.versions(settings.models_dir, call_script)
        ]
    )
    typer.echo(_("stage models of {script} in {folder}:", script=call_script.id, folder=settings.models_dir))
    typer.echo(format_table(rows, {k: k for k in rows.columns}, {HELD_OUT: ".1%", REPLACED: ".1%"}))
    typer.echo(_("`salescalls models use N` activates version N (0: the cold start); then `salescalls rescore`"))


@command(models_app, "use")
def models_use(
    version: int = typer.Argument(..., help="the version to score calls with (0: the cold-start model)"),
    script: Path | None = typer.Option(None, help="call script YAML"),
) -> None:
    """Make a saved stage-model version (or the cold start) the active one: roll back or forward."""
    from salescalls.script import stage_versions
    from salescalls.script.spec import load_script

    settings = Settings.from_env(script=script)
    call_script = load_script(settings.script)
    stage_versions.set_active(settings.models_dir, call_script, version, "chosen with salescalls models use")
    name = stage_versions.load_model(settings.models_dir, call_script).name
    typer.echo(
        _(
            "{script}: calls are now scored with {model}; run `salescalls rescore` for the stored ones",
            script=call_script.id,
            model=name,
        )
    )


@command(script_app, "check")
def script_check(file: Path) -> None:
    """Validate a call script; errors name the file and line."""
    from salescalls.script.spec import load_script

    script = load_script(file)
    optional = _("(optional)")
    required = ", ".join(s.name + ("" if s.required else f" {optional}") for s in script.stages)
    languages = ", ".join(script.languages)
    typer.echo(
        _(
            "{file}: script {script} v{version}, languages {languages}",
            file=file,
            script=script.id,
            version=script.version,
            languages=languages,
        )
    )
    typer.echo(_("stages: {stages}", stages=required))
    success = ", ".join(script.success) or _("none (add `success:` naming the outcomes that make a call a success)")
    typer.echo(_("success outcomes: {outcomes}", outcomes=success))
    typer.echo(_("stage order: {order} (stage_order: strict, loose or free)", order=script.stage_order))


@command(app, "config")
def show_config(as_json: bool = typer.Option(False, "--json", help="as JSON, one object per setting")) -> None:
    """The effective settings: each value, where it came from (default, a SALESCALLS_* variable)
    and what it means."""
    import json

    import pandas as pd

    from salescalls.insights import tables

    rows = Settings.from_env().described()
    if as_json:
        keys = ("setting", "value", "from", "meaning")
        typer.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], ensure_ascii=False, indent=1))
        return
    frame = pd.DataFrame(rows, columns=["setting", "value", "from", "meaning"])
    typer.echo(tables.format_table(frame, {c: c for c in frame.columns}))
