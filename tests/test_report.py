"""The HTML report's build: content from the database, safe names and text, audio, the folder swap."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.errors import InputError
from salescalls.report import site as report
from tests.conftest import DEMO, write_tone
from tests.test_store import record


@pytest.fixture(scope="module")
def demo_site(truth_database, demo_script, tmp_path_factory) -> report.Site:
    options = report.ReportOptions(script=demo_script)
    return report.build(truth_database, tmp_path_factory.mktemp("site") / "report", options)


def embedded(html: str, element_id: str):
    """The JSON a page embeds in <script type="application/json" id=...>."""
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_demo_site_has_every_page_and_playable_recordings(demo_site, demo_truths):
    folder = demo_site.folder
    for page in ("index.html", "funnel.html", "reps.html", "assets/plotly.min.js", "assets/report.js"):
        assert (folder / page).is_file(), page
    assert len(list((folder / "reps").glob("*.html"))) == len({t["crm"]["rep"] for t in demo_truths})
    ended_at = {t["end_stage"] for t in demo_truths}
    assert len(list((folder / "stages").glob("*.html"))) == len(ended_at)
    assert demo_site.audio == len(demo_truths) and demo_site.audio_missing == []
    for mp3 in (folder / "audio").glob("*.mp3"):
        assert mp3.read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"), mp3.name
    html = "".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.html"))
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing remote


def test_funnel_data_matches_the_ground_truth_in_every_filter(demo_site, demo_truths):
    funnel = embedded((demo_site.folder / "funnel.html").read_text(encoding="utf-8"), "funnel-data")
    assert funnel["segments"] == sorted({t["crm"]["segment"] for t in demo_truths})
    assert funnel["campaigns"] == sorted({t["crm"]["campaign"] for t in demo_truths})
    assert funnel["periods"]  # the demo spans a fortnight: weeks
    assert all(re.fullmatch(r"\d{4}-W\d{2}", p) for p in funnel["periods"])
    assert funnel["reps"] == sorted({t["crm"]["rep"] for t in demo_truths})
    for key, views in funnel["views"].items():
        _, segment, campaign, rep = key.split("|")
        assert not (rep and (segment or campaign))  # a rep's funnel is over all segments and campaigns
        truths = [
            t
            for t in demo_truths
            if (not segment or t["crm"]["segment"] == segment)
            and (not campaign or t["crm"]["campaign"] == campaign)
            and (not rep or t["crm"]["rep"] == rep)
        ]
        if key.startswith("all|"):
            (view,) = views
            assert view["calls"] == len(truths), key
            for row in view["rows"]:
                assert row["ended_here"] == sum(t["end_stage"] == row["stage"] for t in truths), (key, row["stage"])
    weeks = [views[0]["calls"] for key, views in funnel["views"].items() if key.endswith("|||") and key != "all|||"]
    assert sum(weeks) == len(demo_truths)


def test_stage_pages_list_the_calls_that_ended_there(demo_site, demo_truths):
    funnel = embedded((demo_site.folder / "funnel.html").read_text(encoding="utf-8"), "funnel-data")
    pages = {row["stage"]: row["page"] for row in funnel["views"]["all|||"][0]["rows"] if row["page"]}
    for stage, page in pages.items():
        html = (demo_site.folder / page).read_text(encoding="utf-8")
        ended = [t for t in demo_truths if t["end_stage"] == stage]
        assert html.count('<article class="call"') == len(ended), stage
        calls = html.split("<h2>The calls</h2>")[-1]
        assert calls.count("<audio ") == len(ended)
        for truth in ended:
            assert truth["file"] in html


def _dropped(truth: dict, script) -> bool:
    """Ended before the script's end (the stage before the sign-off) without a success outcome."""
    completed_at = script.stages[-2].name
    ended_early = truth["end_stage"] not in (completed_at, script.stages[-1].name)
    return ended_early and truth["outcome"] not in ("sale", "meeting")


