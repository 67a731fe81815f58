import duckdb
import numpy as np
import pytest

from salescalls.db import runlog, store
from salescalls.insights import analytics, funnel, rep_errors, stats, versions
from salescalls.records import CallRecord, CallScore, PhraseHit, ScoredUtterance


def record(
    call_id="a" * 64,
    end_stage="offer",
    ended_by="customer",
    reached=("greeting", "offer"),
    outcome="refusal",
    rep="Ann O'Neil; DROP TABLE calls;--",
    utterances=2,
):
    return CallRecord(
        call_id=call_id,
        file=f"{call_id[:6]}.wav",
        duration=30.0,
        channels=1,
        sample_rate=8000,
        codec="pcm_s16le",
        language="en",
        script_id="demo-broadband",
        script_version=1,
        stage_model="cold-start:test",
        whisper_model="base",
        diarization="pyannote",
        role_method="text",
        role_confidence=0.9,
        utterances=tuple(
            ScoredUtterance("A", "rep", float(i), i + 0.5, f"utterance {i}", reached[min(i, len(reached) - 1)], 0.8)
            for i in range(utterances)
        ),
        score=CallScore(
            reached,
            (),
            (),
            end_stage,
            ended_by,
            None,
            (PhraseHit("unauthorised_discount", "half price", 0, 0.0, "rep"),),
        ),
        timings={"transcribe": 1.0},
        metadata={
            "call_id": "crm-1",
            "rep": rep,
            "started_at": "2026-11-02 09:14",
            "segment": "warm",
            "campaign": "spring",
            "crm_outcome": outcome,
        },
    )


def test_migrations_are_numbered_and_applied_once(tmp_path, demo_script):
    assert [v for v, _, _ in store.migrations()][0] == 1
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        assert store.schema_version(con) == len(store.migrations())
    with store.writer(path) as con:  # a second open applies nothing again
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(store.migrations())


def test_saving_a_call_twice_keeps_one_copy(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, record(utterances=3), run_id="run-1")
        store.save_call(con, record(utterances=2), run_id="run-2")
        assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM utterances").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM call_results").fetchone()[0] == 1
        rep, run_id, started = con.execute("SELECT rep, run_id, started_at FROM calls").fetchone()
        assert rep == "Ann O'Neil; DROP TABLE calls;--"  # parameters, never string-built SQL
        assert run_id == "run-2" and started.year == 2026
        forbidden = con.execute("SELECT forbidden FROM call_results").fetchone()[0]
        assert "half price" in forbidden
    assert store.known_call_ids(duckdb.connect(str(path), read_only=True)) == {"a" * 64}


def test_reader_is_read_only_and_needs_a_database(tmp_path):
    path = tmp_path / "calls.duckdb"
    with pytest.raises(FileNotFoundError, match="run `salescalls run INBOX` first"), store.reader(path):
        pass
    with store.writer(path):
        pass
    with store.reader(path) as con, pytest.raises(duckdb.Error):
        con.execute("CREATE TABLE x (a INTEGER)")


def test_runs_and_quarantine_are_recorded(tmp_path):
    with store.writer(tmp_path / "calls.duckdb") as con:
        runlog.start_run(con, "r1", "/inbox")
        runlog.save_quarantine(con, "/inbox/bad.wav", None, "empty file (0 bytes)", "r1", "/q/bad.wav")
        runlog.finish_run(con, "r1", "completed", files_seen=3, calls_added=1, calls_skipped=1, quarantined=1)
        assert con.execute("SELECT status, files_seen, quarantined FROM runs").fetchone() == ("completed", 3, 1)
        assert con.execute("SELECT reason FROM quarantine").fetchone()[0] == "empty file (0 bytes)"


