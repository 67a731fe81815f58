"""Audio I/O at the edge: probe and decode any recording with ffmpeg into float32 at 16 kHz."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salescalls.errors import InputError, SetupError

SAMPLE_RATE = 16000  # what whisper and pyannote expect
MIN_DURATION = 0.1  # seconds; shorter recordings hold no words
SILENT_BELOW = 10 ** (-60 / 20)  # a recording whose loudest sample is below -60 dBFS holds no call
TRUNCATED_SHARE = 0.9  # less than this share of the declared length decodes: the file was cut short
PEAK = 0.9  # loudest sample after normalisation (about -1 dBFS)


class AudioError(InputError):
    """A file that cannot be used as a call recording; the message is the one-line reason."""


@dataclass(frozen=True)
class AudioInfo:
    path: str  # the file as given
    duration: float  # seconds
    channels: int  # in the file (loading keeps 1 or 2, more are mixed down)
    sample_rate: int  # of the file, before resampling
    codec: str  # ffmpeg's codec name, e.g. flac, vorbis, pcm_s16le


def require_ffmpeg() -> None:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} not found: install it (Debian: apt-get install -y ffmpeg)")


def content_hash(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of the file's bytes: the call's identity, whatever its name."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def probe(path: str | Path) -> AudioInfo:
    """Describe the first audio stream, or raise AudioError saying why the file is unusable."""
    require_ffmpeg()
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,channels,sample_rate,duration:format=duration",
        "-of",
        "json",
        str(path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
        raise AudioError(f"not decodable audio: {detail.removeprefix(f'{path}: ')}")
    meta = json.loads(result.stdout or "{}")
    streams = meta.get("streams") or []
    if not streams:
        raise AudioError("no audio stream in the file")
    stream = streams[0]
    duration = _as_float(stream.get("duration")) or _as_float(meta.get("format", {}).get("duration"))
    return AudioInfo(
        path=str(path),
        duration=duration or 0.0,
        channels=int(stream.get("channels") or 0),
        sample_rate=int(stream.get("sample_rate") or 0),
        codec=str(stream.get("codec_name") or "unknown"),
    )


def load(path: str | Path, info: AudioInfo | None = None) -> np.ndarray:
    """Decode to float32 (channels, samples) at SAMPLE_RATE, peak-normalised across channels.

    Mono and stereo are kept as they are (stereo calls carry one party per channel); files with
    more channels are mixed down to mono, as no channel convention exists for them.
    """
    info = info or probe(path)
    channels = 2 if info.channels == 2 else 1
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-threads",
        "0",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-f",
        "f32le",
        "-ac",
        str(channels),
        "-ar",
        str(SAMPLE_RATE),
        "-",
    ]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"decoding failed: {detail[-1] if detail else 'ffmpeg error'}")
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    samples = samples[: samples.size - samples.size % channels].reshape(-1, channels).T
    seconds = samples.shape[1] / SAMPLE_RATE
    if samples.shape[1] < MIN_DURATION * SAMPLE_RATE:
        raise AudioError(f"too short: {seconds:.2f} s of audio")
    # A recording cut short (an interrupted copy or upload) would pass for a call that ended early,
    # exactly what the drop-off analysis looks for: it is refused rather than scored.
    # Only lengths a header states count: FLAC's sample total, a WAV's data size. Other formats'
    # lengths may be estimates from the bitrate (or, for Ogg, from the last page that arrived).
    declared = info.duration if info.codec == "flac" else declared_wav_seconds(path)
    if declared > 1.0 and seconds < TRUNCATED_SHARE * declared - 0.5:
        raise AudioError(f"truncated: the file declares {declared:.1f} s but holds {seconds:.1f} s of audio")
    if float(np.abs(samples).max()) < SILENT_BELOW:
        raise AudioError(f"silent: {seconds:.0f} s with nothing louder than {20 * np.log10(SILENT_BELOW):.0f} dBFS")
    return normalise(samples)


def declared_wav_seconds(path: str | Path) -> float:
    """The length a WAV file's header promises (its data chunk's size), 0 for other files.

    ffprobe reports a WAV's length from the bytes present, so a cut-off WAV looks whole to it;
    the header still says how much audio was written."""
    import struct

    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return 0.0
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, size = head[position : position + 4], struct.unpack("<I", head[position + 4 : position + 8])[0]
        if chunk == b"fmt " and position + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[position + 16 : position + 20])[0]
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark a WAV written as a stream, whose length was never filled in
            return size / byte_rate if byte_rate and 0 < size < 0xFFFFFFFF else 0.0
        position += 8 + size + (size & 1)
    return 0.0


def normalise(samples: np.ndarray) -> np.ndarray:
    """Remove DC offset and scale all channels by one gain so the loudest sample is PEAK.

    One gain for all channels keeps their level relation, which stereo speaker detection uses.
    """
    samples = samples - samples.mean(axis=1, keepdims=True)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > 1e-6:
        samples = samples * (PEAK / peak)
    return np.ascontiguousarray(samples, dtype=np.float32)


def is_dual_mono(samples: np.ndarray, threshold_db: float = -30.0) -> bool:
    """A stereo file whose channels carry the same signal (a mono recording saved as stereo).

    True when the channels' difference is `threshold_db` or more below the signal itself; such
    files must be diarized as mono, since "one party per channel" does not hold.
    """
    if samples.shape[0] != 2:
        return False
    signal = float(np.mean(samples.astype(np.float64) ** 2)) + 1e-12
    difference = float(np.mean((samples[0].astype(np.float64) - samples[1]) ** 2))
    return 10 * np.log10(difference / signal + 1e-12) < threshold_db


def mixdown(samples: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (samples,) mono."""
    return samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
