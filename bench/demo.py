"""How the demo run did: stored results against the demo's ground truth, and time per step.

    python -m bench.demo [--db data/salescalls.duckdb] [--truth data/demo] [--json bench/results/demo.json]

Run `make demo` first. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench.report import stamp, write_json
from salescalls.db import store
from salescalls.insights import funnel
from salescalls.insights.tables import format_table
from salescalls.learning.evaluate import (
    compare_call,
    compare_database,
    label_from_truth,
    match_turns,
    truth_files,
    write_truth_database,
)
from salescalls.nightly.inbox import read_metadata
from salescalls.pipeline import label_stages
from salescalls.script import stages
from salescalls.script.spec import load_script

FUNNEL_COUNTS = ("got_here", "occurred", "dropped", "completed")


def funnel_counts(con, script_id: str) -> dict[str, dict[str, int]]:
    """The stored funnel of one script: per stage (in script order), its FUNNEL_COUNTS summed
    over the script's versions."""
    frame = funnel.dropoff(con, script_id)
    counts: dict[str, dict[str, int]] = {}
    for row in frame.sort_values("position").itertuples():
        stage = counts.setdefault(row.stage, dict.fromkeys(FUNNEL_COUNTS, 0))
        for name in FUNNEL_COUNTS:
            stage[name] += int(getattr(row, name))
    return counts


def truth_funnel(con, truth_dir: str, script) -> dict[str, dict[str, int]]:
    """The funnel the ground truth implies for the stored calls that have a truth file: each
    built as if the pipeline had got every utterance right (evaluate.truth_record), with its
    calls.csv row, in a scratch database, and counted by the same SQL as the stored one."""
    metadata = read_metadata(Path(truth_dir) / "calls.csv").rows
    stored = {
        row[0]
        for row in con.execute("SELECT file FROM calls WHERE script_id = $script", {"script": script.id}).fetchall()
    }
    with tempfile.TemporaryDirectory() as scratch:
        calls = [(t, metadata.get(t["file"], {}), "") for _, t in truth_files(truth_dir) if t["file"] in stored]
        path = write_truth_database(Path(scratch) / "truth.duckdb", script, calls)
        with store.reader(path) as truth_con:
            return funnel_counts(truth_con, script.id)


def rescored_funnel(db: str, script, rescored: list) -> dict[str, dict[str, int]]:
    """The funnel after `salescalls rescore` with the review round's model: a scratch copy of
    the database with the `rescored` (call_id, utterances, score) saved over the stored ones."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "rescored.duckdb"
        shutil.copyfile(db, copy)
        with store.writer(copy) as con:
            store.save_rescored_many(con, rescored, "bench-review-round", script)
        with store.reader(copy) as con:
            return funnel_counts(con, script.id)


def funnel_differences(found: dict, truth: dict) -> list[str]:
    """'objection got_here 8 vs 9' for every stage count that is not the truth's."""
    return [
        f"{stage} {name} {found.get(stage, {}).get(name, 0)} vs {counts[name]}"
        for stage, counts in truth.items()
        for name in FUNNEL_COUNTS
        if found.get(stage, {}).get(name, 0) != counts[name]
    ]


def leave_one_call_out(con, truth_dir: str, script) -> dict:
    """Stage results when the model is trained on the other demo calls' ground-truth labels.

    Each stored call's utterances get the stage of the truth turn they overlap most; for every
    call a model is trained on the script plus all *other* labelled calls, then scores this one.
    This is what `salescalls train` does with a team's labels, measured without seeing the call.
    """
    calls = []
    for path, truth in truth_files(truth_dir):
        row = con.execute("SELECT call_id, language FROM calls WHERE file = ?", [truth["file"]]).fetchone()
        if row is None:
            continue
        utterances = store.stored_utterances(con, row[0])
        matches = match_turns(utterances, truth["turns"])
        labels = tuple(
            truth["turns"][m]["stage"] if m is not None and not u.backchannel else None
            for u, m in zip(utterances, matches, strict=True)
        )
        labelled = stages.LabelledCall(
            tuple(u.text for u in utterances), tuple(u.role for u in utterances), labels, row[1]
        )
        calls.append((path.stem, truth, utterances, labelled, row[1]))
    right_end = right_stage = matched = 0
    for i, (name, truth, utterances, _, language) in enumerate(calls):
        model = stages.train(script, [c[3] for j, c in enumerate(calls) if j != i])
        scored, score = label_stages(utterances, script, model, language)
        comparison = compare_call(name, list(scored), score.end_stage, score.ended_by, truth)
        right_end += comparison.end_stage_ok
        right_stage += comparison.stage_correct
        matched += comparison.utterances
    return {"calls": len(calls), "end_stage_correct": right_end, "stage_accuracy": round(right_stage / matched, 4)}