def test_calls_in_flight_count_against_a_recording_only_when_their_run_was_killed(tmp_path):
    with store.writer(tmp_path / "calls.duckdb") as con:
        for run in ("killed 1", "killed 2", "failed", "live"):
            runlog.start_run(con, run, "/inbox")
        runlog.start_attempt(con, "aa", "/inbox/x.wav", "killed 1")
        runlog.start_attempt(con, "bb", "/inbox/y.wav", "killed 1")
        runlog.end_attempt(con, "bb")  # stored before the kill
        runlog.start_attempt(con, "aa", "/inbox/x renamed.wav", "killed 2")
        runlog.start_attempt(con, "cc", "/inbox/z.wav", "failed")
        runlog.forget_attempts(con, "failed")  # stopped by itself: not the recording's doing
        runlog.finish_run(con, "failed", "failed", 0, 0, 0, 0)
        runlog.finish_run(con, "live", "completed", 0, 0, 0, 0)
        assert runlog.killed_attempts(con) == {}  # runs still marked running are not known to be dead
        runlog.start_run(con, "now", "/inbox")
        con.execute("UPDATE runs SET status = 'completed' WHERE run_id = 'now'")
        assert sorted(runlog.interrupt_stale_runs(con)) == ["killed 1", "killed 2"]
        runlog.start_attempt(con, "dd", "/inbox/w.wav", "now")  # only interrupted runs count
        assert runlog.killed_attempts(con) == {"aa": (2, "/inbox/x renamed.wav")}


def test_dropoff_counts_reached_and_ended_per_stage(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, record("1" * 64, "offer", "customer", ("greeting", "needs", "offer"), "refusal"))
        store.save_call(con, record("2" * 64, "offer", "customer", ("greeting", "offer"), "refusal"))
        store.save_call(
            con, record("3" * 64, "close", "rep", ("greeting", "needs", "offer", "close", "farewell"), "sale")
        )
        store.save_call(con, record("4" * 64, "greeting", "customer", ("greeting", "farewell"), "callback"))
    with store.reader(path) as con:
        frame = funnel.dropoff(con).set_index("stage")
    assert list(frame.index) == list(demo_script.stage_names)
    assert frame["calls"].iloc[0] == 4
    # got this far: by script position, so call 2 (greeting, offer) got past qualification and needs
    assert frame.loc[list(demo_script.stage_names), "got_here"].tolist() == [4, 3, 3, 3, 1, 1, 1]
    assert frame.loc["greeting", ["occurred", "ended_here", "dropped"]].tolist() == [4, 1, 1]
    assert frame.loc["needs", ["occurred", "got_here", "dropped"]].tolist() == [2, 3, 0]
    assert frame.loc["offer", ["occurred", "dropped", "ended_by_customer", "dropped_by_customer"]].tolist() == [
        3,
        2,
        2,
        2,
    ]
    assert frame.loc["offer", "drop_share"] == pytest.approx(2 / 3)
    assert frame.loc["close", ["ended_here", "dropped", "completed"]].tolist() == [1, 0, 1]
    assert frame.loc["offer", "outcomes_of_ended"] == "refusal 2"
    assert frame.loc["close", "outcomes_of_ended"] == "sale 1"
    assert frame.loc["objection", ["occurred", "got_here", "drop_share"]].tolist() == [0, 1, 0.0]
    table = funnel.dropoff_table(funnel.dropoff(duckdb.connect(str(path), read_only=True)))
    assert "Script demo-broadband v1: 4 calls" in table and "67%" in table


def test_dropoff_of_an_empty_database(tmp_path):
    path = tmp_path / "calls.duckdb"
    with store.writer(path):
        pass
    with store.reader(path) as con:
        assert funnel.dropoff_table(funnel.dropoff(con)) == "no scored calls yet"


def test_call_record_round_trips_through_json():
    original = record()
    assert CallRecord.from_json(original.to_json()) == original


def test_a_reader_on_an_older_schema_gets_an_instruction(tmp_path):
    path = tmp_path / "old.duckdb"
    with store.writer(path) as con:
        con.execute("DELETE FROM schema_version WHERE version > 1")
    with store.reader(path) as con, pytest.raises(FileNotFoundError, match="run `salescalls rescore`"):
        store.require_current_schema(con)


def test_wilson_interval_matches_known_values():
    low, high = stats.wilson_interval([2, 0, 5], [3, 10, 0])
    assert (round(float(low[0]), 4), round(float(high[0]), 4)) == (0.2077, 0.9385)  # 2 of 3
    assert low[1] == 0.0 and round(float(high[1]), 4) == 0.2775  # 0 of 10: not a zero-width interval
    assert np.isnan(low[2]) and np.isnan(high[2])  # no calls, no interval


