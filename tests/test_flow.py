"""The nightly flow on a real inbox: real models, bad files quarantined, idempotent, resumable."""

import os
import shutil
from pathlib import Path

import duckdb
import httpx
import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from salescalls.nightly import inbox
from salescalls.nightly.flow import analyse, nightly, write_report
from tests.conftest import DEMO, DEMO_SCRIPT
from tests.test_store import record


def latest_artifact(key: str) -> str:
    """The newest artifact's markdown (the REST API directly: prefect 3.8.8's client sends null
    paging fields that its own server rejects)."""
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return response.json()[0]["data"]


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def night(tmp_path, monkeypatch, model_settings):
    """An inbox with one real call, a text file posing as audio and an empty recording."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    shutil.copy(DEMO / "c13.flac", folder / "c13.flac")
    (folder / "broken.wav").write_text("this is not audio\n" * 50)
    (folder / "empty call.ogg").write_bytes(b"")
    rows = [line for line in (DEMO / "calls.csv").read_text().splitlines() if line.startswith(("call_id", "c13"))]
    (folder / "calls.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(model_settings.models_dir))
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(tmp_path / "quarantine"))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(model_settings.script))
    monkeypatch.setenv("SALESCALLS_LANGUAGE", "en")
    return folder, tmp_path / "calls.duckdb"


@pytest.mark.models
def test_nightly_run_stores_calls_quarantines_bad_files_and_is_idempotent(night, tmp_path):
    folder, database = night
    first = nightly(str(folder), database=str(database))
    assert (first["files_seen"], first["calls_added"], first["calls_skipped"], first["quarantined"]) == (3, 1, 0, 2)

    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT file, rep, segment, crm_outcome FROM calls").fetchall() == [
        ("c13.flac", "Claire Dubois", "cold", "refusal")
    ]
    assert con.execute("SELECT count(*) FROM utterances").fetchone()[0] >= 5
    assert con.execute("SELECT end_stage, ended_by FROM call_results").fetchone() == ("greeting", "customer")
    reasons = dict(con.execute("SELECT regexp_extract(file, '[^/]+$'), reason FROM quarantine").fetchall())
    assert reasons["empty call.ogg"] == "empty file (0 bytes)"
    assert reasons["broken.wav"].startswith("not decodable audio")
    con.close()
    # the run rebuilt the HTML report, with the quarantined files and the stored call's recording
    index = Path(first["report"])
    assert index.is_file() and index.parent == Path(os.environ["SALESCALLS_REPORT_DIR"]).resolve()
    overview = index.read_text(encoding="utf-8")
    assert "empty file (0 bytes)" in overview and "not decodable audio" in overview
    assert len(list((index.parent / "audio").glob("*.mp3"))) == 1
    summary = latest_artifact("salescalls-run-summary")  # the run's summary links to the report
    assert f"[Open the report]({index.as_uri()})" in summary and "1 added" in summary
    quarantined = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert quarantined == ["broken.wav", "broken.wav.reason.txt", "empty call.ogg", "empty call.ogg.reason.txt"]
    assert sorted(p.name for p in folder.iterdir()) == ["c13.flac", "calls.csv"]

    second = nightly(str(folder), database=str(database))
    assert (second["files_seen"], second["calls_added"], second["calls_skipped"]) == (1, 0, 1)
    shutil.copy(folder / "c13.flac", folder / "c13 again (renamed copy).flac")
    third = nightly(str(folder), database=str(database))
    assert (third["calls_added"], third["calls_skipped"]) == (0, 2)  # same audio, same call
    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
    assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM runs WHERE status = 'completed'").fetchone() == (
        3,
        3,
    )


@pytest.mark.models
def test_results_staged_by_a_stopped_run_are_stored_by_the_next(night, tmp_path):
    folder, database = night
    (folder / "c13.flac").unlink()
    (folder / "broken.wav").unlink()
    staged = inbox.stage_result(tmp_path / "work", record(call_id="f" * 64))
    summary = nightly(str(folder), database=str(database))
    assert summary["calls_added"] == 1 and not staged.exists()
    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT call_id FROM calls").fetchall() == [("f" * 64,)]


def test_analyse_task_reports_unusable_audio_instead_of_raising(tmp_path, model_settings):
    bad = tmp_path / "memo.mp3"
    bad.write_text("meeting notes")
    result = analyse.fn(str(bad), "0" * 64, {}, model_settings)
    assert result["error"].startswith("not decodable audio")
    assert "staged" not in result


def test_the_nightly_report_uses_the_teams_targets_and_period(tmp_path, truth_database, demo_script):
    targets = tmp_path / "targets.yaml"
    targets.write_text("conversion: {target: 0.37, stretch: 0.61}\n", encoding="utf-8")
    site = write_report(str(truth_database), str(tmp_path / "site"), str(DEMO_SCRIPT), str(targets), "month")
    index = (Path(site["index"])).read_text(encoding="utf-8")
    assert "conversion 37%" in index and "<th>month</th>" in index
    assert (Path(site["index"]).parent / "trackers.html").is_file()  # the script's trackers
