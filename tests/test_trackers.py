"""Trackers: the script's phrases found in every call, per rep and stage."""

from dataclasses import replace

from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.insights import trackers
from salescalls.records import ScoredUtterance
from salescalls.script.spec import load_script
from tests.conftest import DEMO_SCRIPT
from tests.test_store import record


def call(n: int, rep: str, language: str, said: list[tuple[str, str]]):
    utterances = tuple(
        ScoredUtterance(
            "A" if i % 2 == 0 else "B", "rep" if i % 2 == 0 else "customer", 2.0 * i, 2.0 * i + 1.5, t, s, 0.9
        )
        for i, (s, t) in enumerate(said)
    )
    return replace(record(f"{n:064d}", rep=rep), utterances=utterances, language=language)


def test_trackers_are_found_as_written_in_any_inflection(tmp_path, demo_script):
    script = load_script(DEMO_SCRIPT)
    path = tmp_path / "tracked.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(
            con,
            call(
                1,
                "Ann",
                "en",
                [
                    ("offer", "For new customers there are Discounts this month."),
                    ("objection", "We are with City Cable already."),
                ],
            ),
        )
        store.save_call(con, call(2, "Ann", "ru", [("offer", "Мы можем дать вам скидку на первый год.")]))
        store.save_call(con, call(3, "Bob", "hu", [("offer", "Most kedvezményt adunk az első évre.")]))
        store.save_call(con, call(4, "Bob", "en", [("offer", "Our plan is fast and reliable.")]))
    with store.reader(path) as con:
        hits = trackers.find(con, script)
    found = {(h.tracker, h.phrase, h.stage) for h in hits.itertuples()}
    assert ("discount", "discount", "offer") in found  # "Discounts": case and plural
    assert ("discount", "скидка", "offer") in found  # "скидку": the lemma
    assert ("discount", "kedvezmény", "offer") in found  # "kedvezményt": the case ending
    assert ("competitor", "City Cable", "objection") in found
    assert hits["call_id"].nunique() == 3  # nothing in call 4
    by_rep = trackers.summary(hits).set_index(["tracker", "rep"])
    assert by_rep.loc[("discount", "Ann"), ["mentioned", "calls"]].tolist() == [2, 2]
    assert by_rep.loc[("discount", "Bob"), ["mentioned", "calls"]].tolist() == [1, 2]
    assert by_rep.loc[("competitor", "Bob"), "mentioned"] == 0

    result = CliRunner().invoke(app, ["trackers", "--db", str(path), "--script", str(DEMO_SCRIPT)])
    assert result.exit_code == 0, result.output
    assert "discount" in result.output and "offer 2" in result.output
    wrong = CliRunner().invoke(app, ["trackers", "--db", str(path), "--by", "campaign"])
    assert wrong.exit_code == 2 and "--by must be rep or period" in wrong.output


def test_script_sections_for_trackers_and_reasons_are_checked():
    import pytest

    from salescalls.script.spec import ScriptError, parse_script

    text = DEMO_SCRIPT.read_text(encoding="utf-8")
    extra = "reasons:\n  moving_office:\n    en: [We are moving to a new building.]\n"
    script = parse_script(text + extra)
    assert script.reasons == {"moving_office": {"en": ("We are moving to a new building.",)}}
    assert set(script.trackers) == {"competitor", "discount", "contract_length"}
    with pytest.raises(ScriptError, match="tracker 'Big Deal' must be lower-case words joined by underscores"):
        parse_script(text.replace("  discount:\n", "  Big Deal:\n"))
    with pytest.raises(ScriptError, match="'german' in reason 'moving_office' is not a language code"):
        parse_script(text + extra.replace("en:", "german:"))
