"""Who spoke when: one channel per party for stereo calls, pyannote.audio for mono calls."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .transcribe import ModelMissingError

FRAME = 0.03  # seconds per energy frame
HOP = 0.01  # seconds between frames
SPEECH_ABOVE_FLOOR_DB = 12.0  # a channel speaks when this far above its own noise floor...
BLEED_MARGIN_DB = 15.0  # ...and not this far below the other channel (cross-talk bleed)
MIN_GAP = 0.3  # seconds; shorter pauses inside speech are bridged
MIN_SPEECH = 0.12  # seconds; shorter bursts are clicks, not speech
PAD = 0.05  # seconds added around each speech region for soft word edges


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float  # seconds
    speaker: str  # ch0/ch1 for stereo channels, SPEAKER_nn from pyannote


def to_rttm(turns: list[Turn], uri: str) -> str:
    """RTTM lines, the format pyannote.metrics and most diarization tools read."""
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns
    )


def frame_energy_db(channel: np.ndarray) -> np.ndarray:
    """Energy of overlapping frames in dB, vectorised with strides."""
    frame, hop = int(FRAME * SAMPLE_RATE), int(HOP * SAMPLE_RATE)
    if channel.size < frame:
        channel = np.pad(channel, (0, frame - channel.size))
    windows = np.lib.stride_tricks.sliding_window_view(channel, frame)[::hop]
    return 10.0 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=1) + 1e-10)


def regions(active: np.ndarray) -> list[tuple[float, float]]:
    """Boolean frame mask -> smoothed (start, end) speech regions in seconds."""
    padded = np.concatenate([[False], active, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    spans = [(s * HOP, e * HOP + FRAME) for s, e in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < MIN_GAP:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(max(0.0, s - PAD), e + PAD) for s, e in merged if e - s >= MIN_SPEECH]


def channel_turns(samples: np.ndarray) -> list[Turn]:
    """Speech turns of a two-channel call: each channel is one party.

    A channel counts as speaking when it is well above its own noise floor and not far below
    the other channel, so the other party's voice bleeding into it creates no false turn,
    while real overlaps (both parties loud on their own channels) are kept.
    """
    if samples.shape[0] != 2:
        raise ValueError("channel_turns expects stereo audio (2, samples)")
    energy = np.stack([frame_energy_db(samples[0]), frame_energy_db(samples[1])])
    floor = np.percentile(energy, 10, axis=1, keepdims=True)
    above_floor = energy > floor + SPEECH_ABOVE_FLOOR_DB
    not_bleed = energy > energy[::-1] - BLEED_MARGIN_DB
    active = above_floor & not_bleed
    turns = [Turn(s, e, f"ch{c}") for c in (0, 1) for s, e in regions(active[c])]
    return sorted(turns, key=lambda t: (t.start, t.speaker))


_pipeline_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def load_pipeline(models_dir: Path, device: str = "cpu"):
    """The offline pyannote pipeline: segmentation-3.0 + CAM++ embeddings + agglomerative clustering.

    If models_dir/pyannote/pipeline/config.yaml exists (an official pyannote pipeline saved
    there by `salescalls models setup` with an HF_TOKEN), that pipeline is used instead.
    """
    import torch
    from pyannote.audio import Pipeline
    from pyannote.audio.pipelines import SpeakerDiarization

    from .embedding import CAMPPlusEmbedding, NoPLDA

    base = Path(models_dir) / "pyannote"
    official = base / "pipeline" / "config.yaml"
    if official.is_file():
        pipeline = Pipeline.from_pretrained(official.parent)
    else:
        segmentation = base / "segmentation-3.0"
        embedding = base / "campplus_cn_en_common.pt"
        missing = [p for p in (segmentation / "pytorch_model.bin", embedding) if not p.is_file()]
        if missing:
            raise ModelMissingError(
                f"diarization weights not found: {', '.join(map(str, missing))}. Run `salescalls models setup` "
                "(links ../shared/models, or with HF_TOKEN downloads pyannote's pipeline) or set SALESCALLS_MODELS_DIR."
            )
        pipeline = SpeakerDiarization(
            segmentation=str(segmentation),
            embedding=CAMPPlusEmbedding.from_checkpoint(embedding),
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",
        )
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},
                "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.6},
            }
        )
    return pipeline.to(torch.device(device))


def pyannote_turns(samples: np.ndarray, pipeline, num_speakers: int | None = 2) -> list[Turn]:
    """Speaker turns of a mono call; overlapping speech goes to the more likely speaker."""
    import torch

    mono = samples[0] if samples.ndim == 2 else samples
    if mono.size < SAMPLE_RATE // 2:  # too short for the segmentation window to say anything
        return [Turn(0.0, mono.size / SAMPLE_RATE, "SPEAKER_00")] if mono.size else []
    waveform = {"waveform": torch.from_numpy(np.ascontiguousarray(mono))[None, :], "sample_rate": SAMPLE_RATE}
    with _pipeline_lock, torch.inference_mode():
        output = pipeline(waveform, num_speakers=num_speakers)
    annotation = getattr(output, "exclusive_speaker_diarization", output)
    turns = [Turn(float(s.start), float(s.end), str(label)) for s, _, label in annotation.itertracks(yield_label=True)]
    return sorted(turns, key=lambda t: (t.start, t.speaker))