def test_dropoff_filters_and_ranks_the_weakest_stage(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        n = 0
        for rep, end, reached, count in [
            ("Ann", "offer", ("greeting", "qualification", "needs", "offer"), 8),
            ("Ann", "close", ("greeting", "qualification", "needs", "offer", "close"), 4),
            ("Bob", "greeting", ("greeting",), 3),
        ]:
            for _ in range(count):
                n += 1
                call = record(f"{n:064d}", end, "customer", reached, "refusal", rep=rep)
                store.save_call(con, call)
    with store.reader(path) as con:
        everyone = funnel.dropoff(con).set_index("stage")
        ann = funnel.dropoff(con, rep="Ann").set_index("stage")
        later = funnel.dropoff(con, since="2027-01-01")
        ranked = funnel.weakest_stages(funnel.dropoff(con), min_calls=10)
    assert everyone.loc["greeting", ["got_here", "dropped"]].tolist() == [15, 3]
    assert ann.loc["greeting", ["got_here", "dropped"]].tolist() == [12, 0]
    assert ann.loc["offer", "drop_share"] == pytest.approx(8 / 12)
    assert 0 < ann.loc["offer", "drop_low"] < 8 / 12 < ann.loc["offer", "drop_high"] < 1
    assert ann.loc["close", ["dropped", "completed"]].tolist() == [0, 4]  # the script's end: complete
    assert later.empty  # every call is from November 2026
    top = ranked.iloc[0]
    assert top["stage"] == "offer" and top["significant"]  # 8 of 12 against 3 of 39 elsewhere
    assert top["p_adjusted"] < 0.05 and top["calls_needed"] == 12
    assert "close" not in ranked["stage"].tolist()  # 4 calls got there: too few to judge
    assert list(funnel.highlighted(ranked)["stage"]) == ["offer"]


def conversation(tmp_path, demo_script, turns, duration=30.0):
    """A stored call from (role, start, end, text, backchannel) tuples."""
    path = tmp_path / "talk.duckdb"
    call = record("9" * 64)
    utterances = tuple(
        ScoredUtterance("ch0" if role == "rep" else "ch1", role, start, end, text, "offer", 0.9, back)
        for role, start, end, text, back in turns
    )
    call = CallRecord(**{**call.__dict__, "utterances": utterances, "duration": duration})
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, call)
    return path


def test_conversation_metrics_of_one_call(tmp_path, demo_script):
    path = conversation(
        tmp_path,
        demo_script,
        [
            ("rep", 0.0, 4.0, "Hello, this is Sam from BrightLine. How are you?", False),
            ("rep", 4.5, 10.0, "I am calling about your internet. Do you have a minute?", False),  # one turn
            ("customer", 9.5, 12.0, "Yes.", False),  # starts 0.5 s before the rep ends: interrupts
            ("rep", 11.0, 11.3, "Mhm.", True),  # a back-channel is listening, not talking
            ("customer", 12.5, 20.0, "We have six people and the line drops every day", False),
            ("rep", 22.0, 26.0, "Our fibre plan fixes that.", False),
        ],
    )
    with store.reader(path) as con:
        row = analytics.conversation_metrics(con).iloc[0]
        per_rep = analytics.rep_conversation_metrics(con)
    assert row["rep_seconds"] == pytest.approx(4.0 + 5.5 + 4.0)
    assert row["customer_seconds"] == pytest.approx(2.5 + 7.5)
    assert row["talk_ratio"] == pytest.approx(13.5 / 23.5)
    assert row["longest_monologue"] == pytest.approx(10.0)  # 0-4 and 4.5-10: no reply between
    assert row["longest_customer_story"] == pytest.approx(20.0 - 9.5)  # "Yes." and the story: one turn
    assert (row["customer_interruptions"], row["rep_interruptions"]) == (1, 0)
    assert row["rep_questions"] == 2  # rep utterances that end with a question mark
    assert row["silence_share"] == pytest.approx(1 - 23.0 / 30.0)  # speech 0-4, 4.5-12, 12.5-20, 22-26
    assert row["rep_words_per_minute"] == pytest.approx((9 + 11 + 5) / (13.5 / 60))
    assert per_rep.iloc[0]["calls"] == 1 and per_rep.iloc[0]["rep"] == "Ann O'Neil; DROP TABLE calls;--"


