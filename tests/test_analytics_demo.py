"""Every analytics question asked of the demo calls as their ground truth has them.

The database holds the 14 demo calls exactly as their ground-truth files describe them (turns,
roles, stages) with the CRM fields of calls.csv. Each expectation below is worked out here, from
the JSON and the CSV, without the product's SQL; then the product's answer must be the same.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import parquet, search, store
from salescalls.insights import analytics, coaching, funnel, rep_errors, scorecard
from salescalls.learning.evaluate import truth_record

STAGES = ["greeting", "qualification", "needs", "offer", "objection", "close", "farewell"]
REQUIRED = ["greeting", "qualification", "needs", "offer", "close"]  # the demo script's, sign-off aside


@pytest.fixture(scope="module")
def truths(demo_truths):
    return demo_truths


@pytest.fixture(scope="module")
def database(truth_database) -> Path:
    return truth_database


def facts(truth: dict) -> dict:
    """What one call's ground truth says, computed directly from its turns."""
    stages = {t["stage"] for t in truth["turns"]}
    rep_turns = [t for t in truth["turns"] if t["role"] == "rep"]
    rep = sum(t["end"] - t["start"] for t in rep_turns)
    customer = sum(t["end"] - t["start"] for t in truth["turns"] if t["role"] == "customer")
    end = STAGES.index(truth["end_stage"])
    forbidden = ["half price", "special discount just for you", "fifty percent off", "never goes down"]
    forbidden += ["guaranteed no outages", "price will never go up"]
    return {
        "rep": truth["crm"]["rep"],
        "stages": stages,
        "skipped": [s for s in REQUIRED if STAGES.index(s) < end and s not in stages],
        "no_close": "offer" in stages and "close" not in stages,
        "forbidden": any(p in t["text"].lower() for t in rep_turns for p in forbidden),
        "talk_ratio": rep / (rep + customer),
        "questions": sum(t["text"].rstrip().endswith("?") for t in rep_turns),
        "outcome": truth["crm"]["crm_outcome"],
    }


def walked(truth: dict) -> dict:
    """How far one call got, worked out from its turns: the furthest stage before the sign-off
    by script position, and whether it ended complete (at the script's end, or sold / met)."""
    positions = [STAGES.index(t["stage"]) for t in truth["turns"] if t["stage"] != "farewell"]
    furthest = max(positions, default=-1)
    complete = truth["end_stage"] == "close" or truth["crm"]["crm_outcome"] in ("sale", "meeting")
    signed_off = any(t["stage"] == "farewell" for t in truth["turns"])
    return {"furthest": furthest, "complete": complete, "signed_off": signed_off}


def test_funnel_matches_the_ground_truth(database, truths):
    with store.reader(database) as con:
        stages = funnel.dropoff(con).set_index("stage")
    for stage in STAGES:
        position = STAGES.index(stage)
        occurred = [t for t in truths if stage in facts(t)["stages"]]
        ended = [t for t in truths if t["end_stage"] == stage]
        dropped = [t for t in ended if not walked(t)["complete"]]
        if stage == "farewell":  # went through the whole script and said goodbye
            got = [t for t in truths if walked(t)["furthest"] == STAGES.index("close") and walked(t)["signed_off"]]
        else:
            got = [t for t in truths if walked(t)["furthest"] >= position]
        row = stages.loc[stage]
        assert (row["got_here"], row["occurred"], row["ended_here"]) == (len(got), len(occurred), len(ended)), stage
        assert (row["dropped"], row["completed"]) == (len(dropped), len(ended) - len(dropped)), stage
        assert row["drop_share"] == pytest.approx(len(dropped) / len(got)), stage
        assert row["drop_low"] <= row["drop_share"] <= row["drop_high"]
        assert row["ended_by_customer"] == sum(t["ended_by"] == "customer" for t in ended)
        assert row["ended_by_rep"] == sum(t["ended_by"] == "rep" for t in ended)
        assert row["dropped_by_customer"] == sum(t["ended_by"] == "customer" for t in dropped)
        assert row["outcomes"] == dict(Counter(t["crm"]["crm_outcome"] for t in ended))
    got_here = stages.loc[STAGES, "got_here"].tolist()
    assert got_here == sorted(got_here, reverse=True)  # a funnel: never wider further down
    assert stages.loc["qualification", "occurred"] == 8  # Boris's five calls never have it...
    assert stages.loc["qualification", "got_here"] == 13  # ...but all of his got past it
    assert stages.loc["objection", ["got_here", "dropped"]].tolist() == [9, 2]
    assert stages.loc["close", ["dropped", "completed"]].tolist() == [0, 7]  # close is where calls complete


