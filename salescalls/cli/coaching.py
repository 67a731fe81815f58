"""Commands for the trainer: conversation metrics, a rep's error profile, ratings and training plans."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from salescalls.cli.common import (
    CAMPAIGN_OPTION,
    DB_OPTION,
    PERIODS_HELP,
    REP_OPTION,
    SEGMENT_OPTION,
    SINCE_OPTION,
    TARGETS_OPTION,
    UNTIL_OPTION,
    app,
    check_period,
    command,
    kpi_targets,
    matched,
    read,
)
from salescalls.errors import InputError, UsageError
from salescalls.i18n import _, percent


@command(app)
def metrics(
    db: Path | None = DB_OPTION,
    by: str = typer.Option("rep", help="rep (averages per rep) or call"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    rep: str | None = REP_OPTION,
) -> None:
    """Conversation metrics: talk ratio, longest monologue and customer story, interruptions, questions,
    words per minute, silence (read-only)."""
    from salescalls.insights import analytics, tables

    if by not in ("rep", "call"):
        raise UsageError(_("--by must be rep or call, not '{by}'", by=by))
    rep = matched(db, since, until, rep=rep)["rep"]
    metrics_of = analytics.rep_conversation_metrics if by == "rep" else analytics.conversation_metrics
    frame = read(db, lambda con: metrics_of(con, since=since, until=until, rep=rep))
    if frame.empty:
        typer.echo(_("no scored calls yet"))
        return
    columns = {"rep": _("rep"), "calls": _("calls")} if by == "rep" else {"file": _("call"), "rep": _("rep")}
    columns |= {
        "talk_ratio": _("rep talk"),
        "longest_monologue": _("longest monologue s"),
        "longest_customer_story": _("customer story s"),
        "rep_interruptions": _("rep interrupts"),
        "customer_interruptions": _("customer interrupts"),
        "rep_questions": _("questions"),
        "rep_words_per_minute": _("words/min"),
        "silence_share": _("silence"),
    }
    floats = {"talk_ratio": ".0%", "silence_share": ".0%", "longest_monologue": ".1f"}
    floats |= {"longest_customer_story": ".1f", "rep_words_per_minute": ".0f"}
    floats |= {k: ".1f" for k in ("rep_interruptions", "customer_interruptions", "rep_questions")}
    typer.echo(tables.format_table(frame, columns, floats))


@command(app)
def profile(
    rep: str = typer.Argument(..., help="the rep's name as in calls.csv"),
    db: Path | None = DB_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """A rep's error profile against the rest of the team; differences flagged only when significant."""
    from salescalls.insights import rep_errors, tables

    rep = matched(db, since, until, rep=rep)["rep"]
    frame = read(db, lambda con: rep_errors.error_profile(con, rep, since=since, until=until))
    if frame.empty:
        raise InputError(_("no scored calls of a rep named '{rep}'", rep=rep))

    def rate(prefix: str) -> list[str]:
        columns = zip(frame[f"{prefix}rate"], frame[f"{prefix}low"], frame[f"{prefix}high"], strict=True)
        return [f"{percent(r)} ({percent(lo)}-{percent(hi)})" if r == r else "-" for r, lo, hi in columns]

    flags = [_("WORSE") if f else "" for f in frame["flagged"]]
    frame = frame.assign(
        rep_rate=rate(""), team=rate("team_"), flag=flags, error=frame["error"].map(rep_errors.error_name)
    )
    calls, team_calls = int(frame["calls"].iloc[0]), int(frame["team_calls"].iloc[0])
    typer.echo(
        _(
            "{rep}: {calls} calls; team (everyone else): {team_calls} calls; rates with {level} intervals",
            rep=rep,
            calls=calls,
            team_calls=team_calls,
            level=percent(0.95),
        )
    )
    columns = {"error": _("error"), "rep_rate": rep, "team": _("team"), "p_value": _("p (Fisher)"), "flag": ""}
    typer.echo(tables.format_table(frame, columns, {"p_value": ".3f"}))


@command(app)
def rating(
    db: Path | None = DB_OPTION,
    period: str | None = typer.Option(None, help=f"a rating per {PERIODS_HELP}, with the trend"),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    campaign: str | None = CAMPAIGN_OPTION,
    segment: str | None = SEGMENT_OPTION,
    targets: Path | None = TARGETS_OPTION,
) -> None:
    """Each rep's five KPIs against their targets and the 1-4 rating (4 exceeded, 3 met, 2 partly met,
    1 missed goals); with --period, one row per period and the trend."""
    from salescalls.insights import scorecard

    check_period(period)
    named = matched(db, since, until, campaign=campaign, segment=segment)
    kpis = kpi_targets(targets)
    filters = {"since": since, "until": until, **named}
    frame = read(db, lambda con: scorecard.ratings(con, period, kpis, **filters))
    typer.echo(scorecard.ratings_table(frame, kpis))
    if not frame.empty:
        targets_line = "; ".join(
            f"{scorecard.kpi_name(k.name)} {percent(k.target)} / {percent(k.stretch)}" for k in kpis
        )
        typer.echo("\n" + _("targets (met / exceeded at or above): {targets}", targets=targets_line))


@command(app)
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

    rep = matched(db, since, until, rep=rep)["rep"]
    kpis = kpi_targets(targets)
    frame = read(
        db, lambda con: coaching.training_plan(con, rep, examples=examples, targets=kpis, since=since, until=until)
    )
    if frame.columns.empty:  # not even an empty plan: the rep has no calls
        raise InputError(_("no scored calls of a rep named '{rep}'", rep=rep))
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
