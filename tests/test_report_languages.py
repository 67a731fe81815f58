"""The report and the CLI in the team's language (SALESCALLS_UI_LANGUAGE=ru|hu): every page's own
words translated in a real browser (what report.js writes too), dates and numbers in the locale's
format, no errors; the QA and trainer commands' output translated; and the catalogues themselves
complete, consistent and compiled."""

from __future__ import annotations

import importlib.util
import re
import string
import threading
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from salescalls import i18n
from salescalls.learning.evaluate import load_truth
from salescalls.nightly.inbox import read_metadata
from salescalls.report import site as report
from salescalls.script.spec import load_script
from tests.conftest import ROOT, write_truth_database
from tests.test_report_browser import browser, page, shoot  # noqa: F401 - fixtures and helpers shared

TEAMS = {  # language: (demo folder, the team's own script)
    "ru": (ROOT / "data" / "demo-ru", ROOT / "data" / "scripts" / "demo-ru.yaml"),
    "hu": (ROOT / "data" / "demo-hu", ROOT / "data" / "scripts" / "demo-hu.yaml"),
}
DATES = {  # a call's date and time as the locale writes them
    "ru": r"\d\d\.\d\d\.\d{4} \d\d:\d\d",
    "hu": r"\d{4}\. \d\d\. \d\d\. \d\d:\d\d",
}
PERCENT = {"ru": "\u00a0%", "hu": "%"}  # CLDR: a no-break space before the sign in Russian


def _tool():
    """scripts/i18n.py, the catalogue tool `make i18n` runs."""
    spec = importlib.util.spec_from_file_location("i18n_tool", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extracted() -> list:
    """Every translatable sentence in the code and templates (what `make i18n` extracts)."""
    return [message.id for message in _tool().template() if message.id]


def catalogue(language: str):
    path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "salescalls.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", sorted(TEAMS))
def test_the_catalogue_translates_every_sentence_with_the_same_fields(language):
    messages = catalogue(language)
    wanted = extracted()
    assert len(wanted) > 200  # the extraction itself found the report's and the plans' sentences
    for message in wanted:
        entry = messages.get(message if isinstance(message, str) else message[0])
        assert entry is not None, f"{language}: not in the catalogue (run make i18n): {message!r}"
        assert not entry.fuzzy, f"{language}: fuzzy: {message!r}"
        ids = (message,) if isinstance(message, str) else message
        strings = (entry.string,) if isinstance(entry.string, str) else entry.string
        assert all(strings), f"{language}: untranslated: {message!r}"
        for text in strings:  # a translation may drop {n} in a plural form, never invent a field
            assert fields(text) <= set().union(*(fields(i) for i in ids)), (language, message, text)
        if isinstance(message, str):
            assert fields(strings[0]) == fields(message), (language, message, strings[0])


def test_the_catalogues_are_up_to_date_and_compiled():
    assert _tool().main(["--check"]) == 0, "run make i18n"  # it names what is stale or untranslated


def test_russian_plurals_and_locale_numbers():
    with i18n.use("ru"):
        assert [i18n.ngettext("{n} call", "{n} calls", n) for n in (1, 3, 5, 21)] == [
            "1 звонок",
            "3 звонка",
            "5 звонков",
            "21 звонок",
        ]
        assert i18n.percent(0.25) == "25\u00a0%" and i18n.number(1234.5, ".1f") == "1\u00a0234,5"
    with i18n.use("hu"):
        assert i18n.ngettext("{n} call", "{n} calls", 5) == "5 hívás" and i18n.number(0.5, ".1f") == "0,5"
    assert i18n.percent(0.25) == "25%" and i18n._("Training plan") == "Training plan"  # English outside


def test_an_unknown_ui_language_is_refused_in_one_line(monkeypatch):
    from salescalls.config import Settings, SettingsError

    monkeypatch.setenv("SALESCALLS_UI_LANGUAGE", "de")
    with pytest.raises(SettingsError, match="SALESCALLS_UI_LANGUAGE='de': expected one of en, ru, hu"):
        Settings.from_env()


