"""The QA loop end to end: review -> label -> train -> rescore changes a stored call's stages."""

import csv
import dataclasses
import io
import json

import pytest
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.pipeline import label_stages
from salescalls.records import CallRecord, CallScore, ScoredUtterance
from salescalls.script import stage_versions, stages

CALL = [
    ("rep", "Good morning, this is Sam from BrightLine."),
    ("customer", "Hi, yes."),
    ("rep", "How many people work in your office?"),
    ("customer", "About ten of us."),
    ("rep", "Let me run the SLA matrix against your floor plan."),  # team jargon the script never saw
    ("rep", "Our fibre plan costs forty nine euros a month."),
    ("customer", "That sounds fine, send me the contract."),
    ("rep", "Thanks, goodbye."),
]
JARGON = 4


def stored_call(script, call_id: str = "f" * 64) -> CallRecord:
    utterances = tuple(
        ScoredUtterance("ch0" if role == "rep" else "ch1", role, 2.0 * i, 2.0 * i + 1.5, text, "", 0.0)
        for i, (role, text) in enumerate(CALL)
    )
    scored, score = label_stages(utterances, script, stages.train_from_script(script), "en")
    return CallRecord(
        call_id=call_id,
        file="call.wav",
        duration=20.0,
        channels=2,
        sample_rate=8000,
        codec="pcm_s16le",
        language="en",
        script_id=script.id,
        script_version=script.version,
        stage_model=stages.train_from_script(script).name,
        whisper_model="base",
        diarization="channels",
        role_method="channel",
        role_confidence=1.0,
        utterances=scored,
        score=score,
    )


@pytest.fixture
def database(tmp_path, demo_script, monkeypatch):
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SALESCALLS_SCRIPT", str(demo_script_path()))
    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, stored_call(demo_script))
    return path


def demo_script_path():
    from tests.conftest import DEMO_SCRIPT

    return DEMO_SCRIPT


def stage_of(path, idx: int) -> tuple[str, str]:
    with store.reader(path) as con:
        return con.execute(
            "SELECT u.stage, c.stage_model FROM utterances u JOIN calls c USING (call_id) WHERE idx = ?", [idx]
        ).fetchone()


def test_a_correction_changes_the_prediction_after_retraining(database, tmp_path):
    runner = CliRunner()
    review_file = tmp_path / "review.csv"
    result = runner.invoke(app, ["review", "--db", str(database), "-o", str(review_file), "--limit", "100"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(review_file.read_text())))
    assert len(rows) == len(CALL) - 0 and all(row["label"] == "" for row in rows)
    assert [float(r["confidence"]) for r in rows] == sorted(float(r["confidence"]) for r in rows)  # least sure first

    before, model_before = stage_of(database, JARGON)
    corrected = "needs" if before != "needs" else "qualification"
    for row in rows:  # the reviewer confirms every stage but corrects the jargon line
        row["label"] = corrected if int(row["idx"]) == JARGON else row["stage"]
    with review_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)

    result = runner.invoke(app, ["labels", "import", str(review_file), "--db", str(database), "--by", "qa"])
    assert result.exit_code == 0, result.output
    assert f"labels stored {len(CALL)}," in result.output

    result = runner.invoke(app, ["train", "--db", str(database)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "models" / "stages" / "demo-broadband" / "v1" / "model.json").read_text())
    assert sidecar["training"]["labelled_calls"] == 1 and sidecar["training"]["labelled_utterances"] == len(CALL)
    assert set(sidecar["libraries"]) >= {"scikit-learn", "spacy"} and len(sidecar["training"]["data_sha256"]) == 64
    by_meaning = sidecar["meaning_only_for_other_languages"]
    assert sidecar["decoder"]["for_other_languages"] == ("marginal" if by_meaning else None)

    assert stage_of(database, JARGON) == (before, model_before)  # nothing changes until rescoring
    result = runner.invoke(app, ["rescore", "--db", str(database)])
    assert result.exit_code == 0, result.output
    after, model_after = stage_of(database, JARGON)
    assert after == corrected != before
    assert model_after == "demo-broadband@1:stages-v1" != model_before  # analytics can tell which model scored

    runner.invoke(app, ["train", "--db", str(database)])
    assert (tmp_path / "models" / "stages" / "demo-broadband" / "v2" / "model.json").is_file()  # versions bump


