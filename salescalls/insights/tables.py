"""Plain-text tables and the small formatting helpers the CLI and the run summary print with."""

from __future__ import annotations

import pandas as pd

from salescalls.i18n import number, percent


def localised(value: float, spec: str) -> str:
    """`value` by a format spec ('.0%', '.1f', '.2g'), in the UI language's number format."""
    if spec.endswith("%"):
        return percent(float(value), int(spec[1:-1] or 0))
    return number(float(value), spec)


def format_table(frame: pd.DataFrame, columns: dict[str, str], floats: dict[str, str] | None = None) -> str:
    """A plain-text table for the terminal: `columns` maps frame columns to headers."""
    floats = floats or {}
    rows = [[header for header in columns.values()]]
    for _, record in frame.iterrows():
        row = []
        for column in columns:
            value = record[column]
            if column in floats and pd.notna(value):
                row.append(localised(value, floats[column]))
            else:
                row.append("" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths).rstrip())
    return "\n".join(lines)


def clock(seconds: float) -> str:
    """83.4 -> '1:23.4': a moment in a call."""
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def shorten(text: str, width: int) -> str:
    """The text, cut to `width` characters with an ellipsis when longer."""
    return text if len(text) <= width else text[: width - 1] + "…"
