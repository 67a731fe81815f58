"""The bad-input corpus, end to end through the nightly flow: every file and CRM row that cannot
be used gets a one-line reason, the batch goes on, and nothing already stored changes.

The corpus is made here from the demo's real recordings with ffmpeg (cut, resampled, upmixed,
overdriven) plus files no recording should be (empty, text, silence, links)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.nightly.flow import nightly
from salescalls.script.spec import ScriptError
from tests.conftest import DEMO
from tests.test_store import record

SQL_REP = 'O\'Brien "Bobby"; DROP TABLE calls; --'
LOUD = "Ügyfél – звонок №7 (loud).flac"
CSV = f"""call_id,file,rep,started_at,segment,campaign,crm_outcome
x1,six channels.wav,"{SQL_REP.replace('"', '""')}",2026-11-20 10:00,Warm,spring,sale
x2,../../etc/passwd,Mallory,2026-11-20 10:00,cold,spring,sale
x3,/srv/elsewhere/odd rate 96k.flac,Mallory,2026-11-20 10:00,cold,spring,sale
x4,odd rate 11025.flac,Ann,31/02/2026,lukewarm,spring,callback
x5,odd rate 96k.flac,Bob,2026-11-21 09:00,cold
x6,{LOUD},Zoë,2026-11-21 11:00,hot,spring,refusal,surplus
x7,{LOUD},Zoë Ödön-Петрова,2026-11-21 11:00,hot,spring,refusal
,,,,,,
x8,"unclosed quote.flac,Eve,2026-11-22 10:00,cold,spring,sale
"""
QUARANTINED = {  # file -> how its one-line reason starts
    "empty.wav": "empty file (0 bytes)",
    "cut off.wav": "truncated: the file declares 32.1 s but holds",
    "notes.mp3": "not decodable audio",
    "an hour of silence.flac": "silent: 3600 s with nothing louder than",
    "outside link.flac": "symbolic link to a file outside the inbox",
    "dangling.ogg": "broken symbolic link",
}
STORED = ("six channels.wav", "odd rate 11025.flac", "odd rate 96k.flac", LOUD)


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, arguments)], check=True)


def make_corpus(inbox: Path, outside: Path) -> None:
    inbox.mkdir()
    outside.mkdir()
    (inbox / "empty.wav").write_bytes(b"")
    ffmpeg("-i", DEMO / "c13.flac", outside / "whole.wav")
    whole = (outside / "whole.wav").read_bytes()
    (inbox / "cut off.wav").write_bytes(whole[: len(whole) * 2 // 5])  # a copy interrupted at 40 %
    (inbox / "notes.mp3").write_text("Call notes: ring back on Tuesday.\n" * 40, encoding="utf-8")
    ffmpeg("-i", DEMO / "c03.flac", "-ac", "6", inbox / "six channels.wav")
    ffmpeg("-i", DEMO / "c12.flac", "-ar", "11025", inbox / "odd rate 11025.flac")
    ffmpeg("-i", DEMO / "c06.ogg", "-ar", "96000", inbox / "odd rate 96k.flac")
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3600", inbox / "an hour of silence.flac")
    ffmpeg("-i", DEMO / "c13.flac", "-af", "volume=30dB", inbox / LOUD)  # clipped hard
    ffmpeg("-i", DEMO / "c10.ogg", outside / "elsewhere.flac")
    (inbox / "outside link.flac").symlink_to(outside / "elsewhere.flac")
    (inbox / "dangling.ogg").symlink_to(outside / "gone.ogg")
    (inbox / "zz link to 11025.flac").symlink_to("odd rate 11025.flac")  # inside: the same call again
    (inbox / "calls.csv").write_text(CSV, encoding="utf-8")


@pytest.fixture
def settings_env(tmp_path, monkeypatch, model_settings):
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(model_settings.models_dir))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(model_settings.script))
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(tmp_path / "quarantine"))
    monkeypatch.setenv("SALESCALLS_LANGUAGE", "en")
    database = tmp_path / "calls.duckdb"
    with store.writer(database) as con:  # a call stored by an earlier night, which must come through untouched
        store.save_call(con, record(call_id="e" * 64, rep="Earlier Night"), "earlier-run")
    return database


def stored_rows(database: Path, call_id: str) -> dict:
    with duckdb.connect(str(database), read_only=True) as con:
        return {
            table: con.execute(f"SELECT * EXCLUDE (call_no) FROM {table} WHERE call_id = ?", [call_id]).fetchall()
            for table in ("calls", "call_results")
        } | {"utterances": con.execute("SELECT * FROM utterances WHERE call_id = ?", [call_id]).fetchall()}


@pytest.mark.models
def test_bad_input_corpus_through_the_nightly_flow(tmp_path, settings_env):
    database = settings_env
    inbox, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    make_corpus(inbox, outside)
    before = stored_rows(database, "e" * 64)

    summary = nightly(str(inbox), database=str(database))

    assert summary["files_seen"] == 11
    assert (summary["calls_added"], summary["calls_skipped"], summary["quarantined"]) == (4, 1, 6)
    assert stored_rows(database, "e" * 64) == before  # nothing stored earlier changed
    with duckdb.connect(str(database), read_only=True) as con:
        reasons = dict(con.execute("SELECT regexp_extract(file, '[^/]+$'), reason FROM quarantine").fetchall())
        columns = "file, rep, segment, started_at, channels, sample_rate"
        calls = {row[0]: row[1:] for row in con.execute(f"SELECT {columns} FROM calls").fetchall()}
        run = con.execute("SELECT status, errors FROM runs WHERE run_id = ?", [summary["run_id"]]).fetchone()
    assert set(reasons) == set(QUARANTINED)
    for name, start in QUARANTINED.items():
        assert reasons[name].startswith(start), (name, reasons[name])
        assert "\n" not in reasons[name]
        assert (tmp_path / "quarantine" / f"{name}.reason.txt").is_file()
    assert (outside / "elsewhere.flac").is_file()  # the link was moved aside, never the file it pointed to

    # Usable recordings are stored whatever their channels, rate, level or name.
    assert set(calls) == {*STORED, "eeeeee.wav"}
    assert calls["six channels.wav"][:2] == (SQL_REP, "warm") and calls["six channels.wav"][3] == 6
    assert calls["odd rate 11025.flac"][4] == 11025 and calls["odd rate 96k.flac"][4] == 96000
    ann = calls["odd rate 11025.flac"]
    assert ann[0] == "Ann" and ann[1] is None and ann[2].date() == ann[2].today().date()  # bad date, segment dropped
    assert calls["odd rate 96k.flac"][0] is None  # its row had too few fields
    assert calls[LOUD][:2] == ("Zoë Ödön-Петрова", "hot")  # the second row: the first had a surplus field

    assert run[0] == "completed"
    errors = json.loads(run[1])
    assert errors == {
        "empty file": 1,
        "truncated": 1,
        "not decodable audio": 1,
        "silent": 1,
        "symbolic link to a file outside the inbox": 1,
        "broken symbolic link": 1,
        "CRM metadata problems": 7,
    }
    monitor = CliRunner().invoke(app, ["runs", "--db", str(database)])
    assert monitor.exit_code == 0, monitor.output
    assert "11 files: 4 added, 1 already stored, 6 quarantined" in monitor.output
    assert "on sequential (1 worker," in monitor.output and "truncated: 1" in monitor.output
    # The rep whose name is an SQL injection is a rep like any other in the report.
    site = Path(summary["report"]).parent
    assert "DROP TABLE calls" in (site / "reps.html").read_text(encoding="utf-8")
    assert "O&#39;Brien &#34;Bobby&#34;; DROP TABLE calls; --" in (site / "reps.html").read_text(encoding="utf-8")


def test_every_bad_crm_row_gets_its_own_line(tmp_path):
    from salescalls.nightly.inbox import read_metadata

    (tmp_path / "calls.csv").write_text(CSV, encoding="utf-8")
    metadata = read_metadata(tmp_path / "calls.csv")
    lines = "\n".join(metadata.problems)
    assert "calls.csv:3: file '../../etc/passwd' is not a name inside the inbox; row ignored" in lines
    assert "calls.csv:4: file '/srv/elsewhere/odd rate 96k.flac' is not a name inside the inbox" in lines
    assert "calls.csv:5: started_at '31/02/2026' is not a date and time" in lines
    assert "calls.csv:5: segment 'lukewarm' is not one of cold, warm, hot; not used" in lines
    assert "calls.csv:6: 5 fields where the header has 7; row ignored" in lines
    assert "calls.csv:7: 8 fields where the header has 7; row ignored" in lines
    assert "not valid CSV (unexpected end of data); the rest of the file is ignored" in lines
    assert len(metadata.problems) == 7
    assert set(metadata.rows) == {"six channels.wav", "odd rate 11025.flac", LOUD}

    (tmp_path / "excel.csv").write_bytes("file,rep\nзвонок.flac,Пётр Иванов\n".encode("cp1251"))
    excel = read_metadata(tmp_path / "excel.csv")
    assert excel.rows == {"звонок.flac": {"file": "звонок.flac", "rep": "Пётр Иванов"}}
    assert "not UTF-8; read as cp1251" in excel.problems[0]


def test_a_malformed_script_stops_the_run_before_anything_is_touched(tmp_path, settings_env, monkeypatch):
    database = settings_env
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "c13.flac").write_bytes((DEMO / "c13.flac").read_bytes())
    bad = tmp_path / "script.yaml"
    bad.write_text("id: demo\nversion: 2\nstages:\n  - name: greeting\n    examples: [unclosed\n", encoding="utf-8")
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(bad))
    before = stored_rows(database, "e" * 64)
    with pytest.raises(ScriptError) as raised:
        nightly(str(inbox), database=str(database))
    assert str(bad) in str(raised.value) and "\n" not in str(raised.value).strip()
    result = CliRunner().invoke(app, ["run", str(inbox), "--db", str(database)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and str(bad) in result.output
    assert stored_rows(database, "e" * 64) == before  # the stored call untouched
    assert sorted(p.name for p in inbox.iterdir()) == ["c13.flac"]  # not quarantined: the file is fine
    with duckdb.connect(str(database), read_only=True) as con:  # both refusals recorded, for a monitor
        refused = con.execute("SELECT status, message FROM runs WHERE message LIKE 'ScriptError%'").fetchall()
    assert [status for status, _ in refused] == ["failed", "failed"] and str(bad) in refused[0][1]


def test_missing_models_fail_the_run_with_one_line_and_keep_the_recording(tmp_path, settings_env, monkeypatch):
    database = settings_env
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "c13.flac").write_bytes((DEMO / "c13.flac").read_bytes())
    (tmp_path / "no models").mkdir()
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(tmp_path / "no models"))
    before = stored_rows(database, "e" * 64)
    result = CliRunner().invoke(app, ["run", str(inbox), "--db", str(database)])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: faster-whisper 'base' weights not found") and "salescalls models setup" in message
    assert sorted(p.name for p in inbox.iterdir()) == ["c13.flac"]  # waits for the models, not quarantined
    assert not (tmp_path / "quarantine").exists() or not any((tmp_path / "quarantine").iterdir())
    assert stored_rows(database, "e" * 64) == before
    with duckdb.connect(str(database), read_only=True) as con:
        status, failure = con.execute("SELECT status, message FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
    assert status == "failed" and "faster-whisper 'base' weights not found" in failure
    monitor = CliRunner().invoke(app, ["runs", "--db", str(database)])
    assert monitor.exit_code == 3  # the latest run failed: a monitor alerts
    assert " failed " in monitor.output and "faster-whisper 'base' weights not found" in monitor.output
    assert os.path.isfile(inbox / "c13.flac")


@pytest.mark.models
def test_a_model_failure_on_one_call_quarantines_that_call_and_the_run_goes_on(tmp_path, settings_env, monkeypatch):
    """Fault injection: diarization fails on the first call (as an out-of-memory error would)."""
    from salescalls.speech import diarize

    database = settings_env
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("c03.flac", "c13.flac"):
        (inbox / name).write_bytes((DEMO / name).read_bytes())
    real, calls = diarize.pyannote_turns, []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CPU out of memory: tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(diarize, "pyannote_turns", fails_once)
    summary = nightly(str(inbox), database=str(database))
    assert (summary["calls_added"], summary["quarantined"]) == (1, 1)
    assert summary["errors"] == {"processing failed": 1}
    with duckdb.connect(str(database), read_only=True) as con:
        (reason,) = con.execute("SELECT reason FROM quarantine WHERE file LIKE '%c03.flac'").fetchone()
        assert con.execute("SELECT file FROM calls WHERE file LIKE 'c%'").fetchall() == [("c13.flac",)]
        assert con.execute("SELECT status FROM runs WHERE run_id = ?", [summary["run_id"]]).fetchone() == ("completed",)
    assert reason == "processing failed: RuntimeError: CPU out of memory: tried to allocate 2.00 GiB"
    assert stored_rows(database, "e" * 64)["calls"]  # the earlier call is still there
