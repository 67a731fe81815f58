"""Speech to words with whisper: word timestamps, no text on silence, model loaded once.

Two engines run the same weights behind one interface: openai-whisper (PyTorch, float32) and
faster-whisper (CTranslate2, int8 by default; speech/ctranslate.py). Both give the same
Transcript of timed Words; which one runs is Settings.asr_engine.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salescalls import i18n
from salescalls.errors import SetupError
from salescalls.records import Word
from salescalls.speech import ctranslate
from salescalls.speech.audio import SAMPLE_RATE

BLOCK = 600.0  # seconds of audio whisper gets at once: bounds its spectrogram's memory on long calls
BLOCK_GAP = 8.0  # seconds of non-speech that split a call into separately decoded stretches
BLOCK_PAD = 1.0  # seconds of audio kept around speech when cutting stretches
TAIL = 1.0  # seconds of silence after each stretch (see _decode)
WORD_SLACK = 0.3  # a word must come within this many seconds of a speech region to be kept
MIN_HOLE = 1.0  # seconds of speech without any word that are decoded again on their own


class ModelMissingError(SetupError):
    """Model weights are not where the configuration says; the message says how to get them."""


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


def use_threads(threads: int) -> None:
    """Set torch's thread count for the calling thread. OpenMP keeps it per thread, so a worker
    that runs each call in a fresh thread must set it per call: the default (every core) in each
    of several worker processes oversubscribes the CPU and made calls 8x slower."""
    import torch

    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=4)
def load_model(
    models_dir: Path,
    name: str = "base",
    device: str = "cpu",
    threads: int = 0,
    engine: str = "openai",
    compute_type: str = "float32",
    batch_size: int = 1,
):
    """Load whisper weights once per process: models_dir/whisper/<name>.pt for openai-whisper,
    models_dir/faster-whisper/<name>/ for faster-whisper."""
    if engine == "faster":
        folder = ctranslate.weights_dir(models_dir, name)
        if not ctranslate.weights_ready(models_dir, name):
            raise ModelMissingError(
                i18n._(
                    "faster-whisper '{name}' weights not found in {path}. Run `salescalls models setup` "
                    "or set SALESCALLS_ASR_ENGINE=openai.",
                    name=name,
                    path=folder,
                )
            )
        return ctranslate.load(folder, compute_type, threads, batch_size, device)
    import whisper

    use_threads(threads)
    path = whisper_weights(models_dir, name)
    if not path.is_file():
        raise ModelMissingError(
            i18n._(
                "whisper '{name}' weights not found at {path}. Run `salescalls models setup` "
                "(links ../shared/models or downloads OpenAI's official weights) or set SALESCALLS_MODELS_DIR.",
                name=name,
                path=path,
            )
        )
    if name not in whisper._ALIGNMENT_HEADS:
        raise ModelMissingError(f"unknown whisper model '{name}' (known: {', '.join(whisper._MODELS)})")
    model = whisper.load_model(str(path), device=device)
    # A checkpoint loaded from a path carries no alignment heads; word timestamps need them.
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
    return model


def configured_model(settings):
    """The whisper model Settings ask for (engine, size, threads), loaded once per process."""
    return load_model(
        settings.models_dir,
        settings.whisper_model,
        settings.device,
        settings.asr_threads if settings.asr_engine == "faster" else settings.threads,
        settings.asr_engine,
        settings.asr_compute,
        settings.asr_batch,
    )


def engine_label(settings) -> str:
    """What a stored call says recognised it: 'base' (openai-whisper) or 'base faster-float32'."""
    if settings.asr_engine != "faster":
        return settings.whisper_model
    batch = f" batch {settings.asr_batch}" if settings.asr_batch > 1 else ""
    return f"{settings.whisper_model} faster-{settings.asr_compute}{batch}"


def merge_regions(
    regions: list[tuple[float, float]], gap: float, pad: float = 0.0, duration: float | None = None
) -> list[tuple[float, float]]:
    """Sorted, padded regions joined where less than `gap` seconds separate them."""
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        start = max(0.0, start - pad)
        end = end + pad if duration is None else min(duration, end + pad)
        if end <= start:
            continue
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def speech_blocks(regions: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Stretches of the call to give whisper: speech regions joined across pauses shorter than
    BLOCK_GAP seconds, so long silences and hold music are never decoded; a stretch longer than
    BLOCK seconds is cut in a pause between regions, so memory does not grow with the call."""
    blocks: list[tuple[float, float]] = []
    for stretch_start, stretch_end in merge_regions(regions, BLOCK_GAP, BLOCK_PAD, duration):
        # A short lead-in or tail is kept as recorded: whisper's output shifts with the window's
        # alignment, and the whole call is what it was trained to read.
        stretch_start = 0.0 if stretch_start < BLOCK_GAP else stretch_start
        stretch_end = duration if duration - stretch_end < BLOCK_GAP else stretch_end
        inside = merge_regions([(s, e) for s, e in regions if s < stretch_end and e > stretch_start], 0.0)
        block_start, previous_end = stretch_start, None
        for region_start, region_end in inside:
            if previous_end is not None and region_end - block_start > BLOCK:
                # In the pause before this region, and no later than the block may reach (the
                # previous region ended within it, so the cut stays in the pause).
                cut = min((previous_end + region_start) / 2, block_start + BLOCK)
                blocks.append((block_start, cut))
                block_start = cut
            while region_end - block_start > BLOCK:  # one region longer than a block: cut anywhere
                blocks.append((block_start, block_start + BLOCK))
                block_start += BLOCK
            previous_end = region_end
        blocks.append((block_start, stretch_end))
    return blocks


