"""Load and endurance: one night of many calls on local workers while people read the database.

    python -m bench.load                          # 500 calls of 6 s on 2 workers, readers every 5 s
    python -m bench.load --calls 40 --every 3     # a short check

The nightly flow runs on `--calls` distinct clips of the demo's real recordings (bench.memory's
clips) on a local Dask cluster of `--workers` processes. Meanwhile a reader starts a CLI command
every `--every` seconds, in turn `salescalls dropoff` and `salescalls report` (without audio),
each its own process with a read-only connection, as a QA specialist and the report server would.
After the run it checks that nothing was lost (every recording stored or quarantined with a
reason) and nothing duplicated (one row per recording, one per utterance), and reports the total
time, the peak memory per worker and how the readers fared. JSON in bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from bench.memory import make_calls


def _reader(database: Path, report: Path, every: float, done: threading.Event, log: list[dict], start: float) -> None:
    """Alternate dropoff and report until the run is done; each query's outcome goes to `log`."""
    commands = [
        ["dropoff", "--db", str(database)],
        ["report", "--db", str(database), "--out", str(report), "--no-audio"],
    ]
    turn = 0
    while not done.wait(every):
        if not database.is_file():  # before the run's first write there is nothing to read
            continue
        command = commands[turn % len(commands)]
        turn += 1
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "salescalls.cli", *command], capture_output=True, text=True, timeout=600
        )
        log.append(
            {
                "command": command[0],
                "at_s": round(time.perf_counter() - start, 1),
                "seconds": round(time.perf_counter() - started, 2),
                "exit_code": result.returncode,
                "error": (result.stderr.strip().splitlines() or [""])[-1] if result.returncode else "",
            }
        )


def check(database: Path, calls: int) -> dict:
    """Nothing lost, nothing duplicated: what the database holds about the night's recordings."""
    with duckdb.connect(str(database), read_only=True) as con:
        stored, files = con.execute("SELECT count(*), count(DISTINCT file) FROM calls").fetchone()
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        twice = con.execute("SELECT count(*) - count(DISTINCT (call_id, idx)) FROM utterances").fetchone()[0]
        in_flight = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
        status = con.execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    return {
        "stored": stored,
        "quarantined": quarantined,
        "lost": calls - stored - quarantined,
        "stored_twice": stored - files,
        "utterances_twice": twice,
        "still_in_flight": in_flight,
        "run_status": status,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each call")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between reader queries")
    parser.add_argument("--json", default="bench/results/load.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("SALESCALLS_LANGUAGE", "en")
    os.environ["SALESCALLS_REPORT_DIR"] = "off"  # the readers write the report, the run does not
    from salescalls.nightly.flow import nightly

    with tempfile.TemporaryDirectory(prefix="salescalls-load-") as tmp:
        work = Path(tmp)
        os.environ["SALESCALLS_WORK_DIR"] = str(work / "work")
        os.environ["SALESCALLS_QUARANTINE_DIR"] = str(work / "quarantine")
        calls = make_calls(work / "inbox", args.calls, args.seconds)
        database = work / "calls.duckdb"
        queries: list[dict] = []
        done = threading.Event()
        started = time.perf_counter()
        reader = threading.Thread(target=_reader, args=(database, work / "report", args.every, done, queries, started))
        reader.start()
        try:
            summary = nightly(str(work / "inbox"), database=str(database), workers=args.workers)
        finally:
            done.set()
            reader.join()
        elapsed = time.perf_counter() - started
        verdict = check(database, len(calls))

    peaks: dict[str, float] = {}
    for row in summary["memory"]:
        peaks[row["worker"]] = max(peaks.get(row["worker"], 0.0), row["peak_rss_mb"])
    audio_hours = len(calls) * args.seconds / 3600
    by_command = {}
    for name in sorted({q["command"] for q in queries}):
        rows = [q for q in queries if q["command"] == name]
        seconds = [q["seconds"] for q in rows]
        by_command[name] = {
            "queries": len(rows),
            "failed": sum(q["exit_code"] != 0 for q in rows),
            "median_s": round(statistics.median(seconds), 2),
            "max_s": round(max(seconds), 2),
        }
    result = {
        "calls": len(calls),
        "seconds_per_call": args.seconds,
        "engine": summary["engine"],
        "wall_s": round(elapsed, 1),
        "calls_per_hour": round(len(calls) / elapsed * 3600, 1),
        "audio_hours_per_hour": round(audio_hours / (elapsed / 3600), 2),
        **verdict,
        "peak_rss_mb_per_worker": peaks,
        "readers": by_command,
        "reader_errors": [q for q in queries if q["exit_code"] != 0],
        "machine": f"{os.cpu_count()} cores",
    }
    ok = (
        verdict["lost"] == 0
        and verdict["stored_twice"] == 0
        and verdict["utterances_twice"] == 0
        and not result["reader_errors"]
    )
    print(
        f"\n{len(calls)} calls of {args.seconds:g} s on {summary['engine']}: {elapsed / 60:.1f} min "
        f"({result['calls_per_hour']:.0f} calls, {result['audio_hours_per_hour']:.2f} h of audio per hour)"
    )
    print(
        f"stored {verdict['stored']}, quarantined {verdict['quarantined']}, lost {verdict['lost']}, "
        f"stored twice {verdict['stored_twice']}, utterances twice {verdict['utterances_twice']}, "
        f"run {verdict['run_status']}"
    )
    print(f"\n{'worker':<24} {'peak MB':>8}")
    for worker, peak in sorted(peaks.items()):
        print(f"{worker:<24} {peak:>8.0f}")
    print(f"\n{'reader':<10} {'queries':>7} {'failed':>6} {'median s':>9} {'max s':>7}")
    for name, row in by_command.items():
        print(f"{name:<10} {row['queries']:>7} {row['failed']:>6} {row['median_s']:>9.2f} {row['max_s']:>7.2f}")
    for error in result["reader_errors"][:5]:
        print(f"  {error['command']} at {error['at_s']} s: exit {error['exit_code']}: {error['error']}")
    print("\nverdict: " + ("nothing lost, nothing duplicated, every reader answered" if ok else "FAILED"))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    if not ok:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
