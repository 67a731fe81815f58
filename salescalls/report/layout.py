"""What a report is: its options, what a build wrote, and the file each call's, rep's and stage's
page lives in (stable names, safe for any call id or rep name)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from salescalls.insights.scorecard import KPI_TARGETS, Kpi
from salescalls.script.spec import Script

MARKER = ".salescalls-report"  # the site's root holds this file; only such a folder is ever replaced


@dataclass(frozen=True)
class ReportOptions:
    period: str = "auto"  # day, week, month or quarter: the funnel's period filter and the trends; auto: by data span
    calls_per_stage: int = 20  # latest calls listed on each stage page
    examples: int = 2  # the rep's own example moments per training-plan gap
    audio: bool = True  # publish the recordings the pages play (transcoded to MP3)
    audio_dirs: tuple[Path, ...] = ()  # where to look for recordings moved since they were processed
    targets: tuple[Kpi, ...] = KPI_TARGETS  # the team's KPI targets
    title: str = "salescalls"  # shown in every page's header
    script: Script | None = None  # the team's script: its trackers page and own reasons (else generic reasons)
    phrases: int = 5  # what-to-change phrases shown per stage page
    language: str = "en"  # the pages' language (salescalls.i18n.LANGUAGES); dates and numbers follow it


@dataclass
class Site:
    """What a build wrote, for the CLI, the flow's artifact and tests."""

    folder: Path  # the site's root
    pages: list[str] = field(default_factory=list)  # paths relative to the root
    audio: int = 0  # recordings published
    audio_missing: list[str] = field(default_factory=list)  # recordings not found: file names
    seconds: float = 0.0  # build time

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def page_id(key: str) -> str:
    """A short, file-name-safe, stable name for a call or other key (call ids may hold ':' or '/')."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def rep_page(rep: str) -> str:
    """reps/<readable-part>-<hash>.html: readable where the name is Latin, unique always."""
    ascii_name = unicodedata.normalize("NFKD", rep).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40]
    return f"reps/{slug + '-' if slug else ''}{page_id(rep)[:8]}.html"


def stage_page(script_id: str, version: int, stage: str) -> str:
    return f"stages/{page_id(f'{script_id}@{version}/{stage}')}.html"
