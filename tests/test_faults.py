"""Faults: a run killed with SIGKILL midway, a second run started while one is working, and a
recording that kills the run itself every time."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from salescalls.nightly.inbox import RunInProgress, run_lock
from tests.conftest import DEMO, ROOT, crash_on_load, demo_inbox

HOLD = (
    "import sys, time\nfrom salescalls.nightly.inbox import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)"
)


def test_one_run_at_a_time_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    database = tmp_path / "calls.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunInProgress, match="another nightly run"), run_lock(database):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(database):  # the kernel released it with the process
        pass


def _run_env(tmp_path, model_settings, database, **extra: str) -> dict[str, str]:
    """The environment of a `salescalls run` in a child process, with its files under tmp_path."""
    return {
        **os.environ,
        "SALESCALLS_MODELS_DIR": str(model_settings.models_dir),
        "SALESCALLS_SCRIPT": str(model_settings.script),
        "SALESCALLS_WORK_DIR": str(tmp_path / "work"),
        "SALESCALLS_QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "SALESCALLS_DB": str(database),
        "SALESCALLS_REPORT_DIR": "off",
        **extra,
    }


CALLS = ("c13.flac", "c03.flac", "c06.ogg", "c12.flac")  # the shortest mono demo calls


@pytest.mark.models
def test_a_run_killed_midway_is_completed_by_the_next_with_every_call_once(tmp_path, model_settings):
    inbox = demo_inbox(tmp_path / "inbox", CALLS)
    database = tmp_path / "calls.duckdb"
    env = _run_env(tmp_path, model_settings, database, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "salescalls.cli", "run", str(inbox), "--language", "en"]
    # The whole job (CLI, Prefect's temporary server) in its own process group, killed as a crash would.
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline, seen = time.monotonic() + 600, []
    for line in first.stdout:
        seen.append(line)
        if f"[1/{len(CALLS)}]" in line:  # one call stored, the others not yet
            os.killpg(first.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(seen[-20:])
    with duckdb.connect(str(database), read_only=True) as con:
        stored_before = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    assert 1 <= stored_before < len(CALLS)

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        files = sorted(f for (f,) in con.execute("SELECT file FROM calls").fetchall())
        duplicates = con.execute("SELECT count(*) - count(DISTINCT (call_id, idx)) FROM utterances").fetchone()[0]
        results = con.execute("SELECT count(*), count(DISTINCT call_id) FROM call_results").fetchone()
        empty = con.execute(
            "SELECT count(*) FROM calls c WHERE NOT EXISTS (SELECT 1 FROM utterances u WHERE u.call_id = c.call_id)"
        ).fetchone()[0]
        runs = con.execute("SELECT status, calls_added FROM runs ORDER BY started_at").fetchall()
    assert files == sorted(CALLS) and duplicates == 0 and results == (len(CALLS), len(CALLS)) and empty == 0
    assert runs == [("interrupted", 0), ("completed", len(CALLS) - stored_before)]
    assert not list((tmp_path / "work").glob("*.json"))  # nothing left staged


@pytest.mark.models
def test_a_recording_that_kills_the_run_is_set_aside_after_two_killed_runs(tmp_path, model_settings):
    """Without this, a file that crashes the process (a decoder bug, the OOM killer) would stop
    every night at the same place and nothing behind it would ever be analysed."""
    inbox = demo_inbox(tmp_path / "inbox", ("c13.flac",))
    shutil.copy(DEMO / "c03.flac", inbox / "a crasher.flac")  # sorts first: it is analysed first
    database = tmp_path / "calls.duckdb"
    env = _run_env(tmp_path, model_settings, database, **crash_on_load(tmp_path / "crash", "a crasher"))
    command = [sys.executable, "-m", "salescalls.cli", "run", str(inbox), "--language", "en"]
    for night in range(2):
        log = tmp_path / f"night{night}.log"
        with log.open("w") as output:  # a file, not a pipe: the dead run's children would hold a pipe open
            killed = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
            killed.wait(timeout=600)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)  # what the dead run had started (Prefect's local API)
        assert killed.returncode == -signal.SIGKILL, log.read_text()[-3000:]

    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        files = con.execute("SELECT file FROM calls").fetchall()
        (reason,) = con.execute("SELECT reason FROM quarantine WHERE file LIKE '%a crasher.flac'").fetchone()
        runs = con.execute("SELECT status, calls_added, quarantined, errors FROM runs ORDER BY started_at").fetchall()
        in_flight = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert files == [("c13.flac",)]
    assert reason.startswith("killed the run: 2 runs stopped while analysing this recording")
    assert [row[0] for row in runs] == ["interrupted", "interrupted", "completed"]
    assert runs[2][1:] == (1, 1, '{"killed the run": 1}')
    assert in_flight == 0
    assert (tmp_path / "quarantine" / "a crasher.flac").is_file() and not (inbox / "a crasher.flac").exists()