def test_error_profile_flags_only_significant_differences(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    full = ("greeting", "qualification", "needs", "offer", "close", "farewell")
    no_close = ("greeting", "qualification", "needs", "offer", "farewell")
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        n = 0
        for rep, reached, count in [("Cleo", no_close, 12), ("Dan", full, 20), ("Eve", full, 18), ("Eve", no_close, 2)]:
            for _ in range(count):
                n += 1
                call = record(f"{n:064d}", reached[-2], "rep", reached, "sale", rep=rep)
                store.save_call(con, call)
    with store.reader(path) as con:
        cleo = rep_errors.error_profile(con, "Cleo").set_index("error")
        eve = rep_errors.error_profile(con, "Eve").set_index("error")
        assert rep_errors.error_profile(con, "Nobody").empty
    assert cleo.loc["no_close_attempt", ["rate", "team_rate"]].tolist() == [1.0, 2 / 40]
    assert cleo.loc["no_close_attempt", "flagged"] and cleo.loc["no_close_attempt", "p_value"] < 0.001
    assert cleo.loc["no_close_attempt", "low"] < 1.0 == cleo.loc["no_close_attempt", "high"]
    assert not eve.loc["no_close_attempt", "flagged"]  # 2 of 20 vs 12 of 32: lower, not flagged
    assert cleo.loc["forbidden_phrase", "rate"] == 1.0 and not cleo.loc["forbidden_phrase", "flagged"]  # all do
    assert set(cleo.index) == set(rep_errors.ERRORS)


def test_upgrade_to_stored_metrics_keeps_calls_and_fills_metrics_and_reps(tmp_path, demo_script):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # a database as schema version 2 left it
        assert store.migrate(con, until=2) == 2
        con.execute(
            "INSERT INTO calls (call_id, file, rep, started_at, duration, channels, sample_rate, script_id, "
            "script_version, stage_model, whisper_model, diarization, role_method, processed_at) "
            "VALUES ('x', 'x.wav', 'Ann', '2026-11-02 09:00', 20.0, 2, 8000, 'demo-broadband', 1, 'm', 'base', "
            "'channels', 'channel', now())"
        )
        con.execute("INSERT INTO call_results (call_id, end_stage, stages_reached) VALUES ('x', 'offer', ['offer'])")
        con.executemany(
            "INSERT INTO utterances VALUES ('x', ?, ?, ?, ?, ?, ?, 'offer', 0.9, false)",
            [[0, "ch0", "rep", 0.0, 6.0, "Shall we start?"], [1, "ch1", "customer", 6.5, 8.5, "Yes."]],
        )
    with store.writer(path) as con:
        assert store.schema_version(con) == len(store.migrations())
        row = con.execute("SELECT talk_ratio, rep_questions, longest_monologue FROM call_results").fetchone()
        ids = con.execute("SELECT utterance_id, idx FROM utterances ORDER BY idx").fetchall()
        reps = con.execute("SELECT rep, calls FROM reps").fetchall()
        numbers = con.execute("SELECT c.call_no, r.call_no FROM calls c JOIN call_results r USING (call_id)").fetchall()
        store.save_call(con, record())  # a new call gets the next number
        assert con.execute("SELECT max(call_no) FROM call_results").fetchone()[0] == numbers[0][0] + 1
    assert numbers == [(1, 1)]
    assert row == (pytest.approx(6.0 / 8.0), 1, pytest.approx(6.0))
    assert len({i for i, _ in ids}) == 2 and reps == [("Ann", 1)]


def test_resaving_a_call_replaces_its_metrics_and_moves_it_between_reps(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, record(rep="Ann", utterances=3))
        store.save_call(con, record(rep="Bob", utterances=0))  # the same audio, metadata corrected
        assert con.execute("SELECT rep, calls FROM reps").fetchall() == [("Bob", 1)]
        assert con.execute("SELECT talk_ratio, rep_questions FROM call_results").fetchall() == [(None, None)]
        assert con.execute("SELECT count(*) FROM utterances").fetchone()[0] == 0


def test_rescoring_keeps_the_stored_conversation_metrics(tmp_path, demo_script):
    path = tmp_path / "calls.duckdb"
    call = record(utterances=3)
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, call)
        before = con.execute("SELECT talk_ratio, rep_seconds FROM call_results").fetchone()
        rescored = CallScore(("greeting",), (), (), "greeting", "rep", None, ())
        store.save_rescored(con, call.call_id, call.utterances, rescored, "trained:v2", demo_script)
        after = con.execute("SELECT talk_ratio, rep_seconds, end_stage FROM call_results").fetchone()
    assert before == (1.0, pytest.approx(1.5)) and after == (*before, "greeting")


