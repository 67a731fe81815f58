"""Why customers leave: the last words of dropped calls grouped into reasons."""

from dataclasses import replace

from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.insights import reasons
from salescalls.records import ScoredUtterance
from tests.test_store import record

# Last words of dropped calls, in the three languages and in none of the catalogue's wordings.
SAID = [
    ("offer", "Honestly, that's way over our budget. Goodbye.", "price"),
    ("offer", "Это для нас слишком дорого, извините.", "price"),
    ("qualification", "We signed with another company in spring, so thanks but no.", "current_provider"),
    ("greeting", "I'm in the middle of something, I can't talk now. Bye.", "no_time"),
    ("offer", "Nem érdekel minket, köszönöm. Viszlát.", "not_interested"),
    ("objection", "I'll have to sleep on it. Bye.", "think_it_over"),
    ("needs", "The owner handles all of that, not me.", "not_decision_maker"),
]
UNEXPLAINED = ["We are closing the business at the end of the month.", "Our shop shuts down for good next month."]


def dropped_call(n: int, stage: str, last_words: str, rep: str = "Ann"):
    utterances = (
        ScoredUtterance("A", "rep", 0.0, 2.0, "Good morning, this is Sam from BrightLine.", "greeting", 0.9),
        ScoredUtterance("B", "customer", 2.5, 4.0, "Yes?", "greeting", 0.9),
        ScoredUtterance("A", "rep", 4.5, 7.0, "Could I tell you about our offer?", stage, 0.9),
        ScoredUtterance("B", "customer", 7.5, 9.0, last_words, stage, 0.9),
    )
    reached = ("greeting",) if stage == "greeting" else ("greeting", stage)
    call = record(f"{n:064d}", stage, "customer", reached, "refusal", rep=rep)
    return replace(call, utterances=utterances)


def test_dropped_calls_get_the_reason_their_customer_gave(tmp_path, demo_script):
    path = tmp_path / "why.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        for n, (stage, words, _) in enumerate(SAID):
            store.save_call(con, dropped_call(n, stage, words))
        for n, words in enumerate(UNEXPLAINED, start=len(SAID)):
            store.save_call(con, dropped_call(n, "offer", words, rep="Bob"))
        completed = record(f"{99:064d}", "close", "rep", ("greeting", "offer", "close"), "sale")
        store.save_call(con, completed)  # ended complete: not a drop, not in the table
    with store.reader(path) as con:
        found = reasons.why_customers_leave(con)
    assert len(found) == len(SAID) + len(UNEXPLAINED)
    by_text = dict(zip(found["text"], found["reason"], strict=True))
    right = sum(
        any(reason == expected for text, reason in by_text.items() if text in words) for _, words, expected in SAID
    )
    assert right >= len(SAID) - 1, found[["stage", "reason", "text"]]
    bob = found[found["rep"] == "Bob"]["reason"].tolist()
    assert len(set(bob)) == 1 and bob[0].startswith('"'), bob  # no catalogue reason: one group, named by a sentence

    result = CliRunner().invoke(app, ["reasons", "--db", str(path), "--rep", "Ann"])
    assert result.exit_code == 0, result.output
    assert "price" in result.output and "Ann 2" in result.output and "Bob" not in result.output


def test_reasons_of_no_dropped_calls(tmp_path, demo_script):
    path = tmp_path / "none.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
    with store.reader(path) as con:
        assert reasons.why_customers_leave(con).empty
    assert reasons.reasons_table(reasons.why_customers_leave(duckdb_reader(path))) == "no dropped calls"


def duckdb_reader(path):
    import duckdb

    return duckdb.connect(str(path), read_only=True)


def test_a_scripts_own_reasons_replace_the_generic_ones(tmp_path, demo_script):
    from tests.conftest import DEMO_SCRIPT

    own = tmp_path / "script.yaml"
    own.write_text(
        DEMO_SCRIPT.read_text(encoding="utf-8")
        + "reasons:\n  moving_office:\n    en: [We are moving to a new building soon., Our office is relocating.]\n"
        + "  price:\n    en: [It is too expensive.]\n",
        encoding="utf-8",
    )
    path = tmp_path / "own.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, dropped_call(1, "offer", "We're relocating to another town next month. Bye."))
    result = CliRunner().invoke(app, ["reasons", "--db", str(path), "--script", str(own)])
    assert result.exit_code == 0 and "moving_office" in result.output, result.output
    plain = CliRunner().invoke(app, ["reasons", "--db", str(path), "--script", str(DEMO_SCRIPT)])
    assert plain.exit_code == 1 and "names no reasons" in plain.output
