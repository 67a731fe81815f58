"""Compare scored calls with ground truth (the demo's <call>.json files, or a team's labelled calls).

Ground truth is a JSON object with `turns` (start, end, role, stage, text), `end_stage`,
`ended_by` and optionally `outcome`. Utterances are matched to the truth turn they overlap most
in time, so the comparison does not depend on how either side splits sentences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salescalls.db import store
from salescalls.records import ScoredUtterance
from salescalls.script.score import score_call
from salescalls.script.spec import Script


@dataclass(frozen=True)
class CallComparison:
    call: str  # truth file stem
    utterances: int  # scored utterances matched to a truth turn
    stage_correct: int  # of those, with the truth turn's stage
    role_correct: int  # of those, with the truth turn's role
    end_stage: str | None  # found
    end_stage_truth: str
    ended_by: str | None  # found
    ended_by_truth: str

    @property
    def end_stage_ok(self) -> bool:
        return self.end_stage == self.end_stage_truth


def load_truth(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def truth_files(folder: str | Path) -> Iterator[tuple[Path, dict]]:
    """(path, truth) for every ground-truth call file in the folder, by name (c01, r01, h01 ...);
    other JSON files there are passed over."""
    for path in sorted(Path(folder).glob("*.json")):
        truth = load_truth(path)
        if isinstance(truth, dict) and "turns" in truth and "file" in truth:
            yield path, truth


def match_turns(utterances: list[ScoredUtterance], turns: list[dict]) -> list[int | None]:
    """Index of the truth turn each utterance overlaps most (None when it overlaps none)."""
    if not turns:
        return [None] * len(utterances)
    starts = np.array([t["start"] for t in turns])
    ends = np.array([t["end"] for t in turns])
    matches = []
    for utterance in utterances:
        overlap = np.minimum(ends, utterance.end) - np.maximum(starts, utterance.start)
        best = int(np.argmax(overlap))
        matches.append(best if overlap[best] > 0 else None)
    return matches


def compare_call(
    name: str, utterances: list[ScoredUtterance], end_stage: str | None, ended_by: str | None, truth: dict
) -> CallComparison:
    spoken = [u for u in utterances if not u.backchannel]
    matches = match_turns(spoken, truth["turns"])
    pairs = [(u, truth["turns"][m]) for u, m in zip(spoken, matches, strict=True) if m is not None]
    return CallComparison(
        call=name,
        utterances=len(pairs),
        stage_correct=sum(u.stage == t["stage"] for u, t in pairs),
        role_correct=sum(u.role == t["role"] for u, t in pairs),
        end_stage=end_stage,
        end_stage_truth=truth["end_stage"],
        ended_by=ended_by,
        ended_by_truth=truth["ended_by"],
    )


def compare_database(con, truth_dir: str | Path) -> list[CallComparison]:
    """Every stored call that has a ground-truth file (matched by file name) in truth_dir."""
    truths = {truth["file"]: (path.stem, truth) for path, truth in truth_files(truth_dir)}
    comparisons = []
    calls = con.execute(
        "SELECT c.call_id, c.file, r.end_stage, r.ended_by FROM calls c JOIN call_results r "
        "USING (call_id) ORDER BY c.file"
    ).fetchall()
    for call_id, file, end_stage, ended_by in calls:
        if file not in truths:
            continue
        name, truth = truths[file]
        comparisons.append(compare_call(name, store.stored_utterances(con, call_id), end_stage, ended_by, truth))
    return comparisons


def truth_record(truth: dict, metadata: dict[str, str], script: Script, source: str = ""):
    """A CallRecord built from a ground-truth file as if the pipeline had got everything right:
    the analytics on it give the numbers the ground truth implies (what the demo tests check)."""
    from salescalls.records import CallRecord

    utterances = [
        ScoredUtterance(
            t["speaker"], t["role"], t["start"], t["end"], t["text"], t["stage"], 1.0, t.get("backchannel", False)
        )
        for t in truth["turns"]
    ]
    return CallRecord(
        call_id=f"truth:{truth['file']}",
        file=truth["file"],
        duration=truth["duration"],
        channels=truth["channels"],
        sample_rate=truth["sample_rate"],
        codec="truth",
        language=truth.get("language", "en"),
        script_id=script.id,
        script_version=script.version,
        stage_model="ground-truth",
        whisper_model="ground-truth",
        diarization="ground-truth",
        role_method="ground-truth",
        role_confidence=1.0,
        utterances=tuple(utterances),
        score=score_call(utterances, script),
        metadata=metadata,
        source=source,
    )


def write_truth_database(path: str | Path, script: Script, calls: Iterable[tuple[dict, dict[str, str], str]]) -> Path:
    """A new database of ground-truth calls, each given as (truth, its calls.csv row, where its
    recording is) and stored as `truth_record` builds it: the numbers the truth implies, by the
    product's own SQL."""
    with store.writer(path) as con:
        store.save_script(con, script)
        for truth, metadata, source in calls:
            store.save_call(con, truth_record(truth, metadata, script, source))
    return Path(path)


def label_from_truth(con, rows: list[dict], truth_dir: str | Path) -> list[dict]:
    """Review rows (salescalls.learning.review.review_rows) with `label` filled in from the ground truth, as
    a reviewer who knows the truth would: each utterance gets the stage of the truth turn it
    overlaps most (rows of calls without a truth file, or matching no turn, stay unlabelled)."""
    truths = {truth["file"]: truth for _, truth in truth_files(truth_dir)}
    labelled = []
    for row in rows:
        truth = truths.get(row["file"])
        label = ""
        if truth is not None:
            utterance = store.stored_utterances(con, row["call_id"])[int(row["idx"])]
            (match,) = match_turns([utterance], truth["turns"])
            label = truth["turns"][match]["stage"] if match is not None else ""
        labelled.append({**row, "label": label})
    return labelled
