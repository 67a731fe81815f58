"""Did a script edit help? Drop-off per stage of a script version against the version before it."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salescalls.errors import UsageError
from salescalls.i18n import _, number, percent
from salescalls.insights.funnel import dropoff
from salescalls.insights.stats import fisher_p
from salescalls.insights.tables import format_table


def compare_versions(
    con: duckdb.DuckDBPyConnection,
    script_id: str,
    version: int | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    days: int | None = None,
) -> pd.DataFrame:
    """Did the team's edit help? Per stage, the drop-off of script `version` (default: the latest
    with calls) against the version before it that has calls: calls that got there and dropped
    there in each, the difference in points and Fisher's exact test of the two shares.

    With `days`, each version is judged on comparable periods: its calls of the `days` days
    before version N's first call (N-1) and of the first `days` days from it (N). Stages are
    matched by name; a stage one version lacks shows NaN there.
    """
    versions = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT script_version FROM calls WHERE script_id = ? ORDER BY 1", [script_id]
        ).fetchall()
    ]
    if version is None and versions:
        version = versions[-1]
    if version not in versions:
        raise UsageError(
            _(
                "no scored calls of {script} v{version}; versions with calls: {versions}",
                script=script_id,
                version=version,
                versions=", ".join(map(str, versions)) or _("none"),
            )
        )
    earlier = [v for v in versions if v < version]
    if not earlier:
        raise UsageError(
            _(
                "{script} v{version} has no earlier version with calls to compare with",
                script=script_id,
                version=version,
            )
        )
    previous = earlier[-1]
    windows = {previous: (since, until), version: (since, until)}
    if days is not None:
        (first,) = con.execute(
            "SELECT min(started_at) FROM calls WHERE script_id = ? AND script_version = ?", [script_id, version]
        ).fetchone()
        start = pd.Timestamp(first).normalize()
        windows = {
            previous: (str((start - pd.Timedelta(days=days)).date()), str((start - pd.Timedelta(days=1)).date())),
            version: (str(start.date()), str((start + pd.Timedelta(days=days - 1)).date())),  # both ends included
        }
    frames = {}
    for v, (low, high) in windows.items():
        frame = dropoff(con, script_id, script_version=v, since=low, until=high)
        frames[v] = frame.set_index("stage")[["position", "got_here", "dropped", "drop_share", "calls"]]
    old, new = frames[previous], frames[version]
    rows = []
    for stage in list(new.index) + [s for s in old.index if s not in new.index]:
        row = {"stage": stage, "previous": previous, "version": version}
        for label, frame in (("previous", old), ("current", new)):
            present = stage in frame.index
            row[f"{label}_calls"] = int(frame["calls"].iloc[0]) if len(frame) else 0
            row[f"{label}_got_here"] = int(frame.loc[stage, "got_here"]) if present else np.nan
            row[f"{label}_dropped"] = int(frame.loc[stage, "dropped"]) if present else np.nan
            row[f"{label}_share"] = frame.loc[stage, "drop_share"] if present else np.nan
        both = stage in old.index and stage in new.index and row["previous_got_here"] and row["current_got_here"]
        row["change"] = row["current_share"] - row["previous_share"] if both else np.nan
        row["p_value"] = (
            fisher_p(row["current_dropped"], row["current_got_here"], row["previous_dropped"], row["previous_got_here"])
            if both
            else np.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)


def versions_table(frame: pd.DataFrame) -> str:
    """compare_versions as text: one line per stage, shares with their n, change and p."""
    if frame.empty:
        return _("nothing to compare")
    previous, version = int(frame["previous"].iloc[0]), int(frame["version"].iloc[0])

    def share(row, label):
        if row[f"{label}_got_here"] != row[f"{label}_got_here"]:
            return "-"
        return _("{share} of {calls}", share=percent(row[f"{label}_share"]), calls=int(row[f"{label}_got_here"]))

    shown = frame.assign(
        before=[share(row, "previous") for _, row in frame.iterrows()],
        after=[share(row, "current") for _, row in frame.iterrows()],
        points=[number(c * 100, "+.0f") if c == c else "" for c in frame["change"]],
        p=[number(p, ".2g") if p == p else "" for p in frame["p_value"]],
    )
    header = _(
        "drop-off per stage, v{previous} ({previous_calls} calls) against v{version} ({calls} calls); "
        "Fisher's exact test",
        previous=previous,
        previous_calls=int(frame["previous_calls"].iloc[0]),
        version=version,
        calls=int(frame["current_calls"].iloc[0]),
    )
    table = format_table(
        shown,
        {
            "stage": _("stage"),
            "before": _("v{version} drop-off", version=previous),
            "after": _("v{version} drop-off", version=version),
            "points": _("change"),
            "p": "p",
        },
    )
    return header + "\n" + table
