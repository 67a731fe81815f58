"""Speech to words with openai-whisper: word timestamps, no text on silence, model loaded once."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE

MAX_CLIP = 24.0  # seconds of audio decoded as one stretch, cut at pauses
CLIP_PAD = 0.2  # seconds of context kept around each speech region


class ModelMissingError(RuntimeError):
    """Model weights are not where the configuration says; the message says how to get them."""


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the recording
    end: float  # seconds
    text: str  # the word as written, punctuation attached, no surrounding spaces
    probability: float  # whisper's confidence in the word, 0..1


@dataclass(frozen=True)
class Transcript:
    language: str  # language code whisper used (forced or detected)
    words: tuple[Word, ...]  # in time order

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


def whisper_weights(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / "whisper" / f"{name}.pt"


# Whisper's word-timestamp hooks live on the model object, so one model must not run two
# transcriptions at once; callers in threads share the model and take turns.
_model_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def load_model(models_dir: Path, name: str = "base", device: str = "cpu", threads: int = 0):
    """Load whisper weights from models_dir/whisper/<name>.pt once per process."""
    import torch
    import whisper

    if threads:
        torch.set_num_threads(threads)
    path = whisper_weights(models_dir, name)
    if not path.is_file():
        raise ModelMissingError(
            f"whisper '{name}' weights not found at {path}. Run `salescalls models setup` "
            "(links ../shared/models or downloads OpenAI's official weights) or set SALESCALLS_MODELS_DIR."
        )
    if name not in whisper._ALIGNMENT_HEADS:
        raise ModelMissingError(f"unknown whisper model '{name}' (known: {', '.join(whisper._MODELS)})")
    model = whisper.load_model(str(path), device=device)
    # A checkpoint loaded from a path carries no alignment heads; word timestamps need them.
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
    return model


def speech_clips(
    regions: list[tuple[float, float]], duration: float, max_clip: float = MAX_CLIP, pad: float = CLIP_PAD
) -> list[tuple[float, float]]:
    """Pack speech regions into clips of at most `max_clip` seconds, cut in the pauses between them.

    A region longer than `max_clip` is a clip of its own (whisper seeks through it by itself).
    """
    clips: list[list[float]] = []
    for start, end in sorted(regions):
        start, end = max(0.0, start - pad), min(duration, end + pad)
        if end <= start:
            continue
        if clips and (start <= clips[-1][1] or end - clips[-1][0] <= max_clip):
            clips[-1][1] = max(clips[-1][1], end)
        else:
            clips.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in clips]


def transcribe(
    samples: np.ndarray,
    model,
    language: str | None = None,
    prompt: str | None = None,
    clips: list[tuple[float, float]] | None = None,
) -> Transcript:
    """Transcribe mono float32 audio at 16 kHz into timed words.

    With `clips` (from voice activity or diarization) whisper decodes only those stretches:
    nothing is produced on silence, hold music or tones, and each clip starts where speech
    starts, so whisper cannot skip the rest of a 30 s window when it decides early that speech
    has ended. The previous window's text is not fed back (it makes whisper repeat itself on
    long calls); the script's vocabulary is given as a prompt to every window.
    """
    if samples.ndim != 1:
        raise ValueError("transcribe expects mono audio (samples,)")
    if samples.size < SAMPLE_RATE // 10 or clips == []:
        return Transcript(language=language or "", words=())
    with _model_lock:
        result = model.transcribe(
            samples,
            language=language,
            initial_prompt=prompt,
            carry_initial_prompt=bool(prompt),
            clip_timestamps=[t for clip in clips for t in clip] if clips else "0",
            word_timestamps=True,
            condition_on_previous_text=False,
            hallucination_silence_threshold=2.0,
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
            fp16=False,
            verbose=None,
        )
    words = []
    for segment in result["segments"]:
        for item in segment.get("words", []):
            text = item["word"].strip()
            if text:
                words.append(Word(float(item["start"]), float(item["end"]), text, float(item["probability"])))
    return Transcript(language=result.get("language") or language or "", words=tuple(words))
