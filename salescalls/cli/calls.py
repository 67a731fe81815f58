"""Commands on single recordings and stored calls: analyse, transcribe, search, export."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from salescalls.cli.common import (
    DB_OPTION,
    REP_OPTION,
    SINCE_OPTION,
    UNTIL_OPTION,
    about,
    app,
    command,
    dates,
    existing_database,
    matched,
    read,
    writable,
    write,
)
from salescalls.config import Settings
from salescalls.errors import UsageError
from salescalls.i18n import _


@command(app)
def analyse(
    file: Path = typer.Argument(..., help="one recording"),
    script: Path | None = typer.Option(None, help="call script YAML"),
    language: str | None = typer.Option(None, help="force a language (en, ru, hu)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole result as JSON"),
) -> None:
    """Transcribe and score one recording without storing it: who said what, in which stage."""
    from salescalls.pipeline import analyse_call
    from salescalls.script.outcomes import reconcile
    from salescalls.script.spec import load_script

    settings = Settings.from_env(script=script, language=language)
    with about(file):
        record = analyse_call(file, settings, load_script(settings.script))
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


@command(app)
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
    from salescalls.script.spec import load_script
    from salescalls.speech import audio, formats

    if fmt not in formats.FORMATS:
        raise UsageError(_("unknown format '{fmt}': choose {choices}", fmt=fmt, choices=", ".join(formats.FORMATS)))
    writable(output)  # before minutes of transcription, not after
    settings = Settings.from_env(script=script, language=language, vocabulary_prompt=vocabulary)
    with about(file):
        call_script = load_script(settings.script)
        info = audio.probe(file)
        samples = audio.load(file, info)
        prompt = call_script.prompt(settings.language) if settings.vocabulary_prompt else None
        speech = recognise(samples, settings, prompt, progress=progress)
    roles = assign_roles(speech, settings, call_script)
    text = formats.render(fmt, speech, roles, samples.shape[1] / audio.SAMPLE_RATE, file.stem)
    write(text, output, f"wrote {output}")


@command(app)
def search(
    query: str = typer.Argument(..., help="words to find in the transcripts"),
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(20, min=1, help="at most this many utterances"),
    rep: str | None = REP_OPTION,
    stage: str | None = typer.Option(None, help="only utterances of this script stage"),
    role: str | None = typer.Option(None, help="rep or customer"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Full-text search over transcripts (BM25 ranked): who said it, in which call, when."""
    from salescalls.db import search as fts
    from salescalls.insights import tables

    rep = matched(db, since, until, rep=rep)["rep"]  # 'ann' finds Ann's calls; an unknown rep is named
    filters = {"rep": rep, "stage": stage, "role": role, "since": since, "until": until}
    found, note = read(db, lambda con: fts.search(con, query, limit=limit, **filters))
    if found.empty:
        typer.echo(f"no utterance matches '{query}' ({note})")
        return
    found = found.assign(
        at=found["start_s"].map(tables.clock),
        text=found["text"].map(lambda text: tables.shorten(text, 100)),
    )
    columns = {"file": "call", "rep": "rep", "started_at": "date", "at": "at", "role": "who", "stage": "stage"}
    typer.echo(tables.format_table(found, columns | {"text": "text"}))
    typer.echo(f"\n{len(found)} utterances; {note}")


@command(app)
def reindex(db: Path | None = DB_OPTION) -> None:
    """Rebuild the full-text search index (the nightly run does this after storing new calls)."""
    from salescalls.db import search as fts
    from salescalls.db import store

    with store.writer(existing_database(db)) as con:
        result = fts.build_index(con)
    typer.echo(result.get("note") or f"indexed {result['indexed']} utterances (stemmer: {result['stemmer']})")


@command(app)
def export(
    folder: Path = typer.Argument(..., help="folder for the Parquet files (created if missing)"),
    db: Path | None = DB_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Every table as Parquet (zstd), e.g. for a BI tool or pandas; calls, utterances, results and
    labels only for calls in the date range."""
    from salescalls.db import parquet

    dates(since=since, until=until)
    if folder.exists() and not folder.is_dir():
        raise UsageError(_("{folder} is a file: give a folder for the Parquet files", folder=folder))
    written = read(db, lambda con: parquet.export_parquet(con, folder, since, until))
    for table, rows in written.items():
        typer.echo(f"{folder / (table + '.parquet')}: {rows} rows")
