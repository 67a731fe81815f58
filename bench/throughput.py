"""Throughput: hours of audio per wall-clock hour, the ASR engines alone against the whole pipeline.

    python -m bench.throughput                     # eval folders + the three demo sets
    python -m bench.throughput --limit 4           # 4 stereo + 4 mono files spread over the sets
    python -m bench.throughput --runs openai:1,faster:2   # which pipeline runs (ENGINE:WORKERS)

On the same recordings, split into stereo and mono (a stereo file whose channels are one signal
counts as mono, as the pipeline treats it), in one run:
- `openai plain`: openai-whisper's `transcribe` (word timestamps, float32) on the mixed-down
  audio, models loaded before the clock starts;
- `faster batched int8`: faster-whisper's BatchedInferencePipeline (its Silero VAD, batch 8,
  word timestamps) on the same audio, loaded before the clock starts;
- `salescalls <engine>, N workers` (`--runs`): the whole nightly flow (`salescalls.nightly.flow.nightly`) on an inbox
  of copies of the files, from decoding to the stored record in a fresh DuckDB, in its own
  process and with the configured engine; the clock covers the whole run, model loading and
  worker start-up included, as a night would see it.
Real speech for stereo beyond the demo: the pyannote sample with each reference speaker on a
channel of their own. Prints hours of audio per hour and each system's ratio to openai plain;
JSON in bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import stamp, write_json
from salescalls.speech import audio

ROOT = Path(__file__).resolve().parent.parent
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def _eval_root() -> Path | None:
    from salescalls.speech.models import find_shared

    shared = find_shared(ROOT)
    return shared.parent / "eval" if shared and (shared.parent / "eval").is_dir() else None


def split_by_speaker(recording: Path, rttm: Path, target: Path) -> Path | None:
    """A two-channel copy of a mono recording: each of its two reference speakers on a channel,
    the other's turns silent there (a stereo call made from real speech)."""
    import soundfile as sf
    from pyannote.database.util import load_rttm

    reference = load_rttm(str(rttm)).get(recording.stem)
    if reference is None or len(reference.labels()) != 2:
        return None
    samples = audio.load(recording)[0]
    stereo = np.zeros((2, samples.size), dtype=np.float32)
    for channel, label in enumerate(sorted(reference.labels())):
        for segment in reference.label_timeline(label).support():
            first, last = int(segment.start * audio.SAMPLE_RATE), int(segment.end * audio.SAMPLE_RATE)
            stereo[channel, first:last] = samples[first:last]
    sf.write(target, stereo.T, audio.SAMPLE_RATE)
    return target