def review_round(con, truth_dir: str, script, labels: int = 10) -> tuple[dict, list]:
    """One round of the QA loop, measured: the `labels` least confident utterances labelled from
    the truth, a candidate trained and compared as `salescalls train` does, then every call
    scored with the model `train` would leave active (the candidate only if promoted).

    Returns the summary and the rescored calls, (call_id, utterances, score) as `rescore` stores them.
    """
    from salescalls.learning import review, training

    rows = label_from_truth(con, review.review_rows(con, labels, script.id), truth_dir)
    by_call: dict[str, dict[int, str]] = {}
    for row in rows:
        if row["label"]:
            by_call.setdefault(row["call_id"], {})[int(row["idx"])] = row["label"]
    calls = []
    for call_id, labelled in sorted(by_call.items()):
        language = con.execute("SELECT language FROM calls WHERE call_id = ?", [call_id]).fetchone()[0]
        utterances = store.stored_utterances(con, call_id)
        calls.append(
            stages.LabelledCall(
                tuple(u.text for u in utterances),
                tuple(u.role for u in utterances),
                tuple(labelled.get(i) for i in range(len(utterances))),
                language,
                call_id,
            )
        )
    comparison = training.held_out_comparison(script, calls, None)
    promoted = comparison is not None and comparison["candidate_accuracy"] >= comparison["current_accuracy"]
    model = stages.train(script, calls) if promoted else stages.train_from_script(script)
    right_end = right_stage = matched = 0
    rescored = []
    for path, truth in truth_files(truth_dir):
        row = con.execute("SELECT call_id, language FROM calls WHERE file = ?", [truth["file"]]).fetchone()
        if row is None:
            continue
        scored, score = label_stages(store.stored_utterances(con, row[0]), script, model, row[1])
        rescored.append((row[0], scored, score))
        comparison_ = compare_call(path.stem, list(scored), score.end_stage, score.ended_by, truth)
        right_end += comparison_.end_stage_ok
        right_stage += comparison_.stage_correct
        matched += comparison_.utterances
    summary = {
        "labels": sum(len(v) for v in by_call.values()),
        "comparison": comparison,
        "promoted": promoted,
        "end_stage_correct": right_end,
        "stage_accuracy": round(right_stage / max(matched, 1), 4),
    }
    return summary, rescored


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="data/salescalls.duckdb")
    parser.add_argument("--truth", default="data/demo")
    parser.add_argument("--json", default="bench/results/demo.json")
    parser.add_argument("--script", default="data/scripts/demo.yaml")
    args = parser.parse_args(argv)

    with store.reader(args.db) as con:
        from salescalls.learning.review import use_stored_vectors

        texts = [row[0] for row in con.execute("SELECT text FROM utterances").fetchall()]
        use_stored_vectors(con, stages.default_encoder(), texts, keep=False)  # the run kept them
        comparisons = compare_database(con, args.truth)
        script = load_script(args.script)
        trained = leave_one_call_out(con, args.truth, script) if comparisons else None
        reviewed, rescored = review_round(con, args.truth, script) if comparisons else (None, [])
        funnels = {"truth": truth_funnel(con, args.truth, script), "stored": funnel_counts(con, script.id)}
        calls = con.execute("SELECT file, duration, channels, sample_rate, timings FROM calls ORDER BY file").df()
    if not comparisons:
        raise SystemExit(f"no stored call has a ground-truth file in {args.truth}: run `make demo` first")
    funnels["after_one_review_round"] = rescored_funnel(args.db, script, rescored)
    import pandas as pd

    rows = pd.DataFrame(
        [
            {
                "call": c.call,
                "end stage": c.end_stage,
                "truth": c.end_stage_truth,
                "ok": "yes" if c.end_stage_ok else "NO",
                "ended by": f"{c.ended_by}/{c.ended_by_truth}",
                "stage acc": c.stage_correct / max(c.utterances, 1),
                "role acc": c.role_correct / max(c.utterances, 1),
                "utterances": c.utterances,
            }
            for c in comparisons
        ]
    )
    print(format_table(rows, {k: k for k in rows.columns}, {"stage acc": ".0%", "role acc": ".0%"}))
    matched = sum(c.utterances for c in comparisons)
    summary = {
        "calls": len(comparisons),
        "end_stage_correct": sum(c.end_stage_ok for c in comparisons),
        "ended_by_correct": sum(c.ended_by == c.ended_by_truth for c in comparisons),
        "stage_accuracy": round(sum(c.stage_correct for c in comparisons) / matched, 4),
        "role_accuracy": round(sum(c.role_correct for c in comparisons) / matched, 4),
    }
    summary["trained_leave_one_call_out"] = trained
    summary["after_one_review_round"] = reviewed
    summary["funnel"] = {
        **funnels,
        "differences": {k: funnel_differences(v, funnels["truth"]) for k, v in funnels.items() if k != "truth"},
    }
    steps: dict[str, float] = {}
    for timings in calls["timings"]:
        for step, seconds in json.loads(timings).items():
            steps[step] = steps.get(step, 0.0) + seconds
    audio_seconds = float(calls["duration"].sum())
    mono, stereo = calls[calls["channels"] == 1], calls[calls["channels"] == 2]

    def rtf(frame) -> float:
        total = sum(sum(json.loads(t).values()) for t in frame["timings"])
        return round(total / max(float(frame["duration"].sum()), 1e-9), 3)

    summary["timing"] = {
        "audio_seconds": round(audio_seconds, 1),
        "seconds_per_step": {k: round(v, 1) for k, v in steps.items()},
        "real_time_factor": {"all": rtf(calls), "mono": rtf(mono), "stereo": rtf(stereo)},
    }
    print(
        f"\nend stage right for {summary['end_stage_correct']}/{summary['calls']} calls, who ended it for "
        f"{summary['ended_by_correct']}/{summary['calls']}; utterance stage accuracy {summary['stage_accuracy']:.1%}, "
        f"role accuracy {summary['role_accuracy']:.1%}"
    )
    print(
        f"trained on the other calls' labels (leave one call out): end stage right for "
        f"{trained['end_stage_correct']}/{trained['calls']} calls, utterance stage accuracy "
        f"{trained['stage_accuracy']:.1%}"
    )
    print(
        f"after one review round ({reviewed['labels']} labels from the truth, candidate "
        f"{'promoted' if reviewed['promoted'] else 'kept out'}): end stage right for "
        f"{reviewed['end_stage_correct']}/{summary['calls']} calls, "
        f"utterance stage accuracy {reviewed['stage_accuracy']:.1%}"
    )
    print("\nfunnel (got this far / stage occurred) against the ground truth:")
    funnel_rows = pd.DataFrame(
        [
            {"stage": stage, **{f"{k} {n}": funnels[k][stage][n] for k in funnels for n in ("got_here", "occurred")}}
            for stage in funnels["truth"]
        ]
    )
    print(format_table(funnel_rows, {k: k for k in funnel_rows.columns}, {}))
    for name, differences in summary["funnel"]["differences"].items():
        print(f"{name}: " + ("every stage's counts equal the truth's" if not differences else "; ".join(differences)))
    print(
        f"{audio_seconds:.0f} s of audio; seconds per step: "
        + ", ".join(f"{k} {v:.1f}" for k, v in summary["timing"]["seconds_per_step"].items())
        + f"; real-time factor {summary['timing']['real_time_factor']}"
    )
    summary.update(
        {
            **stamp(),
            "per_call": rows.to_dict(orient="records"),
        }
    )
    write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main()
