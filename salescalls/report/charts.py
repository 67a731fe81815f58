"""Chart definitions shared by the HTML report and the notebooks.

Each function takes the analytics' DataFrames and returns a Plotly figure as a plain dict
({"data": [...], "layout": {...}}): the report embeds it as JSON for the bundled plotly.js, and a
notebook shows it with `figure(spec)`. Plain dicts keep building hundreds of filtered funnels cheap.
"""

from __future__ import annotations

import math

import pandas as pd

from salescalls.i18n import _, percent
from salescalls.insights.analytics import outcome_name
from salescalls.insights.rep_errors import error_name
from salescalls.insights.scorecard import kpi_name
from salescalls.report.words import period_shown

# Stage colours by script position (colour-blind-safe Okabe-Ito order, then greys); the report's
# transcripts use the same colours as the charts.
STAGE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#8C8C8C", "#B8A000", "#5C5C5C")
REACHED = "#9DB7D5"
ENDED = "#4C6A92"
WEAK = "#C0392B"
TEAM = "#A0A0A0"
OUTCOME_COLOURS = {
    "sale": "#2E8B57",
    "meeting": "#4C9BE8",
    "callback": "#E0A030",
    "refusal": "#C0392B",
    "unknown": "#B0B0B0",
}
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 13}


def stage_colour(position: int) -> str:
    return STAGE_COLOURS[position % len(STAGE_COLOURS)]


def _number(value) -> float | None:
    """JSON-safe: NaN and missing become None (a gap in the chart)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return float(value)


def _error_bars(value: list, low: list, high: list, thickness: float = 1.2) -> dict:
    """Plotly asymmetric error bars, in percent, from a share and its interval (None: no bar)."""

    def gap(a, b):
        return None if a is None or b is None else 100 * (a - b)

    return {
        "type": "data",
        "symmetric": False,
        "array": [gap(h, v) for v, h in zip(value, high, strict=True)],
        "arrayminus": [gap(v, lo) for v, lo in zip(value, low, strict=True)],
        "color": "#555555",
        "thickness": thickness,
    }


def _layout(**extra) -> dict:
    return {
        "font": FONT,
        "margin": {"l": 56, "r": 56, "t": 24, "b": 48},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "y": -0.18},
        "height": 340,
        **extra,
    }


def funnel(stages: pd.DataFrame, weakest: set[str] = frozenset()) -> dict:
    """One script version's funnel (rows of funnel.dropoff in script order): calls that got at
    least this far as bars that only shrink down the script, calls that dropped at each stage
    inside them, and the drop-off share with its 95 % interval as points; the weakest stages in red."""
    names = stages["stage"].tolist()
    share = [_number(v) for v in stages["drop_share"]]
    low = [_number(v) for v in stages["drop_low"]]
    high = [_number(v) for v in stages["drop_high"]]
    weak = [name in weakest for name in names]
    return {
        "data": [
            {
                "type": "bar",
                "name": _("got this far"),
                "x": names,
                "y": stages["got_here"].astype(int).tolist(),
                "marker": {"color": REACHED},
                "hovertemplate": "%{x}: " + _("%{y} calls got this far") + "<extra></extra>",
            },
            {
                "type": "bar",
                "name": _("dropped here"),
                "x": names,
                "y": stages["dropped"].astype(int).tolist(),
                "marker": {"color": [WEAK if w else ENDED for w in weak]},
                "hovertemplate": "%{x}: " + _("%{y} calls dropped here") + "<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": _("drop-off share, {level} interval", level=percent(0.95)),
                "x": names,
                "y": [None if s is None else 100 * s for s in share],
                "yaxis": "y2",
                "marker": {"color": [WEAK if w else "#222222" for w in weak], "size": 9, "symbol": "diamond"},
                "error_y": _error_bars(share, low, high),
                "hovertemplate": "%{x}: "
                + _("{share} of the calls that got this far dropped here", share="%{y:.0f}%")
                + "<extra></extra>",
            },
        ],
        "layout": _layout(
            barmode="overlay",
            yaxis={"title": {"text": _("calls")}, "rangemode": "tozero", "gridcolor": "#E5E5E5"},
            yaxis2={
                "title": {"text": _("drop-off (%)")},
                "overlaying": "y",
                "side": "right",
                "range": [0, 105],
                "tickvals": [0, 25, 50, 75, 100],
                "ticksuffix": "%",
                "showgrid": False,
            },
        ),
    }


def outcome_mix(frame: pd.DataFrame) -> dict:
    """Calls per period (column `period`, a label) and outcome (`outcome`, `calls`) as stacked bars."""
    periods = sorted(frame["period"].unique().tolist())
    data = []
    for outcome in sorted(frame["outcome"].unique(), key=lambda o: (o not in OUTCOME_COLOURS, o)):
        counts = frame[frame["outcome"] == outcome].set_index("period")["calls"]
        data.append(
            {
                "type": "bar",
                "name": outcome_name(outcome),
                "x": [period_shown(p) for p in periods],
                "y": [int(counts.get(p, 0)) for p in periods],
                "marker": {"color": OUTCOME_COLOURS.get(outcome, "#7F7F7F")},
                "hovertemplate": f"{outcome_name(outcome)}: " + _("%{y} calls") + "<extra>%{x}</extra>",
            }
        )
    return {
        "data": data,
        "layout": _layout(
            barmode="stack",
            xaxis={"type": "category"},
            yaxis={"title": {"text": _("calls")}, "gridcolor": "#E5E5E5"},
        ),
    }


def kpi_trend(frame: pd.DataFrame, kpis: list[str]) -> dict:
    """The team's KPI values per period (column `period`, a label; one column per KPI, 0..1) as lines."""
    periods = frame["period"].tolist()
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": kpi_name(kpi),
            "x": [period_shown(p) for p in periods],
            "y": [None if _number(v) is None else 100 * float(v) for v in frame[kpi]],
            "line": {"color": STAGE_COLOURS[i % len(STAGE_COLOURS)]},
            "hovertemplate": kpi_name(kpi) + ": %{y:.0f}%<extra>%{x}</extra>",
        }
        for i, kpi in enumerate(kpis)
    ]
    return {
        "data": data,
        "layout": _layout(
            xaxis={"type": "category"},
            yaxis={"title": {"text": _("{share} of calls", share="%")}, "range": [0, 105], "gridcolor": "#E5E5E5"},
        ),
    }


