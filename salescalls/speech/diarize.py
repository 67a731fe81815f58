"""Who spoke when: one channel per party for stereo calls, pyannote.audio for mono calls."""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path

import numpy as np

from salescalls.records import Turn
from salescalls.speech.audio import SAMPLE_RATE
from salescalls.speech.transcribe import ModelMissingError

FRAME = 0.03  # seconds per energy frame
HOP = 0.01  # seconds between frames
SPEECH_ABOVE_FLOOR_DB = 12.0  # a channel speaks when this far above its own noise floor...
BLEED_MARGIN_DB = 15.0  # ...and not this far below the other channel (cross-talk bleed)
MIN_GAP = 0.3  # seconds; shorter pauses inside speech are bridged
MIN_SPEECH = 0.12  # seconds; shorter bursts are clicks, not speech
PAD = 0.05  # seconds added around each speech region for soft word edges


def to_rttm(turns: list[Turn], uri: str) -> str:
    """RTTM lines, the format pyannote.metrics and most diarization tools read (fields are
    space-separated, so spaces in the uri become underscores)."""
    uri = "_".join(uri.split()) or "recording"
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns
    )


class StderrProgress:
    """pyannote pipeline hook printing each step's progress on one stderr line."""

    def __call__(self, step_name, step_artifact, file=None, total=None, completed=None):
        if total:
            print(f"\rdiarize: {step_name} {100 * (completed or 0) // total:3d}%", end="", file=sys.stderr, flush=True)
            if completed == total:
                print(file=sys.stderr)


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


# Offline pipeline settings. The network runs once per 10 s chunk and local speaker masks are
# pooled from it (see embedding.py), so a batch holds one chunk's three local speakers.
SEGMENTATION_STEP = 0.1  # hop between 10 s segmentation chunks, as a fraction of the chunk
EMBEDDING_BATCH = 3  # segmentation-3.0 has three local speakers per chunk
CLUSTERING = {"method": "centroid", "min_cluster_size": 12, "threshold": 0.6}

# Turn re-check after clustering. segmentation-3.0 sometimes gives a short interjection ("Yes.",
# "Four, including me.") to the local speaker who dominates its 10 s chunk, and clustering then
# keeps it there. Each short turn's own embedding is compared with the other speakers' voices.
RECHECK_SHORTER_THAN = 4.0  # seconds; longer turns carry enough evidence in clustering already
RECHECK_LONGER_THAN = 0.4  # seconds; shorter turns give no reliable embedding
VOICE_EVIDENCE = 3.0  # seconds of other turns a speaker needs before turns are compared with it
SWITCH_MARGIN = 0.1  # cosine similarity by which another speaker's voice must fit better
EMBED_AT_MOST = 20.0  # seconds of a long turn that go into its embedding (its middle)


@functools.lru_cache(maxsize=4)
def load_pipeline(
    models_dir: Path,
    device: str = "cpu",
    segmentation_step: float = SEGMENTATION_STEP,
    embedding_batch_size: int = EMBEDDING_BATCH,
):
    """The offline pyannote pipeline: segmentation-3.0 + CAM++ embeddings + agglomerative clustering.

    If models_dir/pyannote/pipeline/config.yaml exists (an official pyannote pipeline saved
    there by `salescalls models setup` with an HF_TOKEN), that pipeline is used instead.
    """
    import torch
    from pyannote.audio import Pipeline
    from pyannote.audio.pipelines import SpeakerDiarization

    from salescalls.speech.embedding import CAMPPlusEmbedding, NoPLDA

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
            segmentation_step=segmentation_step,
            embedding=CAMPPlusEmbedding.from_checkpoint(embedding),
            embedding_batch_size=embedding_batch_size,
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",
        )
        pipeline.instantiate({"segmentation": {"min_duration_off": 0.0}, "clustering": dict(CLUSTERING)})
    return pipeline.to(torch.device(device))


