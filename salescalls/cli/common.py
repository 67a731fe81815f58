"""What every command shares: the command groups, the common options, the one error style (a typed
salescalls error ends the command with `error: <one line>`) and the read-only database access."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import typer

from salescalls import i18n
from salescalls.config import Settings
from salescalls.errors import SalescallsError, UsageError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The `salescalls` command line. Flows and notebooks call the same functions.",
)
models_app = typer.Typer(no_args_is_help=True, help="Find, link or download the speech models.")
script_app = typer.Typer(no_args_is_help=True, help="Check call-script files.")
labels_app = typer.Typer(no_args_is_help=True, help="Stage labels from people, for retraining.")
app.add_typer(models_app, name="models")
app.add_typer(script_app, name="script")
app.add_typer(labels_app, name="labels")


def command(group: typer.Typer, name: str | None = None) -> Callable:
    """Register a command of `group` behind the CLI's one error handler: a salescalls error ends it
    with `error: <one line>` and the error's exit code (2: called wrongly, 1: could not be done);
    any other exception is a bug, also told in one line; `--debug` (SALESCALLS_DEBUG=1) re-raises
    both, with their traceback."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)  # typer reads the options from the wrapped signature
        def guarded(*args, **kwargs):
            language, debug = _invocation()
            with i18n.use(language):  # what the command prints, its errors too, in the team's language
                try:
                    return function(*args, **kwargs)
                except (typer.Exit, typer.Abort, click.exceptions.ClickException):
                    raise  # typer's own ends and usage errors
                except SalescallsError as error:
                    if debug:
                        raise
                    typer.echo(i18n._("error: {reason}", reason=error), err=True)
                    raise typer.Exit(code=error.exit_code) from None
                except Exception as error:
                    if debug:
                        raise
                    where = f"{type(error).__module__}.{type(error).__name__}".removeprefix("builtins.")
                    bug = i18n._(
                        "unexpected {where}: {detail} (a bug in salescalls: rerun with --debug for the "
                        "traceback and report it)",
                        where=where,
                        detail=_first_line(error),
                    )
                    typer.echo(i18n._("error: {reason}", reason=bug), err=True)
                    raise typer.Exit(code=1) from None

        group.command(name)(guarded)
        return function

    return register


_DEBUG = {"option": False}  # `salescalls --debug`, set by the app's callback for this invocation


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="show an error's traceback (also: SALESCALLS_DEBUG=1)"),
) -> None:
    _DEBUG["option"] = debug


def _invocation() -> tuple[str, bool]:
    """The UI language and whether errors keep their traceback (--debug or SALESCALLS_DEBUG=1),
    from one read of the settings; a bad setting is reported by the command itself, in English."""
    try:
        settings = Settings.from_env()
    except SalescallsError:
        return "en", _DEBUG["option"]
    return settings.ui_language, _DEBUG["option"] or settings.debug


def debugging() -> bool:
    """--debug or SALESCALLS_DEBUG=1: errors keep their traceback."""
    return _invocation()[1]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "no message"


DB_OPTION = typer.Option(None, "--db", help="DuckDB file (default: SALESCALLS_DB or data/salescalls.duckdb)")


def read(db: Path | None, query):
    """query(connection) on a read-only connection to the database; a clear error when there is none
    or when it is older than this salescalls (readers never upgrade it)."""
    from salescalls.db import store

    with store.reader(Settings.from_env(database=db).database) as con:
        store.require_current_schema(con)
        return query(con)


def existing_database(db: Path | None) -> Path:
    """The database a command that writes to stored calls works on; it must exist already."""
    from salescalls.db import store

    return store.require_database(Settings.from_env(database=db).database)


SINCE_OPTION = typer.Option(None, help="calls on or after this day (YYYY-MM-DD)")

UNTIL_OPTION = typer.Option(None, help="calls on or before this day (YYYY-MM-DD; the day is included)")

PERIODS_HELP = "day, week, month or quarter"
# The call filters the read commands share (CallFilter's fields).
SCRIPT_ID_OPTION = typer.Option(None, help="only this script")
SCRIPT_VERSION_OPTION = typer.Option(None, help="only this script version")
SEGMENT_OPTION = typer.Option(None, help="client temperature: cold, warm or hot")
CAMPAIGN_OPTION = typer.Option(None, help="only this campaign")
REP_OPTION = typer.Option(None, help="only this rep's calls")


def dates(**values: str | None) -> None:
    """Dates must be ISO dates; a clear error names the option otherwise."""
    from datetime import date

    for name, value in values.items():
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise UsageError(
                    i18n._("--{name} must be a date like 2026-11-01, not '{value}'", name=name, value=value)
                ) from None