def test_bad_label_rows_are_reported_and_good_ones_kept(database, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            [
                {"call_id": "f" * 64, "idx": 0, "label": "greeting"},
                {"call_id": "f" * 64, "idx": 1, "label": "small_talk"},
                {"call_id": "f" * 64, "idx": 99, "label": "offer"},
                {"call_id": "nope", "idx": "x", "label": "offer"},
                {"call_id": "f" * 64, "idx": 2, "label": ""},
            ]
        )
    )
    result = CliRunner().invoke(app, ["labels", "import", str(labels), "--db", str(database)])
    assert result.exit_code == 0
    assert "labels stored 1, rows without a label 1, rejected 3" in result.output
    assert "'small_talk' is not a stage of demo-broadband v1" in result.output
    assert "no utterance 99" in result.output and "whole-number idx" in result.output


def test_a_file_that_is_not_a_review_file_names_the_missing_columns(database, tmp_path):
    crm = tmp_path / "calls.csv"
    crm.write_text("call_id,file,rep\nc01,c01.ogg,Ann\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["labels", "import", str(crm), "--db", str(database)])
    assert result.exit_code == 1, result.output
    assert "no idx, label column (it has: call_id, file, rep)" in result.output


def test_train_without_labels_says_what_to_do(database):
    result = CliRunner().invoke(app, ["train", "--db", str(database)])
    assert result.exit_code == 1 and "import labels first" in result.output


def test_a_model_for_other_stages_is_not_used(tmp_path, demo_script):
    model = stages.train(demo_script, [stages.LabelledCall(("Hello.",), ("rep",), ("greeting",), "en")])
    stage_versions.save_model(model, tmp_path, {"note": "test"})
    assert stage_versions.load_model(tmp_path, demo_script).name == "demo-broadband@1:stages-v1"
    changed = dataclasses.replace(demo_script, stages=demo_script.stages[:-1])
    assert stage_versions.load_model(tmp_path, changed).name.startswith("cold-start:")


def test_off_script_utterances_do_not_count_as_stages(demo_script):
    from salescalls.script.score import score_call

    utterances = [
        ScoredUtterance("a", "rep", 0, 1, "Hello from BrightLine.", "greeting", 0.9),
        ScoredUtterance("a", "rep", 1, 2, "Nice weather.", "off_script", 0.2),
    ]
    score: CallScore = score_call(utterances, demo_script)
    assert score.stages_reached == ("greeting",) and score.end_stage == "greeting"


def test_rescoring_in_batches_stores_what_rescoring_call_by_call_stores(tmp_path, demo_script):
    """Batches of 3 over 7 calls (a partial last batch, a call with no utterances) give every
    utterance, call result and call the same values as scoring each call on its own."""
    from dataclasses import replace

    from salescalls.learning import review

    model = stages.train_from_script(demo_script)
    records = []
    for n in range(7):
        record = stored_call(demo_script, call_id=f"{n:064x}")
        kept = record.utterances[: n + 1] if n < 6 else ()
        records.append(replace(record, utterances=tuple(replace(u, stage="", confidence=0.0) for u in kept)))
    paths = {}
    for batch in (3, 1):
        paths[batch] = tmp_path / f"batch{batch}.duckdb"
        with store.writer(paths[batch]) as con:
            store.save_script(con, demo_script)
            for record in records:
                store.save_call(con, record)
            count, name = review.rescore(con, demo_script, tmp_path / "models", batch=batch)
        assert count == 7 and name == model.name
    tables = {}
    for batch, path in paths.items():
        with store.reader(path) as con:
            tables[batch] = (
                con.execute("SELECT call_id, idx, stage, confidence FROM utterances ORDER BY ALL").fetchall(),
                con.execute(
                    "SELECT call_id, end_stage, ended_by, stages_reached, stages_skipped, predicted_outcome "
                    "FROM call_results ORDER BY call_id"
                ).fetchall(),
                con.execute("SELECT call_id, stage_model, script_version FROM calls ORDER BY call_id").fetchall(),
            )
    assert tables[3] == tables[1]
    utterances, results, calls = tables[3]
    assert len(results) == 7 and all(stage for _, _, stage, _ in utterances)  # every utterance got a stage
    expected = [label_stages(r.utterances, demo_script, model, "en")[0] for r in records]
    assert [row[2] for row in utterances] == [u.stage for scored in expected for u in scored]
