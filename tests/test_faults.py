"""Faults: a run killed with SIGKILL midway, and a second run started while one is working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from salescalls.inbox import RunInProgress, run_lock
from tests.conftest import ROOT, demo_inbox

HOLD = (
    "import sys, time\nfrom salescalls.inbox import run_lock\n"
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


CALLS = ("c13.flac", "c03.flac", "c06.ogg", "c12.flac")  # the shortest mono demo calls


@pytest.mark.models
def test_a_run_killed_midway_is_completed_by_the_next_with_every_call_once(tmp_path, model_settings):
    inbox = demo_inbox(tmp_path / "inbox", CALLS)
    database = tmp_path / "calls.duckdb"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SALESCALLS_MODELS_DIR": str(model_settings.models_dir),
        "SALESCALLS_SCRIPT": str(model_settings.script),
        "SALESCALLS_WORK_DIR": str(tmp_path / "work"),
        "SALESCALLS_QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "SALESCALLS_DB": str(database),
        "SALESCALLS_REPORT_DIR": "off",
    }
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