def test_stage_pages_say_why_customers_left_and_what_the_calls_that_went_on_said(demo_site, demo_truths, demo_script):
    funnel = embedded((demo_site.folder / "funnel.html").read_text(encoding="utf-8"), "funnel-data")
    pages = {row["stage"]: row["page"] for row in funnel["views"]["all|||"][0]["rows"] if row["page"]}
    for stage, page in pages.items():
        html = (demo_site.folder / page).read_text(encoding="utf-8")
        dropped = [t for t in demo_truths if t["end_stage"] == stage and _dropped(t, demo_script)]
        if not dropped:
            assert 'id="why-left"' not in html, stage
            continue
        assert 'id="why-left"' in html, (stage, [t["file"] for t in dropped])
        section = html.split('id="why-left"')[1].split("</section>")[0]
        shown = sum(int(n) for n in re.findall(r'<td class="num">(\d+)</td>', section))
        assert shown == len(dropped), stage
        assert f"{len(dropped)} call{'' if len(dropped) == 1 else 's'} dropped at this stage" in section
    objection = (demo_site.folder / pages["objection"]).read_text(encoding="utf-8")
    assert "think_it_over" in objection and "I need to think about it." in objection  # c09, from the truth
    moves = objection.split('id="what-to-change"')[1].split("</section>")[0]
    clips = re.findall(r'<audio id="move-\d+"[^>]* src="\.\./(audio/[0-9a-f]+\.mp3)#t=([\d.]+),([\d.]+)"', moves)
    assert clips and all((demo_site.folder / path).is_file() and float(a) < float(b) for path, a, b in clips)
    assert "No phrase makes a significant difference yet" in moves  # 14 calls: nothing is significant


def test_trackers_page_counts_the_scripts_phrases_per_rep(demo_site, demo_truths, demo_script):
    html = (demo_site.folder / "trackers.html").read_text(encoding="utf-8")
    assert 'href="trackers.html"' in (demo_site.folder / "index.html").read_text(encoding="utf-8")
    rows = re.findall(
        r"<tr><td>([a-z_]+)</td><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", html
    )
    assert rows
    for tracker, rep, mentioned, calls in rows:
        phrases = [p.lower() for p in demo_script.trackers[tracker]["en"]]
        mine = [t for t in demo_truths if t["crm"]["rep"] == rep]
        said = [t for t in mine if any(p in turn["text"].lower() for turn in t["turns"] for p in phrases)]
        assert (int(mentioned), int(calls)) == (len(said), len(mine)), (tracker, rep)


def test_without_a_script_the_report_has_no_trackers_page(truth_database, tmp_path):
    site = report.build(truth_database, tmp_path / "site", report.ReportOptions(audio=False))
    assert "trackers.html" not in site.pages
    assert "Trackers</a>" not in (site.folder / "index.html").read_text(encoding="utf-8")


def test_rep_page_shows_the_plan_with_playable_moments(demo_site):
    (page,) = [p for p in (demo_site.folder / "reps").glob("*.html") if p.name.startswith("boris-ivanov-")]
    html = page.read_text(encoding="utf-8")
    assert "a required stage was skipped" in html and "Target in 30 days" in html
    clips = re.findall(r'<audio id="gap1-own\d+"[^>]* src="\.\./(audio/[0-9a-f]+\.mp3)#t=([\d.]+),([\d.]+)"', html)
    assert clips and all(float(start) < float(end) for _, start, end in clips)
    assert all((demo_site.folder / path).is_file() for path, _, _ in clips)


def test_names_and_text_are_escaped_and_files_named_safely(tmp_path, demo_script):
    database = tmp_path / "calls.duckdb"
    rep = 'Zoë <b>O\'Brien</b> & "Co" Жанна'
    with store.writer(database) as con:
        store.save_script(con, demo_script)
        for i in range(3):
            store.save_call(con, record(call_id=f"{i}" * 64, rep=rep))
    site = report.build(database, tmp_path / "site", report.ReportOptions(audio=False))
    pages = [p for p in site.pages if p.startswith("reps/")]
    assert len(pages) == 1 and re.fullmatch(r"reps/zoe-b-o-brien-b-co-[0-9a-f]{8}\.html", pages[0])
    for path in site.folder.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        assert "<b>O'Brien</b>" not in html and "</script><" not in html.replace("</script>\n<", "")
    assert "Zoë &lt;b&gt;O&#39;Brien&lt;/b&gt;" in (site.folder / pages[0]).read_text(encoding="utf-8")


