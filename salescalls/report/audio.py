"""Publishing the recordings the pages play: each call's audio as MP3 beside the pages, personal
data silenced, reused from the previous build when unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from salescalls.report.layout import ReportOptions, Site, page_id

AUDIO_BITRATE = "48k"  # speech at 22 kHz: ~0.35 MB a minute, plays in every browser


def find_recording(call: dict, audio_dirs: tuple[Path, ...]) -> Path | None:
    """The call's recording where it was processed, else under one of `audio_dirs` by file name."""
    candidates = [Path(call["source"])] if call.get("source") else []
    candidates += [Path(folder) / call["file"] for folder in audio_dirs]
    return next((path for path in candidates if path.is_file()), None)


def transcode(source: Path, target: Path, silence: list[tuple[float, float]] = ()) -> None:
    """The recording as MP3 (speech quality), written under a temporary name and then renamed;
    `silence` lists (start, end) seconds muted in it (where personal data was said)."""
    partial = target.with_name(target.name + ".part")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-vn", "-map_metadata", "-1"]
    if silence:
        spans = "+".join(f"between(t,{start:.3f},{end:.3f})" for start, end in silence)
        command += ["-af", f"volume=enable='{spans}':volume=0"]
    command += ["-ar", "22050", "-c:a", "libmp3lame", "-b:a", AUDIO_BITRATE, "-f", "mp3", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not convert {source.name}: {result.stderr.strip()[:300]}")
    partial.replace(target)


def publish_audio(
    calls: dict[str, dict], folder: Path, previous: Path | None, options: ReportOptions, site: Site, progress
) -> None:
    """Transcode each listed call's recording into folder/audio, reusing the previous site's copy
    (named by the call id, which is the recording's hash, so the same name is the same audio)."""
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    jobs = []
    for call in calls.values():
        # A recording with personal data silenced gets its own name: never confused with an unredacted copy.
        name = f"audio/{page_id(call['call_id'])}{'-redacted' if call['silence'] else ''}.mp3"
        old = previous / name if previous else None
        if old is not None and old.is_file():
            _link_or_copy(old, folder / name)
            call["audio"] = name
            continue
        source = find_recording(call, options.audio_dirs)
        if source is None:
            site.audio_missing.append(call["file"])
            continue
        jobs.append((call, source, folder / name, name))

    def run(job):
        call, source, target, name = job
        try:
            transcode(source, target, call["silence"])
            call["audio"] = name
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            call["audio_error"] = str(error)
            site.audio_missing.append(call["file"])

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, _ in enumerate(pool.map(run, jobs), start=1):
            if done % 25 == 0 or done == len(jobs):
                progress(f"audio: {done} of {len(jobs)} recordings converted")
    site.audio = sum(1 for call in calls.values() if call["audio"])


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no second copy on disk), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
