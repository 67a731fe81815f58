"""The speech layer on awkward input: empty, tiny, silent, clipped, telephone band, odd names, long."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from bench.linear import long_call
from bench.metrics import align_words, normaliser
from salescalls.cli import app
from salescalls.learning.evaluate import load_truth
from salescalls.pipeline import analyse_call, recognise
from salescalls.speech import audio
from tests.conftest import DEMO, ROOT


def word_error_rate(words, truth) -> float:
    normalise = normaliser("en")
    reference = normalise(" ".join(t["text"] for t in sorted(truth["turns"], key=lambda t: t["start"]))).split()
    return align_words(reference, normalise(" ".join(w.text for w in words)).split()).wer


def test_empty_file_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["transcribe", str(empty)])
    assert result.exit_code == 1 and "empty file (0 bytes)" in result.output


@pytest.mark.models
def test_a_third_of_a_second(tmp_path, model_settings):
    samples = audio.load(DEMO / "c13.flac")[:, int(0.8 * audio.SAMPLE_RATE) : int(1.1 * audio.SAMPLE_RATE)]
    speech = recognise(samples, model_settings)
    assert len(speech.speakers) == len(speech.words)  # whatever was heard has a speaker


@pytest.mark.models
@pytest.mark.parametrize("channels", [1, 2])
def test_a_minute_of_line_noise_gives_no_text(channels, model_settings):
    rng = np.random.default_rng(1)
    hiss = rng.normal(0, 10 ** (-60 / 20), (channels, 60 * audio.SAMPLE_RATE)).astype(np.float32)
    speech = recognise(audio.normalise(hiss), model_settings)  # normalised: as loud as audio gets
    assert speech.words == ()
    assert speech.utterances == ()


@pytest.mark.models
def test_clipped_audio_is_still_understood(tmp_path, model_settings):
    truth = load_truth(DEMO / "c11.json")
    clean = audio.load(DEMO / truth["file"])
    clipped_path = tmp_path / "clipped.wav"
    sf.write(clipped_path, np.clip(clean * 8.0, -1.0, 1.0).T, audio.SAMPLE_RATE)  # +18 dB into the rails
    samples = audio.load(clipped_path)
    assert np.mean(np.abs(samples) >= audio.PEAK * 0.99) > 0.01  # really clipped
    speech = recognise(samples, model_settings)
    assert word_error_rate(speech.words, truth) <= 0.35


@pytest.mark.models
@pytest.mark.parametrize("call", ["c13", "c05"])  # 8 kHz telephone band, mono and stereo
def test_telephone_band_8khz(call, model_settings):
    truth = load_truth(DEMO / f"{call}.json")
    assert truth["sample_rate"] == 8000
    speech = recognise(audio.load(DEMO / truth["file"]), model_settings)
    assert word_error_rate(speech.words, truth) <= 0.35


@pytest.mark.models
def test_non_ascii_file_name_end_to_end(tmp_path, model_settings, demo_script):
    path = tmp_path / "звонок клиенту – ügyfél №1.flac"
    path.write_bytes((DEMO / "c13.flac").read_bytes())
    record = analyse_call(path, model_settings, demo_script)
    assert record.file == path.name and record.score.end_stage == "greeting"


def test_stereo_file_with_identical_channels_is_mono():
    rng = np.random.default_rng(0)
    voice = rng.normal(0, 0.1, audio.SAMPLE_RATE).astype(np.float32)
    assert audio.is_dual_mono(np.stack([voice, voice]))
    assert audio.is_dual_mono(np.stack([voice, voice * 0.999]))
    assert not audio.is_dual_mono(np.stack([voice, rng.normal(0, 0.1, audio.SAMPLE_RATE).astype(np.float32)]))
    assert not audio.is_dual_mono(voice[None, :])


PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys
    from salescalls.speech import audio
    from salescalls.config import Settings
    from salescalls.pipeline import recognise
    samples = audio.load(sys.argv[1])
    speech = recognise(samples, Settings.from_env(language="en"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"words": len(speech.words), "peak_rss_mb": peak_mb}))
    """
)


@pytest.mark.slow
@pytest.mark.models
def test_thirty_minute_call_in_flat_memory(tmp_path, model_settings):
    """Peak memory of a 30-minute call stays close to that of a 5-minute one."""
    peaks = {}
    env = {**os.environ, "SALESCALLS_MODELS_DIR": str(model_settings.models_dir)}
    for minutes in (5, 30):
        path = tmp_path / f"long {minutes} min.flac"
        long_call(path, minutes)
        run = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(path)], capture_output=True, text=True, env=env, cwd=ROOT, check=True
        )
        peaks[minutes] = json.loads(run.stdout.strip().splitlines()[-1])
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "long_call_memory.json").write_text(json.dumps(peaks, indent=1))
    assert peaks[30]["words"] > 5 * peaks[5]["words"]  # the whole half hour was transcribed
    # Growth is the decoded audio itself (16 kHz float32, two channels: 230 MB for 30 min), not more.
    assert peaks[30]["peak_rss_mb"] - peaks[5]["peak_rss_mb"] < 600, peaks
