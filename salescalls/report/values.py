"""JSON-safe values for the pages: what the collectors hand the templates and embed as data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd


def clean(value):
    """JSON-safe copies of collected data: NaN/NA to None, timestamps to ISO text, numpy to Python."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return clean(value.item())
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as clean dicts for the templates."""
    return [clean(row) for row in frame.to_dict("records")]


def script_json(value) -> str:
    """JSON for a <script type="application/json"> block: no NaN, and nothing that closes the tag."""
    text = json.dumps(clean(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
