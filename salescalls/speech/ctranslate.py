"""The CTranslate2 engine: whisper's own weights run by faster-whisper, words out as openai-whisper's.

`FasterWhisper` answers `transcribe(chunk, **whisper_options)` with the same dictionary shape as
openai-whisper's `model.transcribe`, so the speech layer (transcribe.py) decodes stretches,
drops words on silence and fills holes in the same way whichever engine runs. Decoding is
greedy with whisper's temperature fallback, conditioned on the text before, as openai-whisper's
Python API does by default (faster-whisper's own default is a beam of 5, which costs more).

`windows` gives the batched path: a call's speech regions packed into windows of at most 30 s,
decoded a batch at a time by faster-whisper's BatchedInferencePipeline, so the encoder never
reads padding between turns.

Weights: models_dir/faster-whisper/<name>/ (model.bin, config.json, tokenizer.json,
vocabulary.json), a CTranslate2 export of whisper (see speech/models.py for where it comes from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salescalls.config import ASR_COMPUTE_TYPES as COMPUTE_TYPES

WINDOW = 30.0  # seconds whisper's encoder reads at once; a packed window never exceeds it
FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")


def weights_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / "faster-whisper" / name


def weights_ready(models_dir: Path, name: str) -> bool:
    folder = weights_dir(models_dir, name)
    return all((folder / file).is_file() for file in FILES)


@dataclass(frozen=True)
class FasterWhisper:
    model: object  # faster_whisper.WhisperModel
    compute_type: str  # int8 or float32: how CTranslate2 holds the weights
    batch_size: int  # windows decoded at once by the batched path (1: one stretch at a time, conditioned)

    engine = "faster"

    def transcribe(
        self,
        chunk: np.ndarray,
        language: str | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = True,
        condition_on_previous_text: bool = True,
        temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        fp16: bool = False,
        verbose: bool | None = None,
    ) -> dict:
        """One stretch of audio, sequentially, as openai-whisper's transcribe would decode it."""
        segments, info = self.model.transcribe(
            chunk,
            language=language,
            initial_prompt=initial_prompt,
            beam_size=1,
            best_of=5,
            word_timestamps=word_timestamps,
            condition_on_previous_text=condition_on_previous_text,
            temperature=list(temperature),
            vad_filter=False,  # the speech regions are the product's (channels or pyannote)
            log_progress=verbose is False,
        )
        return {"language": info.language, "segments": [_segment(s) for s in segments]}

    def transcribe_windows(self, samples: np.ndarray, windows: list[tuple[float, float]], language: str | None) -> dict:
        """Many windows of one call (each at most WINDOW seconds) in batches of `batch_size`."""
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(self.model)
        segments, info = pipeline.transcribe(
            samples,
            language=language,
            clip_timestamps=[{"start": start, "end": end} for start, end in windows],
            batch_size=self.batch_size,
            beam_size=1,
            word_timestamps=True,
            vad_filter=False,
        )
        return {"language": info.language, "segments": [_segment(s) for s in segments]}


def _segment(segment) -> dict:
    return {
        "words": [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for w in (segment.words or [])
        ]
    }


def load(folder: Path, compute_type: str, threads: int, batch_size: int, device: str = "cpu") -> FasterWhisper:
    from faster_whisper import WhisperModel

    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"compute type {compute_type!r}: expected one of {', '.join(COMPUTE_TYPES)}")
    # cpu_threads=0 would mean CTranslate2's default of 4, which oversubscribes a 2-core machine.
    model = WhisperModel(
        str(folder),
        device="cuda" if device.startswith("cuda") else "cpu",
        compute_type=compute_type,
        cpu_threads=max(1, threads),
    )
    return FasterWhisper(model, compute_type, batch_size)


def windows(regions: list[tuple[float, float]], duration: float, pad: float = 0.2) -> list[tuple[float, float]]:
    """Speech regions packed into disjoint windows of at most WINDOW seconds: consecutive regions
    share a window while they fit (the pause between them is kept, so words keep their context);
    a region longer than a window is cut into window-long pieces."""
    disjoint: list[list[float]] = []
    for start, end in sorted(regions):
        start, end = max(0.0, start - pad), min(duration, end + pad)
        if disjoint and start <= disjoint[-1][1]:
            disjoint[-1][1] = max(disjoint[-1][1], end)
        elif end > start:
            disjoint.append([start, end])
    packed: list[list[float]] = []
    for start, end in disjoint:
        while end - start > WINDOW:  # a turn longer than a window: window-long pieces
            packed.append([start, start + WINDOW])
            start += WINDOW
        if packed and end - packed[-1][0] <= WINDOW:
            packed[-1][1] = end
        else:
            packed.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in packed if e - s >= 0.1]
