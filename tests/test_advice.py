"""What to change in the script: the rep's phrases at a stage, calls that went on against calls
that dropped there."""

from dataclasses import replace

from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.insights import advice
from salescalls.records import ScoredUtterance
from tests.test_store import record

REACHED = ("greeting", "qualification", "needs", "offer", "objection")


def objection_call(n: int, rep_says: str, went_on: bool):
    """A call that met an objection; the rep answered with `rep_says`; it went on to the close
    (a sale) or dropped at the objection (a refusal)."""
    utterances = (
        ScoredUtterance("A", "rep", 0.0, 2.0, "Our fibre plan is forty nine euros a month.", "offer", 0.9),
        ScoredUtterance("B", "customer", 2.5, 4.0, "That is more than we pay now.", "objection", 0.9),
        ScoredUtterance("A", "rep", 4.5, 7.0, rep_says, "objection", 0.9),
    )
    if went_on:
        utterances += (ScoredUtterance("A", "rep", 7.5, 9.0, "Shall I send the contract today?", "close", 0.9),)
    reached = REACHED + (("close",) if went_on else ())
    call = record(
        f"{n:064d}",
        "close" if went_on else "objection",
        "rep" if went_on else "customer",
        reached,
        "sale" if went_on else "refusal",
    )
    return replace(call, utterances=utterances, file=f"call{n:02d}.wav")


def test_phrases_that_carried_calls_past_a_stage_rank_first(tmp_path, demo_script):
    path = tmp_path / "moves.duckdb"
    asked = "What do you pay now for the line and the phones?"
    argued = "Our network is the best in the country."
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        for n in range(7):  # asked what they pay: 7 of 7 went on
            store.save_call(con, objection_call(n, asked, went_on=True))
        for n in range(7, 14):  # argued instead: 1 of 7 went on
            store.save_call(con, objection_call(n, argued, went_on=n == 7))
    with store.reader(path) as con:
        moves = advice.stage_moves(con, "demo-broadband", 1, "objection")
    best = moves.iloc[0]
    assert "pay" in best["phrase"].split(" / ") and (best["calls"], best["went_on"]) == (7, 7)
    assert (best["other_calls"], best["other_went_on"]) == (7, 1)
    assert best["lift"] == 7.0 and best["p_value"] < 0.01 and best["q_value"] < 0.05
    assert best["moments"][0].text == asked and best["moments"][0].went_on and best["moments"][0].at == 4.5
    worst = moves[moves["phrase"].str.contains("network")].iloc[0]  # the argument: went on 1 time in 7
    assert (worst["calls"], worst["went_on"]) == (7, 1) and worst.name > best.name

    result = CliRunner().invoke(app, ["advice", "--db", str(path), "--stage", "objection", "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "at objection (14 calls in which it occurred):" in result.output
    assert "calls with it went on 7.0x as often (7 of 7 against 1 of 7 without" in result.output
    assert 'e.g. call00.wav at 0:04.5: "What do you pay now' in result.output
    wrong = CliRunner().invoke(app, ["advice", "--db", str(path), "--stage", "pricing"])
    assert wrong.exit_code == 2 and "no stage pricing in demo-broadband v1; its stages: greeting" in wrong.output


def test_no_phrase_to_compare_says_so(tmp_path, demo_script):
    path = tmp_path / "few.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, objection_call(0, "We can wait until your contract ends.", went_on=False))
    with store.reader(path) as con:
        moves = advice.stage_moves(con, "demo-broadband", 1, "objection")
    assert moves.empty
    assert advice.moves_text(moves, "objection") == [
        "at objection: no phrase of the rep was said in 2 or more of the calls to compare"
    ]
