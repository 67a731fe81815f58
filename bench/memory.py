"""Memory over a night's batch: the nightly flow on N distinct real calls, the resident memory of
the process that analysed them after each call, and how much it grew.

    python -m bench.memory                     # 200 calls, one process (the default engine)
    python -m bench.memory --calls 40 --workers 2

The calls are clips of the demo's real recordings (mono and stereo, 8 to 16 kHz), each cut at its
own offset so every clip is a different call (its own audio hash). Growth is measured against the
baseline of the same run: the memory after the first few calls, when the models are loaded and
every code path has run once. A leak shows as a slope; flat memory as a slope near 0 MB per 100
calls and a last/baseline ratio near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
WARM_UP = 5  # calls after which the models are loaded and every path has run once


def make_calls(folder: Path, count: int, seconds: float) -> list[Path]:
    """`count` distinct clips of the demo recordings, `seconds` long, in a fresh inbox."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in DEMO.iterdir() if p.suffix in (".flac", ".ogg"))
    lengths = {p: _duration(p) for p in sources}
    made = []
    for index in range(count):
        source = sources[index % len(sources)]
        room = max(0.0, lengths[source] - seconds)
        offset = (index // len(sources)) * 2.3 % room if room else 0.0
        target = folder / f"call {index:04d} {source.stem}.flac"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{offset:.2f}", "-t", str(seconds), "-i", str(source),
             str(target)],
            check=True,
        )  # fmt: skip
        made.append(target)
    return made


def _duration(path: Path) -> float:
    probe = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    return float(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)


def summarise(trace: list[dict]) -> dict:
    """Per worker: memory at checkpoints, the baseline after WARM_UP calls, growth and slope."""
    workers = {}
    for worker in sorted({row["worker"] for row in trace}):
        rows = [row for row in trace if row["worker"] == worker]
        rss = np.array([row["rss_mb"] for row in rows])
        base = rss[min(WARM_UP, len(rss)) - 1]
        after = np.arange(len(rss))[WARM_UP:]
        slope = float(np.polyfit(after, rss[WARM_UP:], 1)[0] * 100) if len(after) > 2 else float("nan")
        marks = sorted({1, WARM_UP, *range(25, len(rss) + 1, 25), len(rss)} & set(range(1, len(rss) + 1)))
        workers[worker] = {
            "calls": len(rss),
            "rss_mb_at": {n: float(rss[n - 1]) for n in marks},
            "baseline_mb": float(base),
            "last_mb": float(rss[-1]),
            "last_over_baseline": round(float(rss[-1] / base), 3),
            "max_after_baseline_mb": float(rss[WARM_UP - 1 :].max()),
            "slope_mb_per_100_calls": round(slope, 1),
            "peak_rss_mb": float(max(row["peak_rss_mb"] for row in rows)),
        }
    return workers


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each call")
    parser.add_argument("--workers", type=int, default=1, help="1: one process; N: a local Dask cluster")
    parser.add_argument("--json", default="bench/results/memory.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("SALESCALLS_LANGUAGE", "en")
    os.environ["SALESCALLS_REPORT_DIR"] = "off"
    from salescalls.nightly.flow import nightly

    with tempfile.TemporaryDirectory(prefix="salescalls-memory-") as tmp:
        work = Path(tmp)
        os.environ["SALESCALLS_WORK_DIR"] = str(work / "work")
        os.environ["SALESCALLS_QUARANTINE_DIR"] = str(work / "quarantine")
        calls = make_calls(work / "inbox", args.calls, args.seconds)
        started = time.perf_counter()
        summary = nightly(str(work / "inbox"), database=str(work / "calls.duckdb"), workers=args.workers)
        elapsed = time.perf_counter() - started
    workers = summarise(summary["memory"])
    result = {
        "calls": len(calls),
        "seconds_per_call": args.seconds,
        "engine": summary["engine"],
        "stored": summary["calls_added"],
        "quarantined": summary["quarantined"],
        "wall_s": round(elapsed, 1),
        "workers": workers,
        "trace": summary["memory"],
    }
    print(f"\n{result['stored']} of {len(calls)} calls stored on {result['engine']} in {elapsed / 60:.1f} min\n")
    print(f"{'worker':<20} {'calls':>5} {'after 1':>8} {'baseline':>9} {'last':>7} {'last/base':>9} "
          f"{'MB/100 calls':>12} {'peak':>7}")  # fmt: skip
    for name, row in workers.items():
        print(
            f"{name:<20} {row['calls']:>5} {row['rss_mb_at'][1]:>8.0f} {row['baseline_mb']:>9.0f} "
            f"{row['last_mb']:>7.0f} {row['last_over_baseline']:>9.3f} {row['slope_mb_per_100_calls']:>12.1f} "
            f"{row['peak_rss_mb']:>7.0f}"
        )
        print("  resident MB after call n: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in row["rss_mb_at"].items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