def test_a_script_names_its_own_success_outcomes(tmp_path, database, truths, demo_script):
    """A team whose script says `success: [callback]` (callbacks booked are its goal): calls that
    ended with a callback complete wherever they ended and count as conversions; sales do not."""
    import dataclasses

    from tests.conftest import DEMO, write_truth_database

    script = dataclasses.replace(demo_script, success=("callback",))
    own = write_truth_database(tmp_path / "callbacks.duckdb", script, [dict(t) for t in truths], DEMO)
    with store.reader(own) as con:
        stages = funnel.dropoff(con).set_index("stage")
        rated = scorecard.ratings(con).set_index("rep")
    with store.reader(database) as con:
        default = funnel.dropoff(con).set_index("stage")
    for stage in STAGES:
        ended = [t for t in truths if t["end_stage"] == stage]
        complete = [t for t in ended if t["end_stage"] == "close" or t["crm"]["crm_outcome"] == "callback"]
        assert stages.loc[stage, ["dropped", "completed"]].tolist() == [len(ended) - len(complete), len(complete)]
    assert stages["completed"].tolist() != default["completed"].tolist()  # the script's list is what counts
    for rep in rated.index:
        theirs = [t for t in truths if t["crm"]["rep"] == rep]
        assert rated.loc[rep, "conversion_k"] == sum(t["crm"]["crm_outcome"] == "callback" for t in theirs), rep
    with store.writer(own) as con:  # a version stored before scripts named their success: sale and meeting
        con.execute("DELETE FROM script_versions")
    with store.reader(own) as con:
        assert funnel.dropoff(con)["completed"].tolist() == default["completed"].tolist()


def test_the_weakest_stage_is_the_one_the_truth_says_and_nothing_is_significant_yet(database, truths):
    with store.reader(database) as con:
        stages = funnel.dropoff(con)
    ranked = funnel.weakest_stages(stages)
    # Worked out from the truth: per stage, dropped / got this far against all other stages' pooled.
    hazards = {}
    for stage in STAGES[:-1]:
        got = [t for t in truths if walked(t)["furthest"] >= STAGES.index(stage)]
        dropped = [t for t in got if t["end_stage"] == stage and not walked(t)["complete"]]
        hazards[stage] = (len(dropped), len(got))
    total_dropped, total_got = map(sum, zip(*hazards.values(), strict=True))
    worse = {s: d / g - (total_dropped - d) / (total_got - g) for s, (d, g) in hazards.items()}
    assert ranked["stage"].iloc[0] == max(worse, key=worse.get) == "objection"
    assert "close" in set(ranked["stage"]) and ranked.set_index("stage").loc["close", "dropped"] == 0
    assert not ranked["significant"].any()  # 14 calls: nothing is significant yet...
    lines = funnel.weak_stage_lines(ranked, len(truths))
    assert "with 14 calls no stage's drop-off is significantly higher" in lines[1]
    assert lines[2].strip().startswith("objection: 2 of 9 calls dropped here")  # ...the highest is still shown
    assert "significant from about" in lines[2]
    assert list(funnel.highlighted(ranked)["stage"]) == ["objection"]


