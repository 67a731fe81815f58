"""Scheduling: `salescalls serve` registers a cron deployment and runs it; prefect.yaml deploys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import httpx
import pytest
import yaml
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from salescalls.nightly.flow import nightly, schedule
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def api():
    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def _deployment(api: str, name: str, wait: float = 0) -> dict | None:
    deadline = time.monotonic() + wait
    while True:
        response = httpx.get(f"{api}/deployments/name/salescalls-nightly/{name}", timeout=30)
        if response.status_code == 200:
            return response.json()
        if time.monotonic() > deadline:
            return None
        time.sleep(1)


def test_serve_registers_a_cron_deployment_whose_runs_process_the_inbox(api, tmp_path, model_settings):
    inbox = tmp_path / "inbox with space"
    inbox.mkdir()
    (inbox / "memo.wav").write_text("minutes of the meeting\n" * 30)  # quarantined: quick, needs no model
    database = tmp_path / "calls.duckdb"
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PYTHONPATH": str(ROOT),
        "SALESCALLS_SCRIPT": str(model_settings.script),
        "SALESCALLS_WORK_DIR": str(tmp_path / "work"),
        "SALESCALLS_QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "SALESCALLS_REPORT_DIR": "off",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    command = [sys.executable, "-m", "salescalls.cli", "serve", str(inbox), "--cron", "30 2 * * 1-5"]
    command += ["--timezone", "Europe/Budapest", "--name", "test-night", "--db", str(database)]
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deployment = _deployment(api, "test-night", wait=120)
        assert deployment is not None, "the deployment never appeared"
        (rule,) = deployment["schedules"]
        assert rule["schedule"]["cron"] == "30 2 * * 1-5" and rule["schedule"]["timezone"] == "Europe/Budapest"
        assert rule["active"]
        assert deployment["parameters"] == {"inbox_dir": str(inbox.resolve()), "database": str(database.resolve())}

        # A run now, as the schedule would start one: the served process picks it up and runs the flow.
        run = run_deployment("salescalls-nightly/test-night", timeout=300, poll_interval=2)
        assert run.state.is_completed(), run.state
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    with duckdb.connect(str(database), read_only=True) as con:
        runs = con.execute("SELECT status, files_seen, quarantined, errors FROM runs").fetchall()
    assert runs == [("completed", 1, 1, '{"not decodable audio": 1}')]
    assert (tmp_path / "quarantine" / "memo.wav.reason.txt").is_file()


def test_serve_refuses_without_a_server_an_unreachable_one_or_a_bad_schedule(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PYTHONPATH": str(ROOT)}
    serve = [sys.executable, "-m", "salescalls.cli", "serve", str(tmp_path)]
    result = subprocess.run(serve, env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "PREFECT_API_URL is not set" in result.stderr
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # never contacted: the schedule is checked first
    result = subprocess.run([*serve, "--cron", "2 * *"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and 'Invalid cron string: "2 * *"' in result.stderr
    result = subprocess.run([*serve, "--timezone", "Mars/Olympus"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Invalid timezone" in result.stderr
    result = subprocess.run(serve, env=env, capture_output=True, text=True, cwd=ROOT)  # nothing listens there
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot reach the Prefect server at http://127.0.0.1:9/api" in result.stderr


def test_prefect_yaml_deploys_the_nightly_flow_on_its_schedule(api, tmp_path):
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (entry,) = spec["deployments"]
    assert entry["entrypoint"] == "flows/nightly.py:nightly"
    nightly.validate_parameters(entry["parameters"])  # names the flow's own parameters
    for rule in entry["schedules"]:
        schedule(rule["cron"], rule["timezone"])

    env = {**os.environ, "PREFECT_API_URL": api}
    pool = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "create", "salescalls", "--type", "process"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = deploy.stdout + deploy.stderr
    # prefect 3.8.8's CLI, after creating the deployment, asks for the pool's online workers with null
    # paging fields that its own server rejects (422); the deployment is made by then.
    known_bug = "workers/filter" in output and "422" in output
    assert deploy.returncode == 0 or known_bug, output
    assert "Deployment 'salescalls-nightly/nightly' successfully created" in output
    deployment = _deployment(api, entry["name"])
    assert deployment["work_pool_name"] == "salescalls"
    assert deployment["schedules"][0]["schedule"]["cron"] == entry["schedules"][0]["cron"]
    assert deployment["parameters"] == entry["parameters"]
