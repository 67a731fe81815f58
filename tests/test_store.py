import duckdb
import pytest

from salescalls import analytics, store
from salescalls.pipeline import CallRecord
from salescalls.score import CallScore, PhraseHit, ScoredUtterance


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
        store.start_run(con, "r1", "/inbox")
        store.save_quarantine(con, "/inbox/bad.wav", None, "empty file (0 bytes)", "r1", "/q/bad.wav")
        store.finish_run(con, "r1", "completed", files_seen=3, calls_added=1, calls_skipped=1, quarantined=1)
        assert con.execute("SELECT status, files_seen, quarantined FROM runs").fetchone() == ("completed", 3, 1)
        assert con.execute("SELECT reason FROM quarantine").fetchone()[0] == "empty file (0 bytes)"


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
        frame = analytics.dropoff(con).set_index("stage")
    assert list(frame.index) == list(demo_script.stage_names)
    assert frame["calls"].iloc[0] == 4
    assert frame.loc["greeting", ["reached", "ended_here"]].tolist() == [4, 1]
    assert frame.loc["needs", ["reached", "ended_here"]].tolist() == [2, 0]
    assert frame.loc["offer", ["reached", "ended_here", "ended_by_customer"]].tolist() == [3, 2, 2]
    assert frame.loc["offer", "share_ended"] == pytest.approx(2 / 3)
    assert frame.loc["offer", "outcomes_of_ended"] == "refusal 2"
    assert frame.loc["close", "outcomes_of_ended"] == "sale 1"
    assert (
        frame.loc["objection", "reached"] == 0
        and frame.loc["objection", "share_ended"] != frame.loc["objection", "share_ended"]
    )  # NaN: no calls reached it, no share to report
    table = analytics.dropoff_table(analytics.dropoff(duckdb.connect(str(path), read_only=True)))
    assert "Script demo-broadband v1: 4 calls" in table and "67%" in table


def test_dropoff_of_an_empty_database(tmp_path):
    path = tmp_path / "calls.duckdb"
    with store.writer(path):
        pass
    with store.reader(path) as con:
        assert analytics.dropoff_table(analytics.dropoff(con)) == "no scored calls yet"


def test_call_record_round_trips_through_json():
    original = record()
    assert CallRecord.from_json(original.to_json()) == original


def test_a_reader_on_an_older_schema_gets_an_instruction(tmp_path):
    path = tmp_path / "old.duckdb"
    with store.writer(path) as con:
        con.execute("DELETE FROM schema_version WHERE version > 1")
    with store.reader(path) as con, pytest.raises(FileNotFoundError, match="run `salescalls rescore`"):
        store.require_current_schema(con)