def test_funnel_filters_and_periods_match_the_ground_truth(database, truths):
    with store.reader(database) as con:
        cold = funnel.dropoff(con, segment="cold").set_index("stage")
        weekly = funnel.dropoff(con, period="week")
        monthly = funnel.dropoff(con, period="month")
        quarterly = funnel.dropoff(con, period="quarter")
        with pytest.raises(ValueError, match="period"):
            funnel.dropoff(con, period="fortnight")
    cold_truths = [t for t in truths if t["crm"]["segment"] == "cold"]
    assert cold.loc["greeting", "got_here"] == len(cold_truths)
    assert cold.loc["offer", "ended_here"] == sum(t["end_stage"] == "offer" for t in cold_truths)

    def monday(truth) -> date:
        day = date.fromisoformat(truth["crm"]["started_at"][:10])
        return date.fromordinal(day.toordinal() - day.weekday())

    weeks = Counter(monday(t) for t in truths)
    by_week = weekly[weekly["stage"] == "greeting"].set_index("period")["calls"]
    assert {p.date() if hasattr(p, "date") else p: n for p, n in by_week.items()} == dict(weeks)
    assert weekly.groupby("stage")["ended_here"].sum().to_dict() == monthly.set_index("stage")["ended_here"].to_dict()
    assert monthly["period"].nunique() == quarterly["period"].nunique() == 1  # all of November 2026


def test_conversation_metrics_match_the_ground_truth(database, truths):
    with store.reader(database) as con:
        per_call = analytics.conversation_metrics(con).set_index("file")
        per_rep = analytics.rep_conversation_metrics(con).set_index("rep")
    for truth in truths:
        expected = facts(truth)
        assert per_call.loc[truth["file"], "talk_ratio"] == pytest.approx(expected["talk_ratio"])
        assert per_call.loc[truth["file"], "rep_questions"] == expected["questions"]
    claire = [facts(t)["talk_ratio"] for t in truths if t["crm"]["rep"] == "Claire Dubois"]
    assert per_rep.loc["Claire Dubois", "talk_ratio"] == pytest.approx(sum(claire) / len(claire))
    assert per_rep["talk_ratio"].idxmax() == "Claire Dubois"  # the demo's rep who talks in monologues


def test_error_profiles_match_the_ground_truth(database, truths):
    with store.reader(database) as con:
        errors = rep_errors.call_errors(con).set_index("call_id")
        boris = rep_errors.error_profile(con, "Boris Ivanov").set_index("error")
        claire = rep_errors.error_profile(con, "Claire Dubois").set_index("error")
    for truth in truths:
        expected, found = facts(truth), errors.loc[f"truth:{truth['file']}"]
        assert found["skipped_required_stage"] == bool(expected["skipped"]), truth["file"]
        assert found["no_close_attempt"] == expected["no_close"], truth["file"]
        assert found["forbidden_phrase"] == expected["forbidden"], truth["file"]
    assert boris.loc["skipped_required_stage", ["errors", "calls", "team_errors"]].tolist() == [5, 5, 0]
    assert boris.loc["skipped_required_stage", "flagged"]  # every call vs none: significant with 5 calls
    assert claire.loc["no_close_attempt", ["errors", "calls"]].tolist() == [2, 4]
    assert not claire.loc["no_close_attempt", "flagged"]  # 2 of 4 vs 2 of 10: too few calls to say


def test_ratings_follow_the_kpis_of_the_ground_truth(database, truths):
    with store.reader(database) as con:
        rated = scorecard.ratings(con).set_index("rep")
        weekly = scorecard.ratings(con, period="week")
    lo, hi = scorecard.BALANCED_TALK
    for rep in ("Alex Morgan", "Boris Ivanov", "Claire Dubois"):
        mine = [facts(t) for t in truths if t["crm"]["rep"] == rep]
        offered = [f for f in mine if "offer" in f["stages"]]
        expected = {
            "conversion": sum(f["outcome"] in ("sale", "meeting") for f in mine) / len(mine),
            "stages_covered": sum(not f["skipped"] for f in mine) / len(mine),
            "close_attempted": sum("close" in f["stages"] for f in offered) / len(offered),
            "clean_language": sum(not f["forbidden"] for f in mine) / len(mine),
            "balanced_talk": sum(lo <= f["talk_ratio"] <= hi for f in mine) / len(mine),
        }
        row = rated.loc[rep]
        assert row["calls"] == len(mine)
        statuses = []
        for kpi in scorecard.KPI_TARGETS:
            assert row[kpi.name] == pytest.approx(expected[kpi.name]), (rep, kpi.name)
            value = expected[kpi.name]
            statuses.append("exceeded" if value >= kpi.stretch else "met" if value >= kpi.target else "missed")
            assert row[f"{kpi.name}_status"] == statuses[-1]
        assert row["rating"] == scorecard.rating_of(statuses.count("missed"), statuses.count("exceeded"), 5)
    assert rated["rating"].to_dict() == {"Alex Morgan": 2, "Boris Ivanov": 1, "Claire Dubois": 1}
    # Per week: a rep with fewer than MIN_RATED_CALLS calls that week is not rated.
    assert set(weekly.loc[weekly["calls"] < scorecard.MIN_RATED_CALLS, "rating_label"]) == {"too few calls"}
    assert weekly["calls"].sum() == len(truths)


