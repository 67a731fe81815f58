"""Cost against size: time and memory of the nightly flow for 1, 10 and 100 calls, and for one
short and one long call.

    python -m bench.linear                                # 1/10/100 calls of 20 s; one 5- and one 60-min call
    python -m bench.linear --counts 1,10 --minutes 5,15   # smaller
    python -m bench.linear --workers 2                    # the two-worker layout

Every size runs the whole nightly flow (decode to stored record, fresh DuckDB) in its own process,
so each peak memory is that run's own. The calls are distinct clips of the demo's real
recordings (bench.memory.make_calls); the long calls are the demo's stereo calls one after
another (as tests/test_robustness.py builds them). Reported per size: wall seconds, the stored
per-call step time, both per second of audio, and the run's peak resident memory. Linear cost
shows as a flat time per audio second (start-up amortised: falling from 1 call to 10) and a peak
memory that does not grow with the number of calls; for one call, compare the memory's growth
with the decoded audio's (16 kHz float32: 7.7 MB per stereo minute, 3.8 more for its mono mix).
JSON in bench/results/linear.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.memory import make_calls
from bench.report import stamp, write_json

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
STEREO_PARTS = ("c01", "c07", "c09", "c11")  # the demo's stereo calls

RUN = """
import json, resource, sys
from salescalls.nightly.flow import nightly
summary = nightly(sys.argv[1], database=sys.argv[2], workers=int(sys.argv[3]))
peaks = [row["peak_rss_mb"] for row in summary["memory"]]
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"stored": summary["calls_added"], "quarantined": summary["quarantined"],
      "engine": summary["engine"], "peak_rss_mb": max(peaks + [own])}))
"""


def long_call(path: Path, minutes: float) -> Path:
    """A stereo call of `minutes`: the demo's stereo calls one after another, repeated."""
    import soundfile as sf

    from salescalls.speech import audio

    one_round = np.concatenate([audio.load(DEMO / f"{name}.ogg") for name in STEREO_PARTS], axis=1)
    length = int(minutes * 60 * audio.SAMPLE_RATE)
    rounds = int(np.ceil(length / one_round.shape[1]))
    sf.write(path, np.tile(one_round, rounds)[:, :length].T, audio.SAMPLE_RATE, format="FLAC")
    return path


def run_nightly(inbox: Path, workers: int, env: dict[str, str]) -> dict:
    """The nightly flow on `inbox` in a fresh process: wall seconds, stored step seconds, peak MB."""
    import duckdb

    database = inbox.parent / "calls.duckdb"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(inbox), str(database), str(workers)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"the nightly run on {inbox} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT duration, timings FROM calls").fetchall()
    audio_s = sum(duration for duration, _ in rows)
    call_s = sum(sum(json.loads(timings).values()) for _, timings in rows)
    return {
        **json.loads(lines[-1][7:]),
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 1),
        "call_s": round(call_s, 1),
        "wall_per_audio_s": round(wall / audio_s, 4),
        "call_per_audio_s": round(call_s / audio_s, 4),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,10,100", help="inbox sizes, calls")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each call of the inboxes")
    parser.add_argument("--minutes", default="5,60", help="lengths of the single long calls, minutes")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", default="bench/results/linear.json")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.counts.split(",") if n]
    minutes = [float(m) for m in args.minutes.split(",") if m]

    env = {
        **os.environ,
        "SALESCALLS_LANGUAGE": os.environ.get("SALESCALLS_LANGUAGE", "en"),
        "SALESCALLS_REPORT_DIR": "off",
        "PYANNOTE_METRICS_ENABLED": "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    report: dict = {
        **stamp(),
        "workers": args.workers,
        "calls": {},
        "long": {},
    }
    with tempfile.TemporaryDirectory(prefix="salescalls-linear-") as tmp:
        work = Path(tmp)
        for count in counts:
            print(f"{count} calls of {args.seconds:.0f} s...", flush=True)
            inbox = work / f"calls-{count}" / "inbox"
            make_calls(inbox, count, args.seconds)
            run_env = {**env, "SALESCALLS_WORK_DIR": str(inbox.parent / "work")}
            report["calls"][count] = run_nightly(inbox, args.workers, run_env)
        for length in minutes:
            print(f"one call of {length:g} min...", flush=True)
            inbox = work / f"long-{length:g}" / "inbox"
            inbox.mkdir(parents=True)
            long_call(inbox / f"long {length:g} min.flac", length)
            run_env = {**env, "SALESCALLS_WORK_DIR": str(inbox.parent / "work")}
            report["long"][length] = run_nightly(inbox, args.workers, run_env)

    print(f"\n{report['date']}, {report['machine']}, {args.workers} worker(s)")
    header = ("size", "audio s", "wall s", "wall/audio", "calls s", "calls/audio", "peak MB")
    print(f"{header[0]:<16} " + " ".join(f"{h:>{max(8, len(h))}}" for h in header[1:]))
    rows = [(f"{n} calls", r) for n, r in report["calls"].items()]
    rows += [(f"1 call, {m:g} min", r) for m, r in report["long"].items()]
    for label, row in rows:
        print(
            f"{label:<16} {row['audio_s']:>8.0f} {row['wall_s']:>8.1f} {row['wall_per_audio_s']:>10.3f} "
            f"{row['call_s']:>8.1f} {row['call_per_audio_s']:>11.3f} {row['peak_rss_mb']:>8.0f}"
        )
    for group in ("calls", "long"):  # the largest against the smallest of each group, same run
        sizes = sorted(report[group])
        if len(sizes) > 1:
            small, large = report[group][sizes[0]], report[group][sizes[-1]]
            ratio = {
                "call_per_audio_s": round(large["call_per_audio_s"] / small["call_per_audio_s"], 2),
                "peak_rss_mb": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
            }
            report[f"{group}_largest_over_smallest"] = ratio
            print(f"{group}: largest / smallest: step time per audio second x{ratio['call_per_audio_s']}, "
                  f"peak memory x{ratio['peak_rss_mb']}")  # fmt: skip
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
