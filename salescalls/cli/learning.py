"""Commands of the QA loop: the utterances to review, people's labels, training and rescoring."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from salescalls.cli.common import (
    DB_OPTION,
    app,
    command,
    existing_database,
    labels_app,
    read,
    stored_calls_and_script,
    write,
)
from salescalls.config import Settings
from salescalls.errors import InputError, UsageError
from salescalls.i18n import _, ngettext, percent


@command(app)
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
        raise UsageError(_("unknown format '{fmt}': choose {choices}", fmt=fmt, choices="csv, json"))

    rows, calls = read(db, lambda con: (qa.review_rows(con, limit, script_id), qa.review_calls(con, min(limit, 20))))
    text = qa.to_csv(rows) if fmt == "csv" else json.dumps({"utterances": rows, "calls": calls}, indent=1, default=str)
    done = ngettext(
        "wrote {n} utterance to review to {file}", "wrote {n} utterances to review to {file}", len(rows), file=output
    )
    write(text, output, done)


@command(labels_app, "import")
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
        raise UsageError(_("no such file: {file}", file=file))
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(_("{file}: not UTF-8 text; save it as UTF-8 and import again", file=file)) from None
    if corpus.is_corpus_file(file, text):
        from salescalls.script.spec import load_script

        settings = Settings.from_env(database=db, script=script)
        call_script = load_script(settings.script)
        with store.writer(settings.database) as con:
            store.save_script(con, call_script)
            result = corpus.import_corpus(con, file, call_script)
        for line in result.errors:
            typer.echo(line, err=True)
        typer.echo(
            _(
                "stored for {script}: labelled calls {calls}, turns {turns}, with a stage {labelled}; "
                "`salescalls train` learns from them",
                script=call_script.id,
                calls=result.dialogues,
                turns=result.turns,
                labelled=result.labelled,
            )
        )
        if not result.labelled:
            raise typer.Exit(code=1)
        return
    try:
        rows = qa.read_label_file(file)
    except ValueError as error:  # not JSON, not a review file (InputError is one too)
        raise InputError(_("{file}: cannot read labels: {error}", file=file, error=error)) from None
    with store.writer(existing_database(db)) as con:
        result = qa.import_labels(con, rows, file.name, by)
    for line in result.errors:
        typer.echo(line, err=True)
    typer.echo(
        _(
            "labels stored {stored}, rows without a label {skipped}, rejected {rejected}",
            stored=result.stored,
            skipped=result.skipped,
            rejected=len(result.errors),
        )
    )
    if result.errors and not result.stored:
        raise typer.Exit(code=1)


@command(app)
def train(db: Path | None = DB_OPTION, script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Train a stage-model candidate from the script's examples and every labelled call; it becomes
    the active model only when it measures at least as well on held-out labels."""
    from salescalls.learning import training

    _train_with(training.train_from_labels, db, script)


@command(app)
def adapt(db: Path | None = DB_OPTION, script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Teach the stage model the team's own words from its stored calls: the utterances the
    script's examples classify surest become examples too. It becomes active only when it measures
    at least as well on held-out labels; without labels it is saved for `models use`."""
    from salescalls.learning import training

    _train_with(training.adapt_to_stored_calls, db, script)


def _train_with(trainer, db: Path | None, script: Path | None) -> None:
    from salescalls.db import store
    from salescalls.learning import training

    settings, call_script = stored_calls_and_script(db, script)
    with store.reader(settings.database) as con:
        try:
            folder, record = trainer(con, call_script, settings.models_dir)
        except ValueError as error:  # e.g. labels of one stage only: the models cannot be fitted
            raise InputError(str(error)) from None
    typer.echo(
        _(
            "trained {folder}: labelled calls {calls}, labelled utterances {utterances}, script examples {examples}",
            folder=folder,
            calls=record["labelled_calls"],
            utterances=record["labelled_utterances"],
            examples=record["script_examples"],
        )
    )
    adaptation = record.get("adaptation")
    if adaptation:
        typer.echo(
            _(
                "examples from {calls} stored calls: {examples} utterances, at most {per_stage} per stage",
                calls=adaptation["calls"],
                examples=sum(adaptation["examples"].values()),
                per_stage=adaptation["per_stage"],
            )
        )
    typer.echo(verdict(record))
    outcome = record["outcome_model"]
    if isinstance(outcome, dict):
        typer.echo(
            _(
                "outcome model from {calls} calls with a CRM outcome: held-out accuracy {accuracy} "
                "(always the most common outcome: {baseline})",
                calls=outcome["calls"],
                accuracy=percent(outcome["accuracy"], 1),
                baseline=percent(outcome["majority_baseline_accuracy"], 1),
            )
        )
    else:
        typer.echo(_("outcome model not trained: needs {n} calls with 2+ CRM outcomes", n=training.MIN_OUTCOME_CALLS))
    if record["promoted"]:
        typer.echo(_("run `salescalls rescore` to give the stored calls the new model's stages"))
    else:
        typer.echo(
            _(
                "the new version stays unused; `salescalls models use {version}` would make it active",
                version=folder.name[1:],
            )
        )


def verdict(record: dict) -> str:
    """The training record's verdict in the team's language (the sidecar keeps it in English)."""
    comparison, model = record["comparison"], record["replaces"]
    if comparison is None and record.get("adaptation"):
        return _(
            "kept {model}: no labels to measure the adapted model on (label a review round and adapt again, "
            "or choose it with `salescalls models use`)",
            model=model,
        )
    if comparison is None:
        return _(
            "kept {model}: too few labels to measure the new model on held-out ones (label 2 or more)", model=model
        )
    values = {
        "model": model,
        "new": percent(comparison["candidate_accuracy"], 1),
        "old": percent(comparison["current_accuracy"], 1),
        "n": comparison["held_out_utterances"],
        "folds": comparison["folds"],
    }
    if record["promoted"]:
        return _(
            "promoted: held-out accuracy {new} vs {old} for {model} ({n} labelled utterances, {folds} folds)", **values
        )
    return _(
        "kept {model}: the new model measured worse, held-out accuracy {new} vs {old} for {model} "
        "({n} labelled utterances, {folds} folds)",
        **values,
    )


@command(app)
def rescore(db: Path | None = DB_OPTION, script: Path | None = typer.Option(None, help="call script YAML")) -> None:
    """Give every stored call of the script the current stage model's stages (no re-transcribing)."""
    from salescalls.db import store
    from salescalls.learning import review as qa

    settings, call_script = stored_calls_and_script(db, script)
    with store.writer(settings.database) as con:
        store.save_script(con, call_script)
        rescored, name = qa.rescore(con, call_script, settings.models_dir)
    typer.echo(_("rescored {n} calls of {script} with {model}", n=rescored, script=call_script.id, model=name))