def collect(work: Path, limit: int) -> dict[str, list[Path]]:
    """The recordings, by kind: stereo (two different channels) and mono."""
    files: list[Path] = []
    eval_root = _eval_root()
    if eval_root:
        for folder in sorted(p for p in eval_root.iterdir() if p.is_dir()):
            files += sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        sample = eval_root / "pyannote_sample"
        made = split_by_speaker(sample / "sample.wav", sample / "sample.rttm", work / "sample-stereo.wav")
        files += [made] if made else []
    for folder in ("data/demo", "data/demo-ru", "data/demo-hu"):
        files += sorted(p for p in (ROOT / folder).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    kinds: dict[str, list[Path]] = {"stereo": [], "mono": []}
    for path in files:
        samples = audio.load(path)
        stereo = samples.shape[0] == 2 and not audio.is_dual_mono(samples)
        kinds["stereo" if stereo else "mono"].append(path)
    if limit:  # spread over the sets: every n-th file
        kinds = {kind: paths[:: max(1, len(paths) // limit)][:limit] for kind, paths in kinds.items()}
    return kinds


def with_copies(paths: list[Path], copies: int, work: Path) -> list[Path]:
    """`paths` and `copies - 1` more versions of each, every one a distinct call for the nightly
    flow (which keys calls by the file's hash and would skip a byte-identical copy): copy k starts
    with k samples of silence, so what is decoded is the same speech."""
    import soundfile as sf

    made = list(paths)
    folder = work / "copies"
    folder.mkdir(exist_ok=True)
    for path in paths:
        samples = audio.load(path)
        for k in range(1, copies):
            shifted = np.concatenate([np.zeros((samples.shape[0], k), dtype=np.float32), samples], axis=1)
            target = folder / f"{path.stem}-copy{k}.flac"
            sf.write(target, shifted.T, audio.SAMPLE_RATE)
            made.append(target)
    return made


def seconds_of(paths: list[Path]) -> float:
    return sum(audio.probe(p).duration or 0.0 for p in paths)


def asr_alone(paths: list[Path], system: str, models_dir: Path, threads: int) -> float:
    """Seconds one ASR engine takes on `paths` (mixed down), models loaded and warmed first."""
    from salescalls.speech import ctranslate, transcribe

    mixed = [audio.mixdown(audio.load(p)) for p in paths]
    warm = np.random.default_rng(0).normal(0, 0.05, audio.SAMPLE_RATE * 5).astype(np.float32)
    if system == "openai plain":
        model = transcribe.load_model(models_dir, "base", "cpu", threads, "openai")
        run = lambda samples: model.transcribe(samples, word_timestamps=True, fp16=False)  # noqa: E731
    else:
        from faster_whisper import BatchedInferencePipeline

        model = ctranslate.load(ctranslate.weights_dir(models_dir, "base"), "int8", threads, batch_size=8).model
        pipeline = BatchedInferencePipeline(model)
        run = lambda samples: list(pipeline.transcribe(samples, batch_size=8, word_timestamps=True)[0])  # noqa: E731
    run(warm)
    started = time.perf_counter()
    for samples in mixed:
        run(samples)
    return time.perf_counter() - started


def pipeline_run(paths: list[Path], workers: int, work: Path, env: dict[str, str]) -> dict:
    """The nightly flow on an inbox of `paths`, in a fresh process; wall-clock seconds and counts."""
    run_dir = work / f"run-{len(list(work.glob('run-*')))}"
    inbox = run_dir / "inbox"
    inbox.mkdir(parents=True)
    for index, path in enumerate(paths):
        shutil.copy(path, inbox / f"{index:03d}-{path.name}")
    code = (
        "import json, sys; from salescalls.nightly.flow import nightly; "
        f"s = nightly({str(inbox)!r}, database={str(run_dir / 'calls.duckdb')!r}, workers={workers}); "
        "print('RESULT ' + json.dumps({k: s[k] for k in ('calls_added', 'quarantined', 'engine')}))"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise SystemExit(f"the nightly run failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    import duckdb

    # What the calls themselves took (every step of analyse_call, as stored with each call): the
    # run's wall clock less Prefect's and the models' start-up, which a long night amortises.
    with duckdb.connect(str(run_dir / "calls.duckdb"), read_only=True) as con:
        steps = con.execute("SELECT timings FROM calls").fetchall()
    per_step: dict[str, float] = {}
    for (timings,) in steps:
        for step, seconds in json.loads(timings).items():
            per_step[step] = per_step.get(step, 0.0) + seconds
    return {
        "seconds": wall,
        "call_seconds": round(sum(per_step.values()), 1),
        "steps": {step: round(seconds, 1) for step, seconds in sorted(per_step.items(), key=lambda kv: -kv[1])},
        **json.loads(lines[-1][7:]),
    }


def parse_run(run: str) -> tuple[str, str | None, int, bool]:
    """'faster/float32:2' -> ('faster', 'float32', 2, False); the compute type is optional, and a
    ':spin' suffix runs with the OpenMP runtimes' own wait policy (threads spin after their work)
    instead of the product's OMP_WAIT_POLICY=PASSIVE, to measure what that setting buys."""
    engine_part, _, rest = run.partition(":")
    workers, _, suffix = rest.partition(":")
    engine, _, compute = engine_part.partition("/")
    if not workers.isdigit() or int(workers) < 1 or suffix not in ("", "spin"):
        raise SystemExit(f"--runs: {run!r} is not ENGINE[/COMPUTE]:WORKERS[:spin] (e.g. faster/float32:2)")
    return engine, compute or None, int(workers), suffix == "spin"


def main(argv: list[str] | None = None) -> dict:
    from salescalls.config import Settings
    from salescalls.speech import transcribe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two files of each kind")
    parser.add_argument("--limit", type=int, default=0, help="at most N files of each kind (0: all)")
    parser.add_argument(
        "--runs",
        default="openai:1,faster/float32:1,faster/float32:2",
        help="pipeline runs as ENGINE[/COMPUTE]:WORKERS[:spin] (other engine settings from SALESCALLS_ASR_*)",
    )
    parser.add_argument(
        "--copies", type=int, default=1, help="each file N times (a night-sized inbox; each copy a distinct call)"
    )
    parser.add_argument("--json", default="bench/results/throughput.json")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    threads = settings.threads
    env = {
        **os.environ,
        "SALESCALLS_REPORT_DIR": "off",
        "PYANNOTE_METRICS_ENABLED": "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # a busy machine starts it slowly
    }
    report: dict = {
        **stamp(),
        "engine": transcribe.engine_label(settings),
        "threads": threads,
        "kinds": {},
    }
    with tempfile.TemporaryDirectory(prefix="salescalls-throughput-") as tmp:
        work = Path(tmp)
        kinds = collect(work, 2 if args.quick else args.limit)
        if args.copies > 1:
            kinds = {kind: with_copies(paths, args.copies, work) for kind, paths in kinds.items()}
        for kind, paths in kinds.items():
            if not paths:
                continue
            audio_s = seconds_of(paths)
            rows = {}
            for system in ("openai plain", "faster batched int8"):
                print(f"{kind}: {system} on {len(paths)} files ({audio_s:.0f} s)...", flush=True)
                rows[system] = {"seconds": asr_alone(paths, system, settings.models_dir, threads)}
            for run in args.runs.split(","):
                engine, compute, workers, spin = parse_run(run)
                chosen = {"asr_engine": engine, **({"asr_compute": compute} if compute else {})}
                label = transcribe.engine_label(Settings.from_env(**chosen))
                name = f"salescalls {label}, {workers} worker{'s' if workers > 1 else ''}{', spinning' if spin else ''}"
                print(f"{kind}: {name}...", flush=True)
                # One worker uses every core; two share them (one torch/CTranslate2 thread each).
                run_env = {
                    **env,
                    "SALESCALLS_ASR_ENGINE": engine,
                    **({"SALESCALLS_ASR_COMPUTE": compute} if compute else {}),
                    "SALESCALLS_THREADS": str(threads if workers == 1 else max(1, threads // workers)),
                    # Empty: libgomp's default policy (salescalls only sets the variable when absent).
                    "OMP_WAIT_POLICY": "" if spin else env.get("OMP_WAIT_POLICY", "PASSIVE"),
                }
                rows[name] = pipeline_run(paths, workers, work, run_env)
                if rows[name]["calls_added"] + rows[name]["quarantined"] != len(paths):
                    raise SystemExit(f"{name}: {rows[name]} for {len(paths)} files")
            base = rows["openai plain"]["seconds"]
            for row in rows.values():
                if "call_seconds" in row:  # one worker's pace once started (calls one after another)
                    row["per_worker_audio_hours_per_hour"] = round(audio_s / row["call_seconds"], 2)
                row["audio_hours_per_hour"] = round(audio_s / row["seconds"], 2)
                row["vs_openai_plain"] = round(base / row["seconds"], 2)
                row["seconds"] = round(row["seconds"], 1)
            report["kinds"][kind] = {"files": [p.name for p in paths], "audio_seconds": round(audio_s, 1), **rows}

    print(f"\n{report['date']}, {report['machine']}, pipeline engine {report['engine']}")
    print(
        f"{'kind':<7} {'system':<40} {'wall s':>8} {'h audio / h':>12} {'x openai plain':>15} "
        f"{'calls s':>8} {'h/h per worker, started':>24}"
    )
    for kind, numbers in report["kinds"].items():
        for system, row in numbers.items():
            if isinstance(row, dict):
                print(
                    f"{kind:<7} {system:<40} {row['seconds']:>8.1f} {row['audio_hours_per_hour']:>12.2f} "
                    f"{row['vs_openai_plain']:>15.2f} {row.get('call_seconds', ''):>8} "
                    f"{row.get('per_worker_audio_hours_per_hour', ''):>24}"
                )
    for kind, numbers in report["kinds"].items():
        for system, row in numbers.items():
            if isinstance(row, dict) and "steps" in row:
                steps = ", ".join(f"{step} {seconds}" for step, seconds in row["steps"].items())
                print(f"{kind} {system}, call seconds by step: {steps}")
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
