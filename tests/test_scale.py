"""Scale-out: the nightly flow on a local Dask cluster of two worker processes, and on an external
`dask scheduler` whose worker is killed mid-run, gives the same database as a sequential run,
loads the models once per worker and keeps the run's records; a recording that kills its worker
process is quarantined and the other calls go on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from prefect.testing.utilities import prefect_test_harness

from salescalls.config import Settings, SettingsError
from salescalls.nightly.engine import engine_for
from salescalls.nightly.flow import nightly
from salescalls.pipeline import models_loaded
from tests.conftest import DEMO, crash_on_load, demo_inbox

CALLS = ("c13.flac", "c03.flac", "c06.ogg", "c05.flac")  # three mono calls and a stereo one
# What a run stores about a call's content; ids and times that depend on storing order are left out.
CONTENT = {
    "calls": "SELECT * EXCLUDE (run_id, processed_at, scored_at, timings, source, call_no) FROM calls ORDER BY call_id",
    "utterances": "SELECT * EXCLUDE (utterance_id) FROM utterances ORDER BY call_id, idx",
    "call_results": "SELECT * EXCLUDE (call_no, first_utterance_id, last_utterance_id) FROM call_results "
    "ORDER BY call_id",
    "quarantine": "SELECT regexp_extract(file, '[^/]+$'), content_hash, reason FROM quarantine ORDER BY 1",
}


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _inbox(folder):
    demo_inbox(folder, CALLS)
    (folder / "notes.wav").write_text("not audio at all\n" * 40)
    return folder


def _content(database):
    with duckdb.connect(str(database), read_only=True) as con:
        return {table: con.execute(query).fetchall() for table, query in CONTENT.items()}


def _settings_for(monkeypatch, model_settings, folder) -> None:
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(model_settings.models_dir))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(model_settings.script))
    monkeypatch.setenv("SALESCALLS_LANGUAGE", "en")
    monkeypatch.setenv("SALESCALLS_THREADS", "1")  # the same torch threads in every run: same arithmetic
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(folder / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(folder / "quarantine"))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, model_settings):
    """The sequential run every engine is compared with: (summary, content, models loaded before)."""
    folder = tmp_path_factory.mktemp("sequential")
    loaded_before = models_loaded()  # in this process, by the tests before this one
    with pytest.MonkeyPatch.context() as monkeypatch:
        _settings_for(monkeypatch, model_settings, folder)
        summary = nightly(str(_inbox(folder / "inbox")), database=str(folder / "calls.duckdb"), workers=1)
    assert (summary["calls_added"], summary["quarantined"]) == (4, 1)
    return summary, _content(folder / "calls.duckdb"), loaded_before


@pytest.mark.models
@pytest.mark.slow
def test_dask_cluster_of_two_workers_gives_the_same_database_as_a_sequential_run(
    tmp_path, monkeypatch, model_settings, sequential
):
    _settings_for(monkeypatch, model_settings, tmp_path)
    database = tmp_path / "calls.duckdb"
    summary = nightly(str(_inbox(tmp_path / "inbox")), database=str(database), workers=2)
    assert (summary["calls_added"], summary["quarantined"]) == (4, 1)
    dask = summary, _content(database)

    assert sequential[0]["engine"] == "sequential" and dask[0]["engine"] == "dask local x2"
    for table in CONTENT:
        assert dask[1][table] == sequential[1][table], table
    assert len(sequential[1]["utterances"]) > 20

    # Two worker processes ran the calls, each loading whisper and pyannote once (2 loads), not per call.
    assert dask[0]["workers"] == 2 and dask[0]["models_loaded"] == 2
    assert sequential[0]["workers"] == 1 and sequential[0]["models_loaded"] - sequential[2] <= 2
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(
            "SELECT status, engine, workers, models_loaded, peak_rss_mb, errors, quarantined FROM runs"
        ).fetchone()
    assert row[:4] == ("completed", "dask local x2", 2, 2)
    assert 100 < row[4] < 16_000  # MB: a real measurement of a process holding the models
    assert json.loads(row[5]) == {"not decodable audio": 1} and row[6] == 1


def _start(command: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.mark.models
@pytest.mark.slow
def test_an_external_scheduler_with_a_worker_killed_mid_run_stores_every_call_once(
    tmp_path, monkeypatch, model_settings, sequential
):
    """`dask scheduler` and two `dask worker` processes on loopback, as a team would start them on
    their machines; one worker is killed while it analyses a call. Dask gives that call to the
    other worker, and the database is the sequential run's, every call stored once."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    _settings_for(monkeypatch, model_settings, tmp_path)
    dask = Path(sys.executable).parent / "dask"
    # The workers report their task runs to this test's Prefect API, and never download anything.
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(Path(__file__).parents[1])}
    scheduler_file = tmp_path / "scheduler.json"
    processes = [
        _start(
            [
                str(dask),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            tmp_path / "scheduler.log",
            env,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = {}
        for name in ("w1", "w2"):
            workers[name] = _start(
                [
                    str(dask),
                    "worker",
                    address,
                    "--name",
                    name,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    ":0",
                    "--memory-limit",
                    "0",
                ],
                tmp_path / f"{name}.log",
                env,
            )
        processes += workers.values()
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            killed = {}

            def kill_a_busy_worker() -> None:
                """Once a call has run a while on a worker, kill that worker's process."""
                stop = time.monotonic() + 600
                while time.monotonic() < stop:
                    busy = {w: keys for w, keys in client.processing().items() if keys}
                    if busy:
                        time.sleep(3)  # well inside the call: models loaded, transcribing
                        names = {w: info["name"] for w, info in client.scheduler_info()["workers"].items()}
                        still = {w: keys for w, keys in client.processing().items() if keys}
                        if still:
                            worker, keys = sorted(still.items())[0]
                            killed.update(name=names[worker], keys=list(keys))
                            workers[names[worker]].kill()
                            return
                    time.sleep(0.2)

            killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
            killer.start()
            database = tmp_path / "calls.duckdb"
            summary = nightly(str(_inbox(tmp_path / "inbox")), database=str(database), dask_address=address)
            killer.join(timeout=5)
        assert killed.get("keys"), f"no worker was killed mid-call: {killed}"
        assert workers[killed["name"]].wait(timeout=10) != 0  # it really died
        assert summary["engine"] == f"dask {address}"
        assert (summary["calls_added"], summary["quarantined"]) == (4, 1), summary
        content = _content(database)
        for table in CONTENT:
            assert content[table] == sequential[1][table], table
        with duckdb.connect(str(database), read_only=True) as con:
            once = con.execute(
                "SELECT (SELECT count(DISTINCT file) FROM calls), "
                "(SELECT count(*) - count(DISTINCT (call_id, idx)) FROM utterances)"
            ).fetchone()
            status, in_flight = con.execute("SELECT status, (SELECT count(*) FROM attempts) FROM runs").fetchone()
        assert once == (4, 0) and status == "completed" and in_flight == 0  # 4 calls, no utterance twice
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.models
@pytest.mark.slow
def test_a_recording_that_kills_its_worker_is_quarantined_and_the_run_goes_on(tmp_path, monkeypatch, model_settings):
    import dask

    for name, value in crash_on_load(tmp_path / "crash", "a crasher").items():
        monkeypatch.setenv(name, value)  # the worker processes are started with this environment
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(model_settings.models_dir))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(model_settings.script))
    monkeypatch.setenv("SALESCALLS_LANGUAGE", "en")
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(tmp_path / "quarantine"))
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    inbox = demo_inbox(tmp_path / "inbox", ("c13.flac", "c03.flac"))
    shutil.copy(DEMO / "c06.ogg", inbox / "a crasher.ogg")
    database = tmp_path / "calls.duckdb"
    # Dask gives a task that killed a worker this many more tries on fresh workers (3 by default).
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        summary = nightly(str(inbox), database=str(database), workers=2)
    assert (summary["calls_added"], summary["quarantined"]) == (2, 1)
    assert summary["errors"] == {"processing failed": 1}
    with duckdb.connect(str(database), read_only=True) as con:
        (reason,) = con.execute("SELECT reason FROM quarantine").fetchone()
        files = sorted(f for (f,) in con.execute("SELECT file FROM calls").fetchall())
        status = con.execute("SELECT status FROM runs").fetchone()[0]
        in_flight = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert reason.startswith("processing failed: worker lost: KilledWorker"), reason
    assert files == ["c03.flac", "c13.flac"] and status == "completed" and in_flight == 0


