"""The offline HTML report: a static site written from the database after each nightly run.

    salescalls report --out data/report        # then open data/report/index.html

Pages: an overview (calls, quarantined files, outcome mix, the team's KPI trend), the script
funnel with filters by period, client segment and campaign, a page per stage listing the calls
that ended there (transcript coloured by stage, an audio player that jumps to the moment), a reps
table with the 1-4 rating, and a page per rep (error profile against the team, conversation
metrics, training plan with playable example moments).

The site needs no network: plotly.js comes from the installed plotly package, every page embeds
its own data (so pages work opened from disk, where browsers refuse to fetch files), and the
recordings it plays are transcoded to MP3 beside the pages. It reads the database on a read-only
connection and writes only the site, which it builds aside and swaps in whole, so a web server
never serves half a report.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from salescalls import i18n
from salescalls.db import store
from salescalls.errors import InputError
from salescalls.report.audio import publish_audio
from salescalls.report.collect import choose_period, collect
from salescalls.report.layout import MARKER, ReportOptions, Site
from salescalls.report.render import render
from salescalls.report.server import server

__all__ = ["ReportOptions", "Site", "build", "server"]


def _replace(folder: Path, built: Path) -> None:
    """Swap the freshly built site in for the old one (renames: a reader sees one or the other)."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    built.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def build(
    database: str | Path,
    folder: str | Path,
    options: ReportOptions = ReportOptions(),
    progress: Callable[[str], None] = lambda message: None,
) -> Site:
    """Write the report for `database` into `folder` (replacing an earlier report there)."""
    with i18n.use(options.language):
        return _build(database, Path(folder), options, progress)


def _build(database: str | Path, folder: Path, options: ReportOptions, progress: Callable[[str], None]) -> Site:
    started = time.perf_counter()
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MARKER).exists())):
        raise InputError(
            i18n._("{folder} exists and is not a salescalls report; choose an empty or new folder", folder=folder)
        )
    with store.reader(database) as con:
        store.require_current_schema(con)
        if options.period == "auto":
            options = replace(options, period=choose_period(con))
        progress(f"reading the database (periods: {options.period})")
        data = collect(con, options)
    built = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir(parents=True)
    site = Site(folder=folder)
    try:
        if options.audio:
            progress(f"publishing the recordings of {len(data['calls'])} calls")
            publish_audio(data["calls"], built, folder if folder.exists() else None, options, site, progress)
        progress("writing pages")
        render(data, built, options, site)
        _replace(folder, built)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    site.seconds = time.perf_counter() - started
    return site