def test_missing_recordings_are_reported_not_fatal_and_found_in_audio_dirs(tmp_path, demo_script):
    database = tmp_path / "calls.duckdb"
    moved = tmp_path / "archive"
    moved.mkdir()
    call = record(call_id="b" * 64)
    write_tone(moved / call.file, seconds=3.0, rate=8000)
    with store.writer(database) as con:
        store.save_script(con, demo_script)
        store.save_call(con, call)  # no source: processed elsewhere
    site = report.build(database, tmp_path / "site")
    assert site.audio == 0 and site.audio_missing == [call.file]
    assert "Recording not available" in "".join(p.read_text() for p in site.folder.rglob("stages/*.html"))
    site = report.build(database, tmp_path / "site", report.ReportOptions(audio_dirs=(moved,)))
    assert site.audio == 1 and site.audio_missing == []


def test_rebuild_replaces_the_site_and_reuses_converted_audio(demo_site, truth_database):
    audio = sorted((demo_site.folder / "audio").glob("*.mp3"))
    inodes = {p.name: p.stat().st_ino for p in audio}
    (demo_site.folder / "stale.html").write_text("old page")
    again = report.build(truth_database, demo_site.folder)
    assert not (again.folder / "stale.html").exists()
    assert {p.name: p.stat().st_ino for p in (again.folder / "audio").glob("*.mp3")} == inodes  # linked, not redone
    assert [p.name for p in again.folder.parent.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path, truth_database):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("precious")
    with pytest.raises(InputError, match="not a salescalls report"):
        report.build(truth_database, folder)
    assert (folder / "thesis.txt").read_text() == "precious"


def test_empty_database_gives_a_report_that_says_so(tmp_path):
    database = tmp_path / "empty.duckdb"
    with store.writer(database):
        pass
    site = report.build(database, tmp_path / "site")
    assert "No scored calls yet" in (site.folder / "reps.html").read_text(encoding="utf-8")
    assert embedded((site.folder / "funnel.html").read_text(encoding="utf-8"), "funnel-data")["views"] == {}


def test_report_never_writes_to_the_database(tmp_path, truth_database):
    before = truth_database.read_bytes()
    with store.reader(truth_database):  # another reader may hold it meanwhile
        report.build(truth_database, tmp_path / "site", report.ReportOptions(audio=False))
    assert truth_database.read_bytes() == before


def test_cli_report_builds_and_explains_bad_options(tmp_path, truth_database):
    runner = CliRunner()
    out = tmp_path / "site"
    result = runner.invoke(app, ["report", "--db", str(truth_database), "--out", str(out), "--no-audio"])
    assert result.exit_code == 0, result.output
    assert f"-> {out / 'index.html'}" in result.output and (out / "index.html").is_file()
    stage_page = next((out / "stages").glob("*.html")).read_text(encoding="utf-8")
    assert "<audio " not in stage_page and "not published in this report" in stage_page
    listed = [
        page.read_text(encoding="utf-8").count('<article class="call"') for page in (out / "stages").glob("*.html")
    ]
    assert max(listed) > 1  # the default lists up to 20 calls per stage
    with pytest.MonkeyPatch.context() as env:  # the team's settings decide what the command does not say
        env.setenv("SALESCALLS_REPORT_CALLS_PER_STAGE", "1")
        env.setenv("SALESCALLS_REPORT_AUDIO", "0")
        result = runner.invoke(app, ["report", "--db", str(truth_database), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pages = [page.read_text(encoding="utf-8") for page in (out / "stages").glob("*.html")]
    assert all(page.count('<article class="call"') == 1 for page in pages)
    assert not any("<audio " in page for page in pages)
    result = runner.invoke(app, ["report", "--db", str(truth_database), "--out", str(out), "--period", "year"])
    assert result.exit_code == 2 and "--period must be day, week, month, quarter or auto" in result.output
    assert (out / "trackers.html").is_file()  # the configured script (SALESCALLS_SCRIPT's default, the demo's)
    result = runner.invoke(app, ["report", "--db", str(truth_database), "--out", str(out), "--script", "no.yaml"])
    assert result.exit_code == 1 and "no.yaml" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["report", "--db", str(tmp_path / "none.duckdb"), "--out", str(out)])
    assert result.exit_code == 1 and "no database" in result.output
    assert DEMO.is_dir()