def test_rating_rules():
    assert scorecard.rating_of(missed=0, exceeded=5, judged=5) == 4
    assert scorecard.rating_of(missed=0, exceeded=2, judged=5) == 3
    assert scorecard.rating_of(missed=1, exceeded=4, judged=5) == 2
    assert scorecard.rating_of(missed=2, exceeded=0, judged=5) == 2
    assert scorecard.rating_of(missed=3, exceeded=2, judged=5) == 1
    assert scorecard.rating_of(missed=0, exceeded=0, judged=0) is None


def test_training_plan_uses_the_reps_own_moments_and_a_top_reps_example(database):
    with store.reader(database) as con:
        boris = coaching.training_plan(con, "Boris Ivanov", examples=2)
        claire = coaching.training_plan(con, "Claire Dubois")
        alex = coaching.training_plan(con, "Alex Morgan")
        nobody = coaching.training_plan(con, "Nobody")
    first = boris.iloc[0]
    assert first["error"] == "skipped_required_stage" and first["flagged"]
    assert first["stage"] == "qualification" and "qualification" in first["meaning"]  # the gap names the stage
    assert first["target_30d"] == pytest.approx(0.15)  # the stages-covered KPI's target: 85 % of calls
    assert [m.file for m in first["examples"]] == ["c14.flac", "c08.flac"]  # Boris's latest calls
    for moment in first["examples"]:  # where qualification belonged: the jump from the greeting over it
        assert moment.rep == "Boris Ivanov" and moment.stage == "needs"
        assert moment.note == "qualification belonged here: the call went from greeting to needs"
    contrast = first["contrast"]
    assert contrast.rep == "Alex Morgan" and contrast.stage == "qualification"  # the stage Boris skips
    contrasts = [(c.call_id, c.at) for c in boris["contrast"] if c is not None]
    assert len(contrasts) == len(set(contrasts))  # never the same example for two gaps
    no_close = claire.set_index("error").loc["no_close_attempt"]
    assert "c09.ogg" in {m.file for m in no_close["examples"]}
    moments = [(m.call_id, m.at) for examples in claire["examples"] for m in examples]
    assert len(moments) == len(set(moments))  # c10 at 0:22.8 shows the forbidden phrase, so not again
    assert no_close["contrast"].stage == "close"
    forbidden = claire.set_index("error").loc["forbidden_phrase"]
    assert forbidden["examples"][0].note == 'forbidden phrase "never goes down"'
    # Alex's rating misses balanced talk, so his plan trains it (it once said "nothing to train")
    assert alex["error"].tolist() == ["talks_too_much"] and alex["missed_kpi"].tolist() == ["balanced_talk"]
    assert nobody.empty and nobody.columns.empty


def test_rating_and_plan_never_disagree(database):
    with store.reader(database) as con:
        rated = scorecard.ratings(con)
        plans = {rep: coaching.training_plan(con, rep) for rep in rated["rep"]}
    for rep, plan in plans.items():
        row = rated.set_index("rep").loc[rep]
        missed = {kpi.name for kpi in scorecard.KPI_TARGETS if row[f"{kpi.name}_status"] == "missed"}
        trained = set(plan["missed_kpi"].dropna()) if "missed_kpi" in plan else set()
        assert trained == missed & set(scorecard.KPI_ERRORS), rep
        assert len(plan) <= max(coaching.PLAN_GAPS, len(trained))


