"""The HTML report in a real browser: Debian's Chromium, headless, driven by Playwright.

The report is built from the demo calls as their ground truth describes them (tests/conftest.py),
served on localhost, and checked against numbers worked out here from the ground-truth files:
the pages load without console errors, the funnel shows the demo's counts (also filtered), a rep
link opens the rep's page, and the audio players have a playable source. Screenshots are saved
in build/screenshots (SALESCALLS_SCREENSHOTS to change it).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from salescalls.report import site as report
from tests.conftest import ROOT

STAGES = ["greeting", "qualification", "needs", "offer", "objection", "close", "farewell"]
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium() -> str:
    """Debian's Chromium; CI must have it (.ci/run installs it), elsewhere the test is skipped."""
    path = os.environ.get("SALESCALLS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def site(truth_database, demo_script, tmp_path_factory) -> report.Site:
    options = report.ReportOptions(script=demo_script)
    return report.build(truth_database, tmp_path_factory.mktemp("report") / "site", options)


@pytest.fixture(scope="module")
def server(site):
    httpd = report.server(site.folder, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium(), args=BROWSER_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors, failed requests and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: _failed(page, r))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
    yield page
    context.close()


def _failed(page, request) -> None:
    # A media element cancels its own range request when it seeks: that is how seeking works.
    if not (request.resource_type == "media" and "ERR_ABORTED" in (request.failure or "")):
        page.problems.append(f"request failed: {request.url} ({request.failure})")


SHOTS = Path(os.environ.get("SALESCALLS_SCREENSHOTS", ROOT / "build" / "screenshots"))


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def expected_funnel(truths: list[dict]) -> dict[str, tuple[int, int, int]]:
    """(got this far, occurred, dropped here) per stage, from the ground-truth turns."""

    def furthest(truth):
        return max((STAGES.index(t["stage"]) for t in truth["turns"] if t["stage"] != STAGES[-1]), default=-1)

    def dropped(truth):
        return truth["end_stage"] != STAGES[-2] and truth["crm"]["crm_outcome"] not in ("sale", "meeting")

    def got(truth, stage):
        if stage == STAGES[-1]:  # the sign-off: through the whole script, then goodbye
            return furthest(truth) == len(STAGES) - 2 and any(t["stage"] == stage for t in truth["turns"])
        return furthest(truth) >= STAGES.index(stage)

    return {
        stage: (
            sum(got(truth, stage) for truth in truths),
            sum(any(t["stage"] == stage for t in truth["turns"]) for truth in truths),
            sum(truth["end_stage"] == stage and dropped(truth) for truth in truths),
        )
        for stage in STAGES
    }


def shown_funnel(page) -> dict[str, tuple[int, int, int]]:
    rows = page.locator("table.funnel-table tbody tr")
    return {
        rows.nth(i).get_attribute("data-stage"): tuple(
            int(rows.nth(i).locator(f"td.{column}").inner_text()) for column in ("got", "occurred", "dropped")
        )
        for i in range(rows.count())
    }


def test_overview_loads_with_the_demo_totals(page, server, demo_truths):
    page.goto(server + "index.html")
    page.wait_for_selector(".chart .main-svg")  # plotly drew the charts
    assert page.locator("#calls-stored").inner_text() == str(len(demo_truths))
    assert page.locator(".chart .main-svg").count() >= 2  # outcome mix and KPI trend
    shoot(page, "overview")
    assert page.problems == []


def test_funnel_shows_the_demo_numbers_and_filters(page, server, demo_truths):
    page.goto(server + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    page.wait_for_selector("#funnels .chart .main-svg")
    assert shown_funnel(page) == expected_funnel(demo_truths)
    highlighted = page.locator("table.funnel-table tr.weak")
    assert highlighted.count() == 1 and highlighted.get_attribute("data-stage") == "objection"  # as the CLI says
    assert "no stage's drop-off is significantly higher" in page.locator(".weakest").first.inner_text()
    shoot(page, "funnel")

    page.select_option("select[name=segment]", "cold")
    cold = [t for t in demo_truths if t["crm"]["segment"] == "cold"]
    assert shown_funnel(page) == expected_funnel(cold)
    page.select_option("select[name=segment]", "")
    campaign = demo_truths[0]["crm"]["campaign"]
    page.select_option("select[name=campaign]", campaign)
    assert shown_funnel(page) == expected_funnel([t for t in demo_truths if t["crm"]["campaign"] == campaign])
    page.select_option("select[name=rep]", "Boris Ivanov")  # clears the campaign: a rep's funnel is over all
    assert page.locator("select[name=campaign]").input_value() == ""
    assert shown_funnel(page) == expected_funnel([t for t in demo_truths if t["crm"]["rep"] == "Boris Ivanov"])
    assert page.problems == []


def test_a_stage_page_lists_its_calls_and_plays_the_moment(page, server, demo_truths):
    page.goto(server + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    page.locator("table.funnel-table tr[data-stage=objection] a").click()
    page.wait_for_selector("article.call")
    ended = [t for t in demo_truths if t["end_stage"] == "objection"]
    assert page.locator("article.call").count() == len(ended)
    headers = page.locator("article.call h2").all_inner_texts()
    assert sorted(t["crm"]["rep"] for t in ended) == sorted(h.split(" · ")[1].rsplit(" ", 1)[0] for h in headers)
    audio = page.locator("article.call audio.player").first
    duration = audio.evaluate(
        """a => new Promise((done, fail) => {
            if (a.readyState >= 1) return done(a.duration);
            a.addEventListener('loadedmetadata', () => done(a.duration));
            a.addEventListener('error', () => fail(new Error('audio error ' + (a.error && a.error.code))));
        })"""
    )
    call_lengths = sorted(t["duration"] for t in ended)
    assert any(abs(duration - length) < 1.0 for length in call_lengths), (duration, call_lengths)
    assert audio.evaluate("a => a.canPlayType('audio/mpeg')") in ("maybe", "probably")
    # the transcript marks where the call stopped, and the button jumps there
    assert page.locator("article.call").first.locator(".turn.moment").count() == 1
    button = page.locator("article.call").first.locator("button.moment-button")
    seek = float(button.get_attribute("data-seek"))
    button.click()
    page.wait_for_function(f"a => a.currentTime >= {seek}", arg=audio.element_handle(), timeout=5000)
    shoot(page, "stage-objection")
    assert page.problems == []


def test_a_stage_page_says_why_customers_left_and_plays_what_went_on(page, server, demo_truths):
    page.goto(server + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    page.locator("table.funnel-table tr[data-stage=objection] a").click()
    page.wait_for_selector("#why-left table.reasons")
    dropped = sum(expected_funnel(demo_truths)["objection"][2:])
    counts = page.locator("#why-left tbody td.num").all_inner_texts()
    assert sum(int(n) for n in counts) == dropped > 0
    assert "think_it_over" in page.locator("#why-left").inner_text()  # c09: "I need to think about it."
    move = page.locator("#what-to-change li.move").first
    assert "went on in" in move.inner_text()
    audio = move.locator("audio.player")
    start = float(audio.get_attribute("src").split("#t=")[1].split(",")[0])
    audio.evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_function(f"a => a.currentTime >= {start}", arg=audio.element_handle(), timeout=5000)
    shoot(page, "stage-objection-insights")
    assert page.problems == []


def test_trackers_page_shows_the_scripts_trackers_per_rep(page, server, demo_truths):
    page.goto(server + "index.html")
    page.get_by_role("link", name="Trackers").click()
    page.wait_for_selector("table#trackers-reps")
    reps = {t["crm"]["rep"] for t in demo_truths}
    shown = page.locator("table#trackers-reps tbody tr td:nth-child(2)").all_inner_texts()
    assert set(shown) == reps
    team = page.locator("table#trackers-team tbody tr td:nth-child(3)").all_inner_texts()
    assert team and all(int(n) == len(demo_truths) for n in team)
    link = page.locator("ul.mentions a").first
    link.click()
    page.wait_for_selector(".timeline")
    shoot(page, "trackers")
    assert page.problems == []


def test_a_stage_page_follows_the_funnels_filters(page, server, demo_truths):
    page.goto(server + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    page.select_option("select[name=rep]", "Boris Ivanov")
    page.locator("table.funnel-table tr[data-stage=objection] a").click()
    page.wait_for_selector("p.filtered:not([hidden])")  # the calls of other reps are hidden
    ended = [t for t in demo_truths if t["end_stage"] == "objection"]
    boris = [t for t in ended if t["crm"]["rep"] == "Boris Ivanov"]
    assert page.locator("article.call:visible").count() == len(boris) < len(ended)
    assert f"{len(boris)} of the {len(ended)} calls below match" in page.locator("p.filtered").inner_text()
    page.get_by_role("link", name="Show all").click()
    assert page.locator("article.call:visible").count() == len(ended)
    assert page.problems == []


def test_a_call_page_shows_who_spoke_when_by_stage_and_links_the_rep(page, server, demo_truths):
    page.goto(server + "funnel.html")
    page.wait_for_selector("table.funnel-table")
    page.locator("table.funnel-table tr[data-stage=objection] a").click()
    page.wait_for_selector("article.call")
    page.locator("article.call h2 a").first.click()
    page.wait_for_selector(".timeline")
    file = page.locator("h1").inner_text().removeprefix("Call ")
    truth = next(t for t in demo_truths if t["file"] == file)
    blocks = page.locator(".timeline .block")
    spoken = page.locator("ol.transcript li.turn:not(.backchannel)")
    assert blocks.count() == spoken.count() > 0  # one block per utterance, on its speaker's lane
    assert page.locator(".timeline .lane").count() == 2
    stages = set(page.locator(".timeline .block").evaluate_all("bs => bs.map(b => b.dataset.stage)"))
    assert stages <= {t["stage"] for t in truth["turns"]} | {"off_script"}
    assert len(set(blocks.evaluate_all("bs => bs.map(b => b.style.background)"))) >= 2  # coloured by stage
    block = blocks.nth(blocks.count() // 2)
    seek = float(block.get_attribute("data-seek"))
    block.click()
    audio = page.locator("audio.player").first
    page.wait_for_function(f"a => a.currentTime >= {seek}", arg=audio.element_handle(), timeout=5000)
    shoot(page, "call")
    page.locator("a.rep-link").click()
    page.wait_for_selector("h1")
    assert page.locator("h1").inner_text().startswith(truth["crm"]["rep"]) and "/reps/" in page.url
    assert page.problems == []


def test_reps_table_links_to_a_rep_page_with_a_plan(page, server, demo_truths):
    page.goto(server + "reps.html")
    reps = sorted({t["crm"]["rep"] for t in demo_truths})
    assert sorted(page.locator("table#reps tbody tr td:first-child").all_inner_texts()) == reps
    shoot(page, "reps")
    page.fill("#reps-filters input[name=name]", "bor")
    assert page.locator("table#reps tbody tr:visible td:first-child").all_inner_texts() == ["Boris Ivanov"]
    page.fill("#reps-filters input[name=name]", "")
    page.select_option("#reps-filters select[name=rating]", "1")
    rated_one = page.locator("table#reps tbody tr:visible").count()
    assert 1 <= rated_one < len(reps)
    page.select_option("#reps-filters select[name=rating]", "")
    page.get_by_role("link", name="Boris Ivanov").click()
    page.wait_for_selector("h1")
    assert page.locator("h1").inner_text().startswith("Boris Ivanov")
    assert "/reps/" in page.url
    page.wait_for_selector(".chart .main-svg")  # the error profile
    assert page.locator("ol.plan li.gap").count() >= 1
    assert page.locator("ol.plan audio.player").count() >= 1
    shoot(page, "rep-boris")
    assert page.problems == []


def test_pages_work_opened_from_disk(page, site):
    for name in ("index.html", "funnel.html", "reps.html"):
        page.goto(site.index.with_name(name).as_uri())
        page.wait_for_selector(".chart .main-svg, table")
    page.goto(site.index.with_name("funnel.html").as_uri())
    page.wait_for_selector("table.funnel-table")
    assert page.problems == []
