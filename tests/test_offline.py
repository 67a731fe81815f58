"""The product makes no network connection at run time: the whole nightly run (Prefect's local
API included), the report and the analytics run with every non-loopback connection refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import DEMO, ROOT

GUARD = textwrap.dedent(
    """
    # Loaded at interpreter start (sitecustomize): refuse, and log, any connection or name lookup
    # that leaves this machine. Loopback (Prefect's temporary local API) and Unix sockets are allowed.
    import ipaddress, os, socket

    LOG = os.environ["SALESCALLS_NETWORK_LOG"]

    def _log(what):
        with open(LOG, "a", encoding="utf-8") as handle:
            handle.write(what + "\\n")

    def _local(host):
        if host in ("localhost", "", None):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
        except ValueError:
            return False

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _log(f"connect {address}")
            raise OSError(f"network refused by the test: {address}")

    def connect(self, address):
        _check(self, address)
        return _connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host if isinstance(host, str) else (host.decode() if host else host)):
            _log(f"lookup {host}")
            raise socket.gaierror(f"name lookup refused by the test: {host}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    """
)


@pytest.mark.models
def test_nightly_run_report_and_analytics_open_no_outbound_connection(tmp_path, model_settings):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(DEMO / "c13.flac", inbox / "c13.flac")
    rows = [line for line in (DEMO / "calls.csv").read_text().splitlines() if line.startswith(("call_id", "c13"))]
    (inbox / "calls.csv").write_text("\n".join(rows) + "\n")
    log = tmp_path / "network.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(guard), str(ROOT)]),
        "SALESCALLS_NETWORK_LOG": str(log),
        "SALESCALLS_MODELS_DIR": str(model_settings.models_dir),
        "SALESCALLS_SCRIPT": str(model_settings.script),
        "SALESCALLS_WORK_DIR": str(tmp_path / "work"),
        "SALESCALLS_QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "SALESCALLS_REPORT_DIR": str(tmp_path / "report"),
        "SALESCALLS_DB": str(tmp_path / "calls.duckdb"),
    }
    for variable in ("PYANNOTE_METRICS_ENABLED", "PREFECT_SERVER_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(variable, None)  # the product must switch telemetry off itself, not rely on the caller
    cli = [sys.executable, "-m", "salescalls.cli"]
    for command in (["run", str(inbox), "--language", "en"], ["rating"], ["plan", "Claire Dubois"], ["report"]):
        result = subprocess.run([*cli, *command], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    assert (tmp_path / "report" / "index.html").is_file()
    assert not log.exists(), log.read_text(encoding="utf-8")
