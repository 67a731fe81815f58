"""Commands for the QA specialist: the script funnel, weak stages, what to change, why customers
leave, trackers and script versions compared."""

from __future__ import annotations

from pathlib import Path

import typer

from salescalls.cli.common import (
    CAMPAIGN_OPTION,
    DB_OPTION,
    PERIODS_HELP,
    REP_OPTION,
    SCRIPT_ID_OPTION,
    SCRIPT_VERSION_OPTION,
    SEGMENT_OPTION,
    SINCE_OPTION,
    UNTIL_OPTION,
    app,
    check_period,
    command,
    matched,
    read,
)
from salescalls.config import Settings
from salescalls.errors import InputError, UsageError
from salescalls.i18n import _, day, ngettext


@command(app)
def dropoff(
    db: Path | None = DB_OPTION,
    script_id: str | None = SCRIPT_ID_OPTION,
    script_version: int | None = SCRIPT_VERSION_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    segment: str | None = SEGMENT_OPTION,
    campaign: str | None = CAMPAIGN_OPTION,
    rep: str | None = REP_OPTION,
    period: str | None = typer.Option(None, help=f"one table per {PERIODS_HELP}"),
    min_calls: int | None = typer.Option(None, min=1, help="stages fewer calls got to are not judged (default 5)"),
) -> None:
    """The funnel per script stage: calls that got this far, in which it occurred, that dropped or
    completed here, the drop-off share with its 95 % interval and the outcomes; then the stages
    whose drop-off is highest against the other stages', with Fisher's test (read-only)."""
    from salescalls.insights import funnel

    check_period(period)
    named = matched(db, since, until, script_id=script_id, segment=segment, campaign=campaign, rep=rep)
    script_id = named.pop("script_id")
    filters = {"script_version": script_version, "since": since, "until": until, "period": period, **named}
    frame = read(db, lambda con: funnel.dropoff(con, script_id, **filters))
    typer.echo(funnel.dropoff_table(frame))
    minimum = funnel.MIN_CALLS if min_calls is None else min_calls
    if not frame.empty:
        blocks = frame.assign(period=frame["period"].astype(object).fillna(""))
        for _block, group in blocks.groupby(["script_id", "script_version", "period"], sort=True):
            typer.echo("")
            ranked = funnel.weakest_stages(group, minimum)
            for line in funnel.weak_stage_lines(ranked, int(group["calls"].iloc[0]), minimum):
                typer.echo(line)


@command(app)
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
    from salescalls.insights import funnel

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
        chosen_id, version, _calls = found
        stages = list(stage or [])
        if not stages:
            frame = funnel.dropoff(con, chosen_id, script_version=version)
            stages = funnel.highlighted(funnel.weakest_stages(frame))["stage"].tolist()
        known = [
            row[0]
            for row in con.execute(
                "SELECT stage FROM script_stages WHERE script_id = ? AND script_version = ? ORDER BY position",
                [chosen_id, version],
            ).fetchall()
        ]
        unknown = [name for name in stages if name not in known]
        if unknown:
            raise UsageError(
                _(
                    "no stage {stages} in {script} v{version}; its stages: {known}",
                    stages=", ".join(unknown),
                    script=chosen_id,
                    version=version,
                    known=", ".join(known),
                )
            )
        lines = [
            _(
                "Script {script} v{version}: what the rep said where calls went on, against where they dropped",
                script=chosen_id,
                version=version,
            )
        ]
        for name in stages:
            moves = script_advice.stage_moves(con, chosen_id, version, name)
            lines += ["", *script_advice.moves_text(moves, name, top)]
        return lines

    script_id = matched(db, script_id=script_id)["script_id"]
    lines = read(db, answer)
    typer.echo(_("no scored calls yet") if lines is None else "\n".join(lines))


@command(app)
def reasons(
    db: Path | None = DB_OPTION,
    script_id: str | None = SCRIPT_ID_OPTION,
    script_version: int | None = SCRIPT_VERSION_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    segment: str | None = SEGMENT_OPTION,
    campaign: str | None = CAMPAIGN_OPTION,
    rep: str | None = REP_OPTION,
    period: str | None = typer.Option(None, help=f"one table per {PERIODS_HELP}"),
    script: Path | None = typer.Option(None, help="a call script whose `reasons:` to use (default: the generic ones)"),
) -> None:
    """Why customers leave: the calls that dropped, per stage and reason (from the customer's last
    words), with the reps who had them and what the customer said (read-only)."""
    from salescalls.insights import reasons as why
    from salescalls.script.spec import load_script

    check_period(period)
    named = matched(db, since, until, script_id=script_id, segment=segment, campaign=campaign, rep=rep)
    script_id = named.pop("script_id")
    own = None
    if script is not None:
        own = load_script(script).reasons or None
        if own is None:
            raise InputError(
                _(
                    "{script} names no reasons: add a `reasons:` section, or leave out --script for the generic ones",
                    script=script,
                )
            )
        own = why.with_goodbyes(own)
    filters = {"script_version": script_version, "since": since, "until": until, "period": period, "reasons": own}
    filters |= named
    frame = read(db, lambda con: why.why_customers_leave(con, script_id, **filters))
    if frame.empty or not period:
        typer.echo(why.reasons_table(frame))
        return
    for start, group in frame.groupby("period", sort=True):
        dropped = ngettext("{n} dropped call", "{n} dropped calls", len(group))
        typer.echo(_("period from {day}: {dropped}", day=day(start), dropped=dropped))
        typer.echo(why.reasons_table(group) + "\n")


@command(app)
def trackers(
    db: Path | None = DB_OPTION,
    script: Path | None = typer.Option(None, help="call script YAML with `trackers:` (default: SALESCALLS_SCRIPT)"),
    by: str = typer.Option("rep", help="rep or period"),
    period: str | None = typer.Option(None, help=f"with --by period: {PERIODS_HELP} (default week)"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    rep: str | None = REP_OPTION,
) -> None:
    """The script's trackers (competitors, discounts, ...): how often each comes up per rep or
    period, and in which stages (read-only)."""
    from salescalls.insights import trackers as tracked
    from salescalls.script.spec import load_script

    if by not in ("rep", "period"):
        raise UsageError(_("--by must be rep or period, not '{by}'", by=by))
    rep = matched(db, since, until, rep=rep)["rep"]
    period = period or ("week" if by == "period" else None)
    check_period(period)
    call_script = load_script(Settings.from_env(script=script).script)
    if not call_script.trackers:
        raise InputError(
            _(
                "{script} lists no trackers: add a `trackers:` section to the script (see data/scripts/demo.yaml)",
                script=call_script.id,
            )
        )
    hits = read(db, lambda con: tracked.find(con, call_script, period, since=since, until=until, rep=rep))
    typer.echo(tracked.summary_table(tracked.summary(hits, by), by))


@command(app, "compare-versions")
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
    from salescalls.insights import versions

    script_id = matched(db, since, until, script_id=script_id)["script_id"]
    frame = read(
        db, lambda con: versions.compare_versions(con, script_id, version, since=since, until=until, days=days)
    )
    typer.echo(versions.versions_table(frame))
