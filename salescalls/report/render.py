"""Rendering the pages: the Jinja environment and its filters, the static assets, every page."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from markupsafe import Markup, escape

from salescalls import i18n
from salescalls.i18n import N_, _
from salescalls.insights import tables
from salescalls.report import words
from salescalls.report.layout import MARKER, ReportOptions, Site
from salescalls.report.values import script_json
from salescalls.speech import privacy

LEAD_IN = 1.0  # seconds of audio played before a moment, so the listener hears it start

_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in privacy.PLACEHOLDERS.values()))


def _marked(text: str) -> Markup:
    """Escaped text with redaction placeholders shown as marks."""
    return Markup(_PLACEHOLDER.sub(r'<mark class="redacted">\g<0></mark>', str(escape(text))))


def moment_end(call: dict, at: float) -> float:
    """Where a moment's utterance ends (plus a breath), so a clip plays the whole of it."""
    for turn in call["utterances"]:
        if abs(turn["start_s"] - at) < 0.01:
            return float(turn["end_s"]) + 0.5
    return at + 10.0


def _missing(value) -> bool:
    """No value to show: None, NaN, or a field the data does not have (a rep with no metrics yet)."""
    return value is None or isinstance(value, Undefined) or value != value


# What report.js writes itself, translated into the page (`ui-strings`); the script looks each
# English text up there, so the catalogue holds it like any other sentence.
JS_STRINGS = (
    N_("Script {script}: {calls} call"),
    N_("Script {script}: {calls} calls"),
    N_("Stages labelled by {models}."),
    N_("stage"),
    N_("got this far"),
    N_("occurred"),
    N_("dropped here"),
    N_("drop-off"),
    N_("{level} interval"),
    N_("completed here"),
    N_("dropped by customer"),
    N_("outcomes of calls ended here"),
    N_("calls that ended at this stage"),
    N_(" optional"),
    N_("No scored calls match these filters."),
    N_("{shown} of the {total} calls below match the funnel's filters ({filters}). "),
    N_("Show all"),
    N_("period"),
    N_("segment"),
    N_("campaign"),
    N_("rep"),
)
MOMENT_LABELS = (N_("your call"), N_("how a top rep does it"))  # the rep page's moment captions


def _text(text: str) -> Markup:
    """Plain text made safe for HTML, apostrophes left as they are (the pages read them as typed)."""
    return Markup(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;"))


def _page_gettext(message: str, **values) -> Markup:
    return _text(_(message, **values))


def _page_ngettext(singular: str, plural: str, n: int, **values) -> Markup:
    return _text(i18n.ngettext(singular, plural, n, **values))


def _markup(message: str, **values) -> Markup:
    """A translated sentence that holds markup of its own; the values are escaped."""
    return Markup(_(message)).format(**values) if values else Markup(_(message))


def _nmarkup(singular: str, plural: str, n: int, **values) -> Markup:
    return Markup(i18n.translations(i18n.language()).ngettext(singular, plural, n)).format(n=n, **values)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("salescalls.report", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = script_json
    env.filters["marked"] = _marked
    env.filters["clock"] = lambda v: "" if _missing(v) else tables.clock(float(v))
    env.filters["percent"] = lambda v: "–" if _missing(v) else i18n.percent(float(v))
    env.filters["number"] = lambda v, fmt=".1f": "–" if _missing(v) else i18n.number(float(v), fmt)
    env.filters["when"] = lambda v: "" if _missing(v) else i18n.when(pd.Timestamp(v))
    env.filters["day"] = lambda v: "" if _missing(v) else i18n.day(pd.Timestamp(v))
    env.globals.update(
        moment_end=moment_end,
        lead_in=LEAD_IN,
        _=_page_gettext,
        ngettext=_page_ngettext,
        _markup=_markup,
        nmarkup=_nmarkup,
        ui_language=i18n.language(),
        ui_strings={text: _(text) for text in JS_STRINGS} if i18n.language() != "en" else {},
        **words.NAMERS,
    )
    return env


def _assets(folder: Path) -> None:
    from importlib import resources

    import plotly

    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    for name in ("report.css", "report.js"):
        (assets / name).write_bytes(resources.files("salescalls.report").joinpath("assets", name).read_bytes())


def render(data: dict, folder: Path, options: ReportOptions, site: Site) -> None:
    """Write every page of the site into `folder`."""
    env = _environment()
    built = datetime.now()
    common = {
        "title": options.title,
        "built": built,
        "period": options.period,
        "calls": data["calls"],
        "audio_published": options.audio,
        "has_trackers": data.get("trackers") is not None,
        "has_script_reasons": options.script is not None and bool(options.script.reasons),
    }

    def write(path: str, template: str, **values) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(**common, root="../" * depth, here=path, **values)
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        site.pages.append(path)

    _assets(folder)
    write("index.html", "index.html", overview=data["overview"], kpis=data["kpis"])
    write("funnel.html", "funnel.html", funnel=data["funnel"])
    write("reps.html", "reps.html", reps=data["reps"], kpis=data["kpis"])
    for page in data["rep_pages"].values():
        write(page["page"], "rep.html", rep=page, kpis=data["kpis"])
    for stage in data["stages"]:
        write(stage["page"], "stage.html", stage=stage)
    if data["trackers"] is not None:
        write("trackers.html", "trackers.html", trackers=data["trackers"])
    for call in data["calls"].values():
        write(call["page"], "call.html", call=call)
    (folder / MARKER).write_text(f"salescalls report built {built.isoformat(timespec='seconds')}\n", encoding="utf-8")