def error_profile(profile: pd.DataFrame, rep: str) -> dict:
    """A rep's error rates against the rest of the team (profile.error_profile), 95 % intervals;
    errors where the rep is significantly worse in red."""
    errors = [error_name(e) for e in profile["error"]]

    def bars(prefix: str, name: str, colour) -> dict:
        rate = [_number(v) for v in profile[f"{prefix}rate"]]
        low = [_number(v) for v in profile[f"{prefix}low"]]
        high = [_number(v) for v in profile[f"{prefix}high"]]
        return {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": errors,
            "x": [None if r is None else 100 * r for r in rate],
            "marker": {"color": colour},
            "error_x": _error_bars(rate, low, high, thickness=1),
            "hovertemplate": f"{name}: " + _("{share} of calls", share="%{x:.0f}%") + "<extra>%{y}</extra>",
        }

    return {
        "data": [
            bars("team_", _("rest of the team"), TEAM),
            bars("", rep, [WEAK if flagged else ENDED for flagged in profile["flagged"]]),
        ],
        "layout": _layout(
            barmode="group",
            height=80 + 44 * len(errors),
            margin={"l": 190, "r": 24, "t": 16, "b": 48},
            xaxis={
                "title": {"text": _("{share} of calls with the error", share="%")},
                "range": [0, 105],
                "gridcolor": "#E5E5E5",
            },
            yaxis={"autorange": "reversed"},
        ),
    }


def figure(spec: dict):
    """A plotly Figure of a chart spec, for notebooks."""
    import plotly.graph_objects as go

    return go.Figure(spec)
