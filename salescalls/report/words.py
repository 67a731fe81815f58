"""The product's own words on the pages, in the UI language: roles, periods, outcomes, client
temperatures, KPI names, trends, run statuses and the generic drop-off reasons, and days as the
locale writes them. The team's words (stage names, campaigns, its script's trackers and reasons,
what was said) are shown as the team wrote them."""

from __future__ import annotations

import functools
import re
from datetime import date

from salescalls.i18n import N_, day, named, percent
from salescalls.insights.analytics import outcome_name
from salescalls.insights.reasons import reason_name
from salescalls.insights.scorecard import TRENDS, Kpi, kpi_meaning, kpi_name

ROLES = {"rep": N_("rep"), "customer": N_("customer")}
PERIODS = {"day": N_("day"), "week": N_("week"), "month": N_("month"), "quarter": N_("quarter")}
RUN_STATUSES = {
    "running": N_("running"),
    "completed": N_("completed"),
    "failed": N_("failed"),
    "interrupted": N_("interrupted"),
}
SEGMENTS = {"cold": N_("cold"), "warm": N_("warm"), "hot": N_("hot")}  # client temperature


_DAY = re.compile(r"\d{4}-\d\d-\d\d")


def _named(table: dict[str, str]):
    return functools.partial(named, table)


def period_shown(label: str) -> str:
    """A period's label as the UI language writes a day (2026-11-23, 23.11.2026, 2026. 11. 23.);
    ISO weeks, months and quarters (2026-W48, 2026-11, 2026-Q4) read the same in every language."""
    return day(date.fromisoformat(label)) if _DAY.fullmatch(label) else label


def kpi_targets(kpis: tuple[Kpi, ...]) -> str:
    """'conversion 25%, stages covered 85%, ...'"""
    return ", ".join(f"{kpi_name(kpi.name)} {percent(kpi.target)}" for kpi in kpis)


NAMERS = {  # Jinja globals
    "role_name": _named(ROLES),
    "period_name": _named(PERIODS),
    "run_status": _named(RUN_STATUSES),
    "trend_name": _named(TRENDS),
    "reason_name": reason_name,
    "outcome_name": outcome_name,
    "segment_name": _named(SEGMENTS),
    "kpi_name": kpi_name,
    "kpi_meaning": kpi_meaning,
    "kpi_targets": kpi_targets,
    "period_shown": period_shown,
}