_FILTERED = {  # option -> (calls column, the error when no stored call has the name)
    "rep": ("rep", i18n.N_("no rep '{value}' among the stored calls; the reps there are: {listed}")),
    "segment": (
        "segment",
        i18n.N_("no client temperature '{value}' among the stored calls; the client temperatures there are: {listed}"),
    ),
    "campaign": (
        "campaign",
        i18n.N_("no campaign '{value}' among the stored calls; the campaigns there are: {listed}"),
    ),
    "script_id": ("script_id", i18n.N_("no script '{value}' among the stored calls; the scripts there are: {listed}")),
}


def matched(db: Path | None, since: str | None = None, until: str | None = None, **names: str | None) -> dict:
    """The command's filters as the calls store them: a rep, client temperature, campaign or
    script matched regardless of case ('ann' finds 'Ann'). A name no stored call has, a date that
    is not one or a range that ends before it starts is a usage error that lists what there is;
    filters that are each fine but match no call together end the command with a line saying so."""
    from salescalls.db.sql import CallFilter, execute

    dates(since=since, until=until)
    if since and until and since > until:
        raise UsageError(
            i18n._(
                "--since {since} is after --until {until}: no day is in that range (both ends are included)",
                since=since,
                until=until,
            )
        )
    wanted = {option: value for option, value in names.items() if value is not None}

    def lookup(con) -> tuple[dict, int, tuple]:
        found = {}
        for option, value in wanted.items():
            column, unknown = _FILTERED[option]
            stored = con.execute(f"SELECT DISTINCT {column} FROM calls WHERE {column} IS NOT NULL ORDER BY 1")
            known = [row[0] for row in stored.fetchall()]
            same = [name for name in known if str(name).casefold() == value.strip().casefold()]
            if not same:
                listed = ", ".join(map(str, known[:20])) + (" ..." if len(known) > 20 else "") or i18n._("none yet")
                raise UsageError(i18n._(unknown, value=value, listed=listed))
            found[option] = same[0]
        calls = CallFilter(since=since, until=until, **found)
        n = execute(con, f"SELECT count(*) FROM calls c WHERE {CallFilter.SQL}", calls=calls).fetchone()[0]
        span = con.execute("SELECT CAST(min(started_at) AS DATE), CAST(max(started_at) AS DATE) FROM calls").fetchone()
        return found, n, span

    if not wanted and not since and not until:
        return names
    found, n, (first, last) = read(db, lookup)
    if n == 0 and first is not None:
        chosen = {**found, "since": since, "until": until}
        given = " ".join(f"--{option.replace('_', '-')} {value}" for option, value in chosen.items() if value)
        typer.echo(
            i18n._(
                "no stored call matches {given}; the stored calls are from {first} to {last}",
                given=given,
                first=i18n.day(first),
                last=i18n.day(last),
            )
        )
        raise typer.Exit(code=0)
    return names | found


def check_period(period: str | None, auto: bool = False) -> None:
    """--period must be one of the periods (or `auto`, where the command has it)."""
    from salescalls.insights.analytics import PERIODS

    allowed = (*PERIODS, "auto") if auto else PERIODS
    if period is not None and period not in allowed:
        if auto:
            raise UsageError(
                i18n._("--period must be day, week, month, quarter or auto, not '{period}'", period=period)
            )
        raise UsageError(i18n._("--period must be day, week, month or quarter, not '{period}'", period=period))


@contextmanager
def about(path: Path) -> Iterator[None]:
    """A salescalls error raised inside names the file it is about (its type, so its exit code, kept)."""
    try:
        yield
    except SalescallsError as error:
        if str(path) not in str(error):
            error.args = (f"{path}: {error}",)
        raise


def writable(output: Path | None) -> None:
    """A usage error now, when an output file could not be written later."""
    if output is None:
        return
    folder = output.parent
    if output.is_dir():
        raise UsageError(i18n._("{output} is a folder: give a file name for the output", output=output))
    if not folder.is_dir():
        raise UsageError(
            i18n._(
                "no folder {folder} for the output {name}: create it or choose another path",
                folder=folder,
                name=output.name,
            )
        )
    if not os.access(folder, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise UsageError(i18n._("cannot write {output}: no permission; choose another path", output=output))


def write(text: str, output: Path | None, done: str) -> None:
    """To standard output, or to a file with a note on standard error."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(done, err=True)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def kpi_targets(path: Path | None):
    """The KPI targets: the file given, else SALESCALLS_TARGETS, else the built-in ones."""
    from salescalls.insights import scorecard

    path = Settings.from_env(targets=path).targets
    if path is None:
        return scorecard.KPI_TARGETS
    return scorecard.load_targets(path)


TARGETS_OPTION = typer.Option(
    None, help="KPI targets YAML {kpi: {target, stretch}} (default: SALESCALLS_TARGETS, else built in)"
)


def stored_calls_and_script(db: Path | None, script: Path | None):
    """Settings and the loaded script for a command working on stored calls; clear errors otherwise."""
    from salescalls.script.spec import load_script

    settings = Settings.from_env(database=existing_database(db), script=script)
    return settings, load_script(settings.script)
