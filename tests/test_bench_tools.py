"""The speed benches' own helpers: how runs are named, how a night-sized inbox is made, the JSON."""

import json

import numpy as np
import pytest
import soundfile as sf

from bench import linear, throughput
from bench.report import stamp, write_json
from salescalls.speech import audio
from tests.conftest import write_tone


def test_runs_are_engine_compute_and_workers():
    assert throughput.parse_run("openai:1") == ("openai", None, 1, False)
    assert throughput.parse_run("faster/float32:2") == ("faster", "float32", 2, False)
    assert throughput.parse_run("faster/float32:2:spin") == ("faster", "float32", 2, True)
    for bad in ("faster", "faster:0", "faster:two", "faster:2:fast"):
        with pytest.raises(SystemExit, match="ENGINE\\[/COMPUTE\\]:WORKERS"):
            throughput.parse_run(bad)


def test_copies_are_distinct_calls_with_the_same_speech(tmp_path):
    source = write_tone(tmp_path / "call.wav", seconds=1.0, channels=2)
    made = throughput.with_copies([source], 3, tmp_path)
    assert len(made) == 3 and made[0] == source
    hashes = {audio.content_hash(path) for path in made}
    assert len(hashes) == 3  # the nightly flow keys calls by the file's hash: none is skipped
    original = sf.read(source, dtype="float32")[0]
    for k, path in enumerate(made[1:], start=1):
        shifted = sf.read(path, dtype="float32")[0]
        assert shifted.shape == (original.shape[0] + k, 2) and not shifted[:k].any()
        # The same samples after the k silent ones (loading normalises the peak; FLAC keeps 16 bits).
        np.testing.assert_allclose(shifted[k:] / abs(shifted).max(), original / abs(original).max(), atol=1e-3)


def test_a_long_call_has_the_asked_length(tmp_path):
    path = linear.long_call(tmp_path / "long.flac", 0.5)
    samples = audio.load(path)
    assert samples.shape == (2, 30 * audio.SAMPLE_RATE) and not audio.is_dual_mono(samples)


def test_every_report_says_when_and_where(tmp_path, capsys):
    path = write_json(tmp_path / "deep" / "report.json", {**stamp(), "ratio": 1.5, "name": "Szia"})
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["ratio"] == 1.5 and report["cpus"] >= 1 and report["date"][:2] == "20"
    assert "Szia" in path.read_text(encoding="utf-8") and f"written {path}" in capsys.readouterr().out


def test_the_demo_funnel_is_compared_with_the_truth_stage_by_stage(truth_database, demo_script):
    from dataclasses import replace

    from bench import demo
    from salescalls.db import store
    from salescalls.script.score import score_call
    from tests.conftest import DEMO

    with store.reader(truth_database) as con:
        truth = demo.truth_funnel(con, str(DEMO), demo_script)
        stored = demo.funnel_counts(con, demo_script.id)
        call_id = con.execute("SELECT call_id FROM calls ORDER BY file LIMIT 1").fetchone()[0]
        utterances = store.stored_utterances(con, call_id)
    assert list(truth) == [stage.name for stage in demo_script.stages]
    assert truth[demo_script.stages[0].name]["got_here"] == 14
    assert stored == truth and demo.funnel_differences(stored, truth) == []

    # One call rescored as if it never left the greeting: the funnel says where it differs.
    greeting = tuple(replace(u, stage=demo_script.stages[0].name) for u in utterances)
    rescored = demo.rescored_funnel(
        str(truth_database), demo_script, [(call_id, greeting, score_call(list(greeting), demo_script))]
    )
    differences = demo.funnel_differences(rescored, truth)
    second = demo_script.stages[1].name
    assert f"{second} got_here {truth[second]['got_here'] - 1} vs {truth[second]['got_here']}" in differences
    with store.reader(truth_database) as con:  # the scratch copy was rescored, not the database
        assert demo.funnel_counts(con, demo_script.id) == truth
