"""Labelled transcripts before the first night, and training that never makes things worse."""

import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.learning import training
from salescalls.script import stage_versions
from tests.conftest import DEMO, DEMO_SCRIPT


def demo_corpus(path, calls=None):
    """The demo ground truth as labelled transcripts in the JSONL format of ../shared/eval/dialogues."""
    lines = []
    for truth_file in sorted(DEMO.glob("c*.json"))[:calls]:
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        turns = [
            {"speaker": "agent" if t["role"] == "rep" else "customer", "text": t["text"], "stage": t["stage"]}
            for t in sorted(truth["turns"], key=lambda t: t["start"])
        ]
        lines.append(json.dumps({"call_id": truth_file.stem, "turns": turns, "language": "en"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def invoke(*arguments, env):
    result = CliRunner().invoke(app, list(arguments), env=env)
    return result.exit_code, result.output


def environment(tmp_path):
    return {"SALESCALLS_MODELS_DIR": str(tmp_path / "models"), "SALESCALLS_SCRIPT": str(DEMO_SCRIPT)}


def test_a_team_trains_from_labelled_transcripts_before_its_first_night(tmp_path):
    env, db = environment(tmp_path), tmp_path / "new.duckdb"
    assert not db.exists()
    code, output = invoke("labels", "import", str(demo_corpus(tmp_path / "calls.jsonl")), "--db", str(db), env=env)
    assert code == 0, output
    assert "stored for demo-broadband: labelled calls 14" in output
    with store.reader(db) as con:
        calls = training.labelled_calls(con, "demo-broadband")
    assert len(calls) == 14 and all(c.call_id.startswith("corpus:calls.jsonl:") for c in calls)
    assert {"rep", "customer"} == {role for c in calls for role in c.roles}  # agent -> rep

    code, output = invoke("train", "--db", str(db), env=env)
    assert code == 0, output
    assert "labelled calls 14," in output and "vs" in output and "for cold-start:" in output
    record = stage_versions.sidecar(tmp_path / "models", "demo-broadband", 1)["training"]
    comparison = record["comparison"]
    assert comparison["folds"] == 5 and comparison["held_out_utterances"] == 177  # every labelled turn, once
    # The labels are the truth of calls like the ones held out: the candidate must beat the cold start.
    assert record["promoted"] and comparison["candidate_accuracy"] >= comparison["current_accuracy"]

    code, output = invoke("models", "stages", env=env)
    assert code == 0 and "*  1" in output and "cold-start:" in output
    code, output = invoke("models", "use", "0", env=env)  # roll back to the script's examples
    assert code == 0 and "cold-start:" in output
    assert stage_versions.active_version(tmp_path / "models", "demo-broadband") == 0
    code, output = invoke("models", "use", "7", env=env)
    assert code == 1 and "no stage model v7" in output and "saved: v1" in output


def test_a_candidate_that_measures_worse_is_kept_but_not_used(tmp_path, monkeypatch):
    env, db = environment(tmp_path), tmp_path / "calls.duckdb"
    assert invoke("labels", "import", str(demo_corpus(tmp_path / "a.jsonl", 3)), "--db", str(db), env=env)[0] == 0

    def worse(script, calls, current_calls, seed=0, **examples):
        return {
            "folds": 3,
            "over": "calls",
            "held_out_utterances": 40,
            "candidate_accuracy": 0.7,
            "current_accuracy": 0.8,
        }

    monkeypatch.setattr(training, "held_out_comparison", worse)
    code, output = invoke("train", "--db", str(db), env=env)
    assert code == 0, output
    assert "kept cold-start:" in output and "measured worse" in output and "70.0% vs 80.0%" in output
    assert "salescalls models use 1" in output
    models = tmp_path / "models"
    assert stage_versions.active_version(models, "demo-broadband") == 0
    script = __import__("salescalls.script.spec", fromlist=["load_script"]).load_script(DEMO_SCRIPT)
    assert stage_versions.load_model(models, script).name.startswith("cold-start:")  # still scoring with it
    assert invoke("models", "use", "1", env=env)[0] == 0  # a person may still choose it
    assert stage_versions.load_model(models, script).name == "demo-broadband@1:stages-v1"


def test_csv_transcripts_name_what_is_wrong(tmp_path):
    env, db = environment(tmp_path), tmp_path / "calls.duckdb"
    good = tmp_path / "labelled.csv"
    good.write_text(
        "call,speaker,text,stage\n"
        'a,rep,"Good morning, this is Sam from BrightLine.",greeting\n'
        "a,customer,Hello.,\n"
        "a,rep,How many people work in your office?,qualification\n"
        'a,customer,"Twelve, I think.",small_talk\n'
        'b,Maria,"Thanks, bye.",farewell\n'
        "b,Maria,Bye,farewell,extra\n",
        encoding="utf-8",
    )
    code, output = invoke("labels", "import", str(good), "--db", str(db), env=env)
    assert code == 0, output
    assert "labelled calls 2, turns 5, with a stage 3" in output
    assert "labelled.csv:7: 5 fields, the header has 4" in output
    assert "'small_talk' (1 turns) is not a stage of demo-broadband" in output
    with store.reader(db) as con:
        roles = con.execute("SELECT role FROM labelled_turns ORDER BY dialogue, idx").fetchall()
    assert [r[0] for r in roles] == ["rep", "customer", "rep", "customer", ""]  # a name is no role

    missing = tmp_path / "calls.csv"
    missing.write_text("file,rep,text,stage\nc01.ogg,Alex,hello,greeting\n", encoding="utf-8")
    code, output = invoke("labels", "import", str(missing), "--db", str(db), env=env)
    assert code == 1 and "missing column: a call column (call, call_id or dialogue)" in output


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "ru",
            ("сохранено для demo-broadband: размеченных звонков 2", "обучена", "модель исходов не обучена", "этапы:"),
        ),
        ("hu", ("tárolva ehhez: demo-broadband: címkézett hívások 2", "betanítva", "kimenetelmodell", "szakaszok:")),
    ],
)
def test_the_qa_loop_and_setup_commands_answer_in_the_team_s_language(tmp_path, language, expected):
    env, db = {**environment(tmp_path), "SALESCALLS_UI_LANGUAGE": language}, tmp_path / "calls.duckdb"
    labelled = tmp_path / "labelled.csv"
    labelled.write_text(
        "call,speaker,text,stage\n"
        'a,rep,"Good morning, this is Sam from BrightLine.",greeting\n'
        "a,rep,How many people work in your office?,qualification\n"
        'b,rep,"Thanks, bye.",farewell\n',
        encoding="utf-8",
    )
    outputs = []
    for command in (("labels", "import", str(labelled), "--db", str(db)), ("train", "--db", str(db))):
        code, output = invoke(*command, env=env)
        assert code == 0, output
        outputs.append(output)
    code, output = invoke("script", "check", str(DEMO_SCRIPT), env=env)
    assert code == 0, output
    outputs.append(output)
    text = "\n".join(outputs)
    for sentence in expected:
        assert sentence in text, text
    verdicts = {"ru": ("оставлена", "включена"), "hu": ("marad a(z)", "bekapcsolva")}[language]
    assert any(verdict in outputs[1] for verdict in verdicts), outputs[1]
    for english in ("stored for", "trained ", "outcome model", "kept ", "promoted:", "stages:"):
        assert english not in text, english