def test_engine_follows_the_settings():
    assert engine_for(Settings(workers=None)).name == "sequential"
    assert engine_for(Settings(workers=1)).name == "sequential"
    local = engine_for(Settings(workers=3, threads=8))
    assert local.name == "dask local x3" and local.limit == 3
    assert local.runner.cluster_kwargs["n_workers"] == 3 and local.runner.cluster_kwargs["processes"]
    remote = engine_for(Settings(dask_address="tcp://scheduler:8786"))
    assert remote.name == "dask tcp://scheduler:8786" and remote.runner.address == "tcp://scheduler:8786"
    assert remote.limit is None  # the cluster's own thread count, asked once connected
    assert engine_for(Settings(dask_address="tcp://scheduler:8786", workers=16)).limit == 16


def test_local_workers_start_with_glibc_malloc_defaults(monkeypatch):
    # Dask's MALLOC_TRIM_THRESHOLD_=65536 made pyannote's diarization 2.2x slower in a worker.
    from distributed import Client, LocalCluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    engine = engine_for(Settings(workers=2))
    kwargs = {**engine.runner.cluster_kwargs, "n_workers": 1}
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        seen = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert list(seen.values()) == [(None, "1")]


def test_bad_worker_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("SALESCALLS_WORKERS", "many")
    with pytest.raises(SettingsError, match="SALESCALLS_WORKERS='many': expected a whole number"):
        Settings.from_env()
    monkeypatch.setenv("SALESCALLS_WORKERS", "0")
    with pytest.raises(SettingsError, match="expected 1 or more"):
        Settings.from_env()
    monkeypatch.setenv("SALESCALLS_WORKERS", "auto")
    assert Settings.from_env().workers is None
