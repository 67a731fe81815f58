"""The team's KPIs against their targets and the 1-4 rating per rep (4 exceeded, 3 met, 2 partly
met, 1 missed goals), overall or per period; the targets a team sets in a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from salescalls.db.sql import execute
from salescalls.errors import InputError
from salescalls.i18n import N_, _, named, percent
from salescalls.insights.rep_errors import (
    CALL_FACTS_SQL,
    fact_params,
)
from salescalls.insights.tables import format_table

MIN_RATED_CALLS = 3  # fewer calls in a period than this give no rating: one call decides too much


BALANCED_TALK = (0.35, 0.65)  # rep share of the talk time that counts as a balanced conversation


RATING_LABELS = {1: N_("missed goals"), 2: N_("partly met goals"), 3: N_("met goals"), 4: N_("exceeded goals")}
NOT_RATED = N_("too few calls")  # the label of a rep or period with fewer than MIN_RATED_CALLS calls
TRENDS = {"up": N_("up"), "down": N_("down"), "same": N_("same")}  # a rating against the period before
STATUSES = {"met": N_("met"), "missed": N_("missed"), "exceeded": N_("exceeded")}  # a KPI against its targets


# The error a missed KPI is trained on: a plan always covers what the rating says was missed.
KPI_ERRORS = {
    "stages_covered": "skipped_required_stage",
    "close_attempted": "no_close_attempt",
    "clean_language": "forbidden_phrase",
    "balanced_talk": "talks_too_much",
}


@dataclass(frozen=True)
class Kpi:
    name: str  # column name in the rating table
    meaning: str  # for people
    target: float  # at or above: goal met
    stretch: float  # at or above: goal exceeded


KPI_NAMES = {
    "conversion": N_("conversion"),
    "stages_covered": N_("stages covered"),
    "close_attempted": N_("close attempted"),
    "clean_language": N_("clean language"),
    "balanced_talk": N_("balanced talk"),
}


KPI_TARGETS = (
    Kpi(
        "conversion",
        N_("calls ending in one of their script's success outcomes, of calls with a known outcome"),
        0.25,
        0.40,
    ),
    Kpi("stages_covered", N_("calls with no required stage skipped"), 0.85, 0.95),
    Kpi("close_attempted", N_("calls that reached the offer and moved on to the close"), 0.80, 0.95),
    Kpi("clean_language", N_("calls without a forbidden phrase"), 0.95, 1.00),
    Kpi(
        "balanced_talk",
        N_("calls where the rep talks {low}-{high} of the time"),
        0.70,
        0.90,
    ),
)


def load_targets(path: str | Path) -> tuple[Kpi, ...]:
    """KPI targets from a YAML file `{kpi: {target: 0.3, stretch: 0.5}}`; KPIs it omits keep the defaults."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InputError(_("{path}: cannot read KPI targets: {error}", path=path, error=error)) from None
    known = {kpi.name: kpi for kpi in KPI_TARGETS}
    if not isinstance(data, dict) or set(data) - set(known):
        unknown = ", ".join(sorted(set(data) - set(known))) if isinstance(data, dict) else "not a mapping"
        raise InputError(
            _("{path}: unknown KPIs ({unknown}); known: {known}", path=path, unknown=unknown, known=", ".join(known))
        )
    result = []
    for name, kpi in known.items():
        given = data.get(name) or {}
        target, stretch = float(given.get("target", kpi.target)), float(given.get("stretch", kpi.stretch))
        if not 0 <= target <= stretch <= 1:
            raise InputError(
                _(
                    "{path}: {name} needs 0 <= target <= stretch <= 1, got {target} and {stretch}",
                    path=path,
                    name=name,
                    target=target,
                    stretch=stretch,
                )
            )
        result.append(replace(kpi, target=target, stretch=stretch))
    return tuple(result)


KPI_SQL = """
SELECT rep, period, count(*) AS calls,
       count(*) FILTER (WHERE success) AS conversion_k,
       count(*) FILTER (WHERE outcome <> 'unknown') AS conversion_n,
       count(*) FILTER (WHERE NOT skipped_required_stage) AS stages_covered_k,
       count(*) AS stages_covered_n,
       count(*) FILTER (WHERE offered AND NOT no_close_attempt) AS close_attempted_k,
       count(*) FILTER (WHERE offered) AS close_attempted_n,
       count(*) FILTER (WHERE NOT forbidden_phrase) AS clean_language_k,
       count(*) AS clean_language_n,
       count(*) FILTER (WHERE talk_ratio BETWEEN $balanced_low AND $balanced_high) AS balanced_talk_k,
       count(*) FILTER (WHERE talk_ratio IS NOT NULL) AS balanced_talk_n
FROM ({source}) GROUP BY ALL ORDER BY rep, period
"""


def kpi_counts(con: duckdb.DuckDBPyConnection, source: str, params: dict | None = None) -> pd.DataFrame:
    """KPI_SQL over the call facts in `source` (CALL_FACTS_SQL with `params`, or a table of them)."""
    low, high = BALANCED_TALK
    return execute(con, KPI_SQL.format(source=source), params, balanced_low=low, balanced_high=high).df()


def rating_of(missed: int, exceeded: int, judged: int) -> int | None:
    """The 1-4 rating from how many judged KPIs were missed and exceeded (module docstring)."""
    if judged == 0:
        return None
    if missed >= 3:
        return 1
    if missed >= 1:
        return 2
    return 4 if exceeded >= 3 else 3