def test_a_writer_waits_for_a_reader_in_another_process_to_finish(tmp_path, demo_script, monkeypatch):
    import subprocess
    import sys
    import time

    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); time.sleep(2)"]
    )
    time.sleep(1.0)  # the other process now holds a read-only connection
    started = time.monotonic()
    with store.writer(path) as con:
        store.save_call(con, record())
    assert holder.wait() == 0 and time.monotonic() - started > 0.3  # it waited, then wrote
    monkeypatch.setenv("SALESCALLS_DB_WAIT", "0")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); time.sleep(3)"]
    )
    time.sleep(1.5)
    with pytest.raises(duckdb.IOException, match="lock"), store.writer(path):
        pass
    holder.wait()


def test_upgrade_to_recording_paths_fills_them_from_the_run_inbox(tmp_path, demo_script):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # a database as schema version 3 left it
        assert store.migrate(con, until=3) == 3
        con.execute("INSERT INTO runs (run_id, started_at, inbox, status) VALUES ('r1', now(), 'inbox/night', 'done')")
        con.execute(
            "INSERT INTO calls (call_id, file, started_at, duration, channels, sample_rate, script_id, "
            "script_version, stage_model, whisper_model, diarization, role_method, processed_at, run_id) "
            "VALUES ('x', 'x.wav', now(), 20.0, 2, 8000, 'demo-broadband', 1, 'm', 'base', 'channels', 'channel', "
            "now(), 'r1')"
        )
    with store.writer(path) as con:
        assert con.execute("SELECT source FROM calls").fetchone() == ("inbox/night/x.wav",)
        store.save_call(con, CallRecord(**{**record().__dict__, "source": "/recordings/a.wav"}))
        source = con.execute("SELECT source FROM calls WHERE call_id = ?", ["a" * 64]).fetchone()
    assert source == ("/recordings/a.wav",)


def test_script_versions_compared_stage_by_stage(tmp_path, demo_script):
    from dataclasses import replace

    path = tmp_path / "versions.duckdb"
    edited = replace(demo_script, version=2)
    full = ("greeting", "qualification", "needs", "offer", "close")
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_script(con, edited)
        n = 0
        for version, dropped_at_offer in ((1, 8), (2, 1)):
            for i in range(12):
                n += 1
                drops = i < dropped_at_offer
                call = record(
                    f"{n:064d}",
                    "offer" if drops else "close",
                    "customer",
                    full[:4] if drops else full,
                    "refusal" if drops else "sale",
                )
                when = "2026-11-02 09:14" if version == 1 else "2026-11-20 09:00"  # v2 from the 20th
                store.save_call(
                    con, replace(call, script_version=version, metadata={**call.metadata, "started_at": when})
                )
    with store.reader(path) as con:
        compared = versions.compare_versions(con, "demo-broadband").set_index("stage")
        with pytest.raises(ValueError, match="no earlier version"):
            versions.compare_versions(con, "demo-broadband", 1)
        with pytest.raises(ValueError, match="versions with calls: 1, 2"):
            versions.compare_versions(con, "demo-broadband", 7)
    offer = compared.loc["offer"]
    assert (offer["previous"], offer["version"]) == (1, 2)
    assert (offer["previous_dropped"], offer["previous_got_here"]) == (8, 12)
    assert (offer["current_dropped"], offer["current_got_here"]) == (1, 12)
    assert offer["change"] == pytest.approx(1 / 12 - 8 / 12) and offer["p_value"] < 0.05
    assert compared.loc["greeting", "change"] == 0
    table = versions.versions_table(compared.reset_index())
    assert "v1 (12 calls) against v2 (12 calls)" in table and "67% of 12" in table and "-58" in table
    from typer.testing import CliRunner

    from salescalls.cli import app

    result = CliRunner().invoke(app, ["compare-versions", "demo-broadband", "--db", str(path), "--days", "30"])
    assert result.exit_code == 0 and "offer" in result.output and "-58" in result.output, result.output