def _truth_database(folder: Path, script_path: Path, path: Path) -> Path:
    csv = read_metadata(folder / "calls.csv").rows
    truths = [load_truth(f) for f in sorted(folder.glob("*.json"))]
    truths = [{**truth, "crm": csv[truth["file"]]} for truth in truths]
    return write_truth_database(path, load_script(script_path), truths, folder)


@pytest.fixture(scope="module", params=sorted(TEAMS))
def team_site(request, tmp_path_factory):
    language = request.param
    folder, script_path = TEAMS[language]
    work = tmp_path_factory.mktemp(f"report-{language}")
    database = _truth_database(folder, script_path, work / "truth.duckdb")
    options = report.ReportOptions(script=load_script(script_path), language=language)
    site = report.build(database, work / "site", options)
    httpd = report.server(site.folder, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield language, site, f"http://127.0.0.1:{httpd.server_address[1]}/", load_script(script_path)
    httpd.shutdown()


def english_ui_words() -> set[str]:
    """The words of the report's English sentences that a translated page must not show."""
    words = set()
    for message in extracted():
        for text in (message,) if isinstance(message, str) else message:
            text = re.sub(r"<[^>]+>|\{\w+\}|%\{[^}]+\}", " ", text)
            words |= {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}
    return words - {"salescalls", "fisher", "holm", "seconds"}


def data_words(site, script) -> set[str]:
    """Latin words the team's own data brings onto the pages (files, campaigns, ids, trackers, what was said)."""
    text = " ".join(p.read_text(encoding="utf-8") for p in site.folder.rglob("*.html"))
    found = set(re.findall(r'data-campaign="([^"]*)"', text)) | set(re.findall(r"<code>([^<]*)</code>", text))
    found |= {script.id, *script.trackers}
    return {w.lower() for item in found for w in re.findall(r"[A-Za-z]{4,}", item)} | said_words(script)


def said_words(script) -> set[str]:
    """The Latin words of what was said in the team's calls (Hungarian 'most' is not English 'most')."""
    folder = TEAMS[script.languages[0]][0]
    said = " ".join(turn["text"] for truth in folder.glob("*.json") for turn in load_truth(truth)["turns"])
    return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", said)}


PAGES = ("index.html", "funnel.html", "reps.html", "trackers.html")


def test_every_page_speaks_the_team_language_with_its_dates_and_numbers(team_site, page):  # noqa: F811
    language, site, url, script = team_site
    forbidden = english_ui_words() - data_words(site, script)
    stage_page = next(p for p in site.pages if p.startswith("stages/"))
    rep_page = next(p for p in site.pages if p.startswith("reps/"))
    call_page = next(p for p in site.pages if p.startswith("calls/"))
    with i18n.use(language):
        heading = {"funnel.html": i18n._("Where calls stop"), "reps.html": i18n._("Reps")}
        got_this_far = i18n._("got this far")
    for path in (*PAGES, stage_page, rep_page, call_page):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == language
        visible = page.locator("body").inner_text() + " " + page.title()
        visible += " ".join(page.locator("[title]").evaluate_all("els => els.map(e => e.title)"))
        english = sorted({w.lower() for w in re.findall(r"[A-Za-z]{4,}", visible)} & forbidden)
        assert not english, f"{language} {path}: English left on the page: {english}"
        iso_days = re.findall(r"\b\d{4}-\d\d-\d\d\b", visible)
        assert not iso_days, f"{language} {path}: days not in the locale's format: {iso_days}"
        if path in heading:
            assert page.locator("h1").first.inner_text() == heading[path]
    assert not page.problems, page.problems

    page.goto(url + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    headers = page.locator("table.funnel-table th").all_inner_texts()
    assert headers[1] == got_this_far  # written by report.js from the page's strings
    drop_off = page.locator("table.funnel-table tbody tr td:nth-child(5)").all_inner_texts()
    assert any(cell.endswith(PERCENT[language]) and cell[0].isdigit() for cell in drop_off), drop_off
    if language == "ru":
        shoot(page, "report-funnel-ru")

    page.goto(url + call_page)
    terms, values = page.locator("dl.facts dt").all_inner_texts(), page.locator("dl.facts dd").all_inner_texts()
    facts = dict(zip(terms, values, strict=True))
    with i18n.use(language):
        date, talk = facts[i18n._("date")], facts[i18n._("rep talk")]
    assert re.fullmatch(DATES[language], date), date
    assert re.fullmatch(r"\d+" + PERCENT[language], talk), talk

    page.goto(url + rep_page)
    page.wait_for_load_state("networkidle")
    if language == "hu":
        shoot(page, "report-rep-hu")
    assert not page.problems, page.problems


@pytest.fixture(scope="module", params=sorted(TEAMS))
def team_database(request, tmp_path_factory):
    folder, script_path = TEAMS[request.param]
    path = _truth_database(folder, script_path, tmp_path_factory.mktemp(f"cli-{request.param}") / "truth.duckdb")
    return request.param, path, load_script(script_path)


def test_the_qa_and_trainer_commands_print_in_the_team_language(team_database, monkeypatch):
    from typer.testing import CliRunner

    from salescalls.cli import app

    language, database, script = team_database
    monkeypatch.setenv("SALESCALLS_UI_LANGUAGE", language)
    rep = next(iter(read_metadata(TEAMS[language][0] / "calls.csv").rows.values()))["rep"]
    forbidden = english_ui_words() - {w.lower() for w in re.findall(r"[A-Za-z]{4,}", script.id)}
    forbidden -= {"stages", "cold", "start", "meaning", "ground", "truth"} | said_words(script)  # model name, talk
    with i18n.use(language):
        expected = {
            "dropoff": [i18n._("got this far"), i18n._("drop-off")],
            "rating": [i18n._("rating"), i18n._("targets (met / exceeded at or above): {targets}", targets="")],
            "profile": [i18n._("error"), i18n._("p (Fisher)")],
            "plan": [  # a plan, or the one line of a rep with nothing to train
                (
                    i18n._("Training plan for {rep} (30 days)", rep=rep),
                    i18n._("{rep}: no error above the team's rate; nothing to train this month.", rep=rep),
                )
            ],
            "reasons": [i18n._("reason")],
            "metrics": [i18n._("rep talk")],
            "advice": [
                i18n._(
                    "Script {script} v{version}: what the rep said where calls went on, against where they dropped",
                    script=script.id,
                    version=1,
                )
            ],
            "trackers": [
                (
                    i18n._("calls mentioning"),
                    i18n._("no tracker mentioned (the script's `trackers:` lists what to look for)"),
                )
            ],
            "runs": [i18n._("no runs yet")],
            "reasons by period": [i18n._("period from {day}: {dropped}", day="\0", dropped="").split("\0")[0].strip()],
        }
    commands = {
        "dropoff": ["dropoff"],
        "rating": ["rating"],
        "profile": ["profile", rep],
        "plan": ["plan", rep],
        "reasons": ["reasons"],
        "metrics": ["metrics"],
        "advice": ["advice"],
        "trackers": ["trackers", "--script", str(TEAMS[language][1])],
        "runs": ["runs"],
        "reasons by period": ["reasons", "--period", "week"],
    }
    for name, arguments in commands.items():
        result = CliRunner().invoke(app, [*arguments, "--db", str(database)])
        assert result.exit_code == 0, (name, result.output)
        for text in expected[name]:
            choices = text if isinstance(text, tuple) else (text,)
            assert any(choice.strip() in result.output for choice in choices), (name, text, result.output)
        said = set()
        for line in result.output.splitlines():
            line = re.sub(r"`[^`]*`", "", line)  # what a user types (`trackers:`) stays as it is
            said |= {w.lower() for w in re.findall(r"[A-Za-z]{4,}", line)}
        people = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", result.output) if w[0].isupper()}  # names
        english = sorted(said & forbidden - people)
        assert not english, f"{language} {name}: English left in the output: {english}\n{result.output}"