def ratings(
    con: duckdb.DuckDBPyConnection,
    period: str | None = None,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    **filters,
) -> pd.DataFrame:
    """Per rep (and per period when given): each KPI's value and status, the 1-4 rating, and the
    trend against the rep's previous period (up, down, same)."""
    return rate(kpi_counts(con, CALL_FACTS_SQL, fact_params(period, **filters)), targets)


def team_kpis(
    con: duckdb.DuckDBPyConnection,
    period: str | None = None,
    targets: tuple[Kpi, ...] = KPI_TARGETS,
    **filters,
) -> pd.DataFrame:
    """The whole team's KPIs (every call counts once), per period when given, rated like a rep."""
    per_rep = kpi_counts(con, CALL_FACTS_SQL, fact_params(period, **filters))
    if per_rep.empty:
        return rate(per_rep, targets)
    team = per_rep.drop(columns="rep").groupby("period", dropna=False, sort=True).sum().reset_index()
    return rate(team.assign(rep="team"), targets)


def rate(frame: pd.DataFrame, targets: tuple[Kpi, ...] = KPI_TARGETS) -> pd.DataFrame:
    """KPI values, statuses, rating and trend from per-rep (and period) counts `<kpi>_k` of `<kpi>_n`,
    rows in period order within each rep."""
    frame = frame.copy()
    if frame.empty:
        return frame
    statuses = []
    for kpi in targets:
        k, n = frame[f"{kpi.name}_k"], frame[f"{kpi.name}_n"]
        value = (k / n.where(n > 0)).astype(float)
        frame[kpi.name] = value
        status = np.select(
            [value >= kpi.stretch, value >= kpi.target, value.notna()], ["exceeded", "met", "missed"], ""
        )
        frame[f"{kpi.name}_status"] = status
        statuses.append(status)
    table = np.array(statuses).T  # rows: reps (and periods), columns: KPIs
    frame["missed"] = (table == "missed").sum(axis=1)
    frame["exceeded"] = (table == "exceeded").sum(axis=1)
    frame["judged"] = (table != "").sum(axis=1)
    points = (table == "met").sum(axis=1) + 2 * frame["exceeded"]
    enough = frame["calls"] >= MIN_RATED_CALLS
    frame["points"] = np.where(enough & (frame["judged"] > 0), points / frame["judged"].clip(lower=1), np.nan)
    frame["rating"] = [
        rating_of(m, e, j) if ok else None
        for m, e, j, ok in zip(frame["missed"], frame["exceeded"], frame["judged"], enough, strict=True)
    ]
    frame["rating"] = frame["rating"].astype("Int64")
    frame["rating_label"] = frame["rating"].map(lambda r: rating_label(r))
    rating = frame["rating"].astype(float)
    previous = rating.groupby(frame["rep"]).shift()  # the rep's previous period (rows are in period order)
    frame["trend"] = np.select(
        [(previous.isna() | rating.isna()).to_numpy(), (rating > previous).to_numpy(), (rating < previous).to_numpy()],
        ["", "up", "down"],
        "same",
    )
    return frame


def rating_label(rating) -> str:
    """What a 1-4 rating means (or that there is none), in the UI language."""
    return _(RATING_LABELS[int(rating)]) if rating is not None and pd.notna(rating) else _(NOT_RATED)


def kpi_meaning(kpi: Kpi) -> str:
    """What a KPI counts, in the UI language."""
    return _(kpi.meaning, low=percent(BALANCED_TALK[0]), high=percent(BALANCED_TALK[1]))


def kpi_name(name: str) -> str:
    """A KPI's name for people: stages_covered -> 'stages covered', in the UI language."""
    return _(KPI_NAMES.get(name, name.replace("_", " ")))


def top_quartile(frame: pd.DataFrame) -> list[str]:
    """Rated reps whose KPI points are at or above the 75th percentile of the rated reps."""
    rated = frame[frame["points"].notna()]
    if rated.empty:
        return []
    threshold = float(np.percentile(rated["points"], 75))
    return sorted(rated.loc[rated["points"] >= threshold - 1e-9, "rep"])


def ratings_table(frame: pd.DataFrame, targets: tuple[Kpi, ...] = KPI_TARGETS) -> str:
    if frame.empty:
        return _("no scored calls yet")
    shown = frame.assign(
        **{
            kpi.name: [
                _("{value} of {n} {status}", value=percent(v), n=int(n), status=named(STATUSES, s)) if v == v else "-"
                for v, n, s in zip(frame[kpi.name], frame[f"{kpi.name}_n"], frame[f"{kpi.name}_status"], strict=True)
            ]
            for kpi in targets
        },
        rating=[
            f"{r} {label}" if pd.notna(r) else label
            for r, label in zip(frame["rating"], frame["rating_label"], strict=True)
        ],
        period=frame["period"].astype(object).map(lambda p: "" if p is None or p != p else f"{p:%Y-%m-%d}"),
        trend=frame["trend"].map(lambda t: named(TRENDS, t)),
    )
    columns = {"rep": _("rep")}
    if shown["period"].ne("").any():
        columns["period"] = _("period from")
    columns |= {"calls": _("calls"), **{kpi.name: kpi_name(kpi.name) for kpi in targets}, "rating": _("rating")}
    if shown["trend"].ne("").any():
        columns["trend"] = _("trend")
    return format_table(shown, columns)