def pyannote_turns(
    samples: np.ndarray,
    pipeline,
    num_speakers: int | None = 2,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    progress: bool = False,
) -> list[Turn]:
    """Speaker turns of a mono call, overlapping speech included (words go to the speaker whose
    turns overlap them most, see align.py)."""
    import torch

    mono = samples[0] if samples.ndim == 2 else samples
    if mono.size < SAMPLE_RATE // 2:  # too short for the segmentation window to say anything
        return [Turn(0.0, mono.size / SAMPLE_RATE, "SPEAKER_00")] if mono.size else []
    waveform = {"waveform": torch.from_numpy(np.ascontiguousarray(mono))[None, :], "sample_rate": SAMPLE_RATE}
    counts = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    with _pipeline_lock, torch.inference_mode():
        output = pipeline(
            waveform, hook=StderrProgress() if progress else None, **{k: v for k, v in counts.items() if v is not None}
        )
        annotation = getattr(output, "speaker_diarization", output)
        turns = [
            Turn(float(s.start), float(s.end), str(label)) for s, _, label in annotation.itertracks(yield_label=True)
        ]
        turns = sorted(turns, key=lambda t: (t.start, t.speaker))
        embedding = getattr(pipeline, "_embedding", None)
        if embedding is not None:
            turns = recheck_turns(mono, turns, lambda clip: embedding(torch.from_numpy(clip)[None, None, :])[0])
    return turns


def recheck_turns(mono: np.ndarray, turns: list[Turn], embed) -> list[Turn]:
    """Give each short turn to the speaker whose voice it matches clearly better.

    `embed(clip) -> vector` is the pipeline's speaker embedding. Voices are duration-weighted
    means of the embeddings of a speaker's *other* turns, so a turn never votes for itself.
    Turns overlapped by another speaker are left alone (their audio holds two voices).
    """
    speakers = {t.speaker for t in turns}
    if len(speakers) < 2:
        return turns
    durations = np.array([t.end - t.start for t in turns])
    usable = [i for i, t in enumerate(turns) if durations[i] >= RECHECK_LONGER_THAN]
    vectors = {}
    for i in usable:
        middle, half = (turns[i].start + turns[i].end) / 2, min(durations[i], EMBED_AT_MOST) / 2
        clip = np.ascontiguousarray(mono[int((middle - half) * SAMPLE_RATE) : int((middle + half) * SAMPLE_RATE)])
        vector = np.asarray(embed(clip), dtype=np.float64)
        norm = np.linalg.norm(vector)
        if np.isfinite(norm) and norm > 0:
            vectors[i] = vector / norm
    voice_sum = {k: np.zeros(len(next(iter(vectors.values())))) for k in speakers} if vectors else {}
    voice_seconds = dict.fromkeys(speakers, 0.0)
    for i, vector in vectors.items():
        voice_sum[turns[i].speaker] += durations[i] * vector
        voice_seconds[turns[i].speaker] += durations[i]
    result = list(turns)
    for i, vector in vectors.items():
        turn = turns[i]
        if durations[i] > RECHECK_SHORTER_THAN or _overlapped(turn, turns):
            continue
        similarity = {}
        for speaker in speakers:
            own = speaker == turn.speaker
            seconds = voice_seconds[speaker] - (durations[i] if own else 0.0)
            if seconds < VOICE_EVIDENCE:
                continue
            voice = voice_sum[speaker] - (durations[i] * vector if own else 0.0)
            similarity[speaker] = float(vector @ voice / np.linalg.norm(voice))
        if turn.speaker not in similarity:
            continue
        best = max(similarity, key=similarity.get)
        if similarity[best] - similarity[turn.speaker] > SWITCH_MARGIN:
            result[i] = Turn(turn.start, turn.end, best)
    return result


def _overlapped(turn: Turn, turns: list[Turn]) -> bool:
    return any(o.speaker != turn.speaker and o.start < turn.end and turn.start < o.end for o in turns)