def _decode(
    samples: np.ndarray, model, start: float, end: float, language: str | None, prompt: str | None, progress: bool
) -> tuple[list[Word], str | None]:
    """Whisper on one stretch, followed by TAIL seconds of silence.

    The silent tail matters: whisper's loop can stall on a window of a few frames that ends in
    speech (its next seek rounds back to the same frame); ending every stretch in silence gives
    the last window nothing to decode.
    """
    first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    chunk = np.concatenate([samples[first:last], np.zeros(int(TAIL * SAMPLE_RATE), dtype=np.float32)])
    # With progress on, whisper also prints "Detected language: ..." to standard output, which must
    # stay clean for `transcribe -f json > out.json`: that line goes to standard error with the bar.
    quiet = contextlib.redirect_stdout(sys.stderr) if progress else contextlib.nullcontext()
    with _model_lock, quiet:
        result = model.transcribe(
            chunk,
            language=language,
            initial_prompt=prompt,
            word_timestamps=True,
            condition_on_previous_text=True,
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
            fp16=False,
            verbose=False if progress else None,  # False: whisper's own progress bar
        )
    return _words(result, start), result.get("language")


def _words(result: dict, offset: float) -> list[Word]:
    """Timed words of a whisper result (either engine), shifted by `offset` seconds."""
    words = []
    for segment in result["segments"]:
        for item in segment.get("words", []):
            text = item["word"].strip()
            if text:
                words.append(
                    Word(float(item["start"]) + offset, float(item["end"]) + offset, text, float(item["probability"]))
                )
    return words


def transcribe(
    samples: np.ndarray,
    model,
    language: str | None = None,
    prompt: str | None = None,
    regions: list[tuple[float, float]] | None = None,
    progress: bool = False,
) -> Transcript:
    """Transcribe mono float32 audio at 16 kHz into timed words, using where speech is.

    `regions` (from diarization or channel activity) steer whisper: it decodes only the speech
    stretches (see speech_blocks), in its usual sequential way inside each, conditioned on the
    text before (measured on the demo calls: more accurate than decoding each pause-to-pause
    clip separately); words that land outside every region are dropped (whisper's
    hallucinations on silence); and a region of speech that got no words at all, which happens
    when whisper decides a window has ended early, is decoded again on its own. No regions,
    no text. Without `regions` the whole recording is one stretch.
    """
    if samples.ndim != 1:
        raise ValueError("transcribe expects mono audio (samples,)")
    duration = samples.size / SAMPLE_RATE
    if regions is None:
        regions = [(0.0, duration)]
    regions = [(s, e) for s, e in regions if e > s]
    if samples.size < SAMPLE_RATE // 10 or not regions:
        return Transcript(language=language or "", words=())
    words: list[Word] = []
    if getattr(model, "batch_size", 1) > 1:  # faster-whisper, batched: windows of packed turns
        with _model_lock:
            result = model.transcribe_windows(samples, ctranslate.windows(regions, duration), language)
        words, language = _words(result, 0.0), language or result.get("language")
    else:
        for start, end in speech_blocks(regions, duration):
            found, detected = _decode(samples, model, start, end, language, prompt, progress)
            language = language or detected
            words.extend(found)
    speech = merge_regions(regions, 0.0, WORD_SLACK, duration)
    words = _touching(words, speech)
    middles = sorted((w.start + w.end) / 2 for w in words)
    for start, end in merge_regions(regions, 0.5, 0.0, duration):
        if end - start >= MIN_HOLE and bisect.bisect_right(middles, end) == bisect.bisect_left(middles, start):
            found, _ = _decode(
                samples, model, max(0.0, start - BLOCK_PAD), min(duration, end + BLOCK_PAD), language, None, False
            )
            found = _touching(found, speech)
            words.extend(found)
            for w in found:
                bisect.insort(middles, (w.start + w.end) / 2)
    words.sort(key=lambda w: (w.start, w.end))
    return Transcript(language=language or "", words=tuple(words))


def _touching(words: list[Word], regions: list[tuple[float, float]]) -> list[Word]:
    """The words that overlap one of `regions` (sorted and disjoint, as merge_regions gives them).

    Binary search per word, not a scan of every region: a long call has thousands of both.
    """
    if not words or not regions:
        return []
    starts = np.array([s for s, _ in regions])
    ends = np.array([e for _, e in regions])
    first_ending_after = np.searchsorted(ends, [w.start for w in words], side="left")
    keep = [i < len(regions) and starts[i] <= w.end for i, w in zip(first_ending_after, words, strict=True)]
    return [w for w, k in zip(words, keep, strict=True) if k]