def _as_an_old_release_wrote_it(pickled: bytes, layers: bool) -> bytes:
    """A protocol-0 pickle (class names as text) with the module names of an older release:
    before stages.py was split (the classifier in salescalls.script.stages), and with `layers`
    False also before the package had layers (salescalls.stages, salescalls.nlp, ...)."""
    pickled = pickled.replace(b"csalescalls.script.classifier\n", b"csalescalls.script.stages\n")
    assert b"csalescalls.script.stages\nStageClassifier\n" in pickled
    if not layers:
        for module in ("stages", "outcomes", "spec"):
            pickled = pickled.replace(f"csalescalls.script.{module}\n".encode(), f"csalescalls.{module}\n".encode())
        pickled = pickled.replace(b"csalescalls.text.nlp\n", b"csalescalls.nlp\n")
        assert b"csalescalls.stages\nStageClassifier\n" in pickled
    assert b"csalescalls.script.classifier\n" not in pickled
    return pickled


@pytest.mark.parametrize("layers", [False, True], ids=["before-layers", "before-the-stages-split"])
def test_models_saved_by_older_releases_still_load(tmp_path, demo_script, layers):
    import pickle

    from salescalls.script import stages
    from salescalls.script.classifier import StageClassifier

    model = stages.train_from_script(demo_script, encoder=None)
    path = tmp_path / "model.pkl"
    path.write_bytes(_as_an_old_release_wrote_it(pickle.dumps(model, protocol=0), layers))
    loaded = stage_versions._unpickle(path, 0)
    assert type(loaded) is stages.StageModel and type(loaded.classifier) is StageClassifier
    texts, roles = ["Good morning, this is Anna from BrightLine.", "Thanks, goodbye."], ["rep", "customer"]
    assert np.array_equal(loaded.emissions(texts, roles), model.emissions(texts, roles))
    assert loaded.label(texts, roles) == model.label(texts, roles)


def test_an_old_classifier_s_text_preprocessor_still_loads():
    """Classifiers saved before normalise_text moved to text/nlp.py name it salescalls.stages."""
    import pickle

    from salescalls.script.classifier import text_features
    from salescalls.text.nlp import normalise_text

    old = pickle.dumps(text_features(), protocol=0).replace(b"csalescalls.text.nlp\n", b"csalescalls.stages\n")
    assert b"csalescalls.stages\nnormalise_text\n" in old
    features = stage_versions._ModelUnpickler(io.BytesIO(old)).load()
    assert all(vectorizer.preprocessor is normalise_text for _, vectorizer in features.transformer_list)