def test_search_finds_phrases_with_and_without_an_index(database, tmp_path, demo_script, truths):
    copy = tmp_path / "search.duckdb"
    copy.write_bytes(database.read_bytes())
    with store.reader(copy) as con:
        found, note = search.search(con, "Half Price")
        assert found["file"].tolist() == ["c06.ogg"] and "no search index" in note
    with store.writer(copy) as con:
        assert search.build_index(con)["indexed"] == sum(len(t["turns"]) for t in truths)
    with store.reader(copy) as con:
        found, note = search.search(con, "half price")
        assert found["file"].tolist() == ["c06.ogg"] and note == "ranked by BM25"
        assert search.search(con, "price", rep="Alex Morgan")[0].empty
        with pytest.raises(ValueError):
            search.search(con, "  ")
    late = dict(truths[0], file="late.ogg", crm={**truths[0]["crm"], "rep": "Dana"})  # stored after the index
    with store.writer(copy) as con:
        store.save_call(con, truth_record(late, late["crm"], demo_script))
    with store.reader(copy) as con:
        found, note = search.search(con, "bakery")
    assert "late.ogg" in found["file"].tolist() and "after the index was built" in note


def test_export_writes_every_table_as_parquet(database, tmp_path):
    with store.reader(database) as con:
        written = parquet.export_parquet(con, tmp_path / "out")
        november = parquet.export_parquet(con, tmp_path / "week", since="2026-11-09", until="2026-11-15")
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in written}
    assert written == counts and written["calls"] == 14 and written["reps"] == 3
    assert november["calls"] == 5  # c08-c12
    stored = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out' / 'utterances.parquet'}'").fetchone()[0]
    assert stored == counts["utterances"]
    for table, rows in written.items():  # pandas reads every file in the shipped environment (fastparquet)
        frame = pd.read_parquet(tmp_path / "out" / f"{table}.parquet")
        assert len(frame) == rows, table
    calls = pd.read_parquet(tmp_path / "out" / "calls.parquet")
    assert sorted(calls["rep"].unique()) == ["Alex Morgan", "Boris Ivanov", "Claire Dubois"]


def test_every_analytics_command_answers_from_the_cli(database, tmp_path):
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(app, [*args, "--db", str(database)])
        assert result.exit_code == 0, result.output
        return result.output

    funnel = run("dropoff")
    assert "qualification  13            8         1             8%" in funnel
    assert "objection: 2 of 9 calls dropped here" in funnel
    assert "period from 2026-11-09: 5 calls" in run("dropoff", "--period", "week")
    assert "Claire Dubois  4" in run("metrics")
    assert "skipped required stage  100% (57%-100%)" in run("profile", "Boris Ivanov")
    rating = run("rating")
    assert "Boris Ivanov   5      60% of 5 exceeded  0% of 5 missed" in rating and "1 missed goals" in rating
    assert "Claire Dubois  2026-11-09   3" in run("rating", "--period", "week")
    plan = run("plan", "Boris Ivanov")
    assert "1. the required stage qualification was skipped: 5 of 5 calls (100%); rest of the team 0 of 9 calls" in plan
    assert "how Alex Morgan does it" in plan
    assert json.loads(run("plan", "Claire Dubois", "--json"))["gaps"][0]["rep"] == "Claire Dubois"
    assert "c06.ogg" in run("search", "half price")
    assert "calls.parquet: 14 rows" in run("export", str(tmp_path / "export"))
    missing = runner.invoke(app, ["plan", "Nobody", "--db", str(database)])
    assert missing.exit_code == 2, missing.output  # a usage error, naming the reps there are
    assert "no rep 'Nobody' among the stored calls; the reps there are: Alex Morgan, Boris Ivanov, Claire Dubois" in (
        missing.output
    )
    assert run("plan", "boris ivanov") == plan  # names match regardless of case
    one_day = run("dropoff", "--rep", "CLAIRE DUBOIS", "--since", "2026-11-16", "--until", "2026-11-16")
    assert "Script demo-broadband v1: 1 call," in one_day  # c13 at 15:05: the last day is included
    bad = runner.invoke(app, ["rating", "--period", "year", "--db", str(database)])
    assert bad.exit_code == 2 and "--period must be" in bad.output
