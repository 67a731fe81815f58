"""Speech-layer evaluation: salescalls against plain whisper + default pyannote, in the same run.

    python -m bench.speech [FOLDER ...] [--demo data/demo] [--json bench/results/speech.json]

FOLDER holds recordings with references in the layout of ../shared/eval: RTTM files (any name,
matched by uri = file stem) for who spoke when, optional UEM files for the scored region, and
`<stem>.stm` (words per speaker turn) or `<stem>.txt` (plain transcript) for the words. The demo
folder's ground-truth JSON files serve as references too, and add role accuracy. With no FOLDER,
the subfolders of a `shared/eval` beside the project are used.

For every file both systems run on the same decoded audio:
- salescalls: speech regions first (stereo channel energy / pyannote with the product's
  settings), whisper on those regions only, words assigned by interval overlap;
- baseline: `whisper.transcribe` with its defaults (word timestamps on), pyannote's pipeline with
  default settings (segmentation step 0.1, one embedding per batch, no speaker count) on the mixed
  down audio, and each word given to the speaker turn nearest its midpoint.
Reported: WER (whisper's normalisers: EnglishTextNormalizer for English, BasicTextNormalizer
otherwise), DER and JER from pyannote.metrics at collar 0 and 0.25 s, speaker-attributed word
error (correctly recognised words given to the wrong speaker, after the optimal speaker mapping),
role accuracy (demo), and real-time factor per step (seconds of processing per second of audio).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.metrics import align_words, normaliser, speaker_attributed_error, tokens_with_speakers
from bench.report import stamp, write_json
from salescalls.config import Settings
from salescalls.learning.evaluate import compare_call
from salescalls.pipeline import assign_roles, recognise
from salescalls.records import ScoredUtterance
from salescalls.script.spec import load_script
from salescalls.speech import audio, diarize, transcribe

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"}


@dataclass
class Item:
    uri: str  # file stem, the key into RTTM/UEM files
    path: Path  # the recording
    speakers: object = None  # pyannote Annotation of who spoke when
    uem: object = None  # pyannote Timeline of the scored region
    words: list[tuple[str, str]] | None = None  # reference (word, speaker) in time order
    word_turns: object = None  # Annotation of the turns `words` come from (their speaker names)
    truth: dict | None = None  # demo ground truth (roles)


@dataclass
class Result:
    words: list[tuple[str, float, float]]  # recognised (text, start, end)
    word_speakers: list[str]  # speaker of each recognised word
    turns: object  # pyannote Annotation
    language: str
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    roles_correct: int | None = None
    roles_total: int | None = None


def _annotation(uri: str, segments) -> object:
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for index, (start, end, label) in enumerate(segments):
        if end > start:
            annotation[Segment(start, end), index] = label
    return annotation


def discover(folder: Path) -> list[Item]:
    """Recordings in `folder` that have at least one kind of reference."""
    from pyannote.database.util import load_rttm, load_uem

    rttm, uem = {}, {}
    for path in sorted(folder.glob("*.rttm")):
        rttm.update(load_rttm(str(path)))
    for path in sorted(folder.glob("*.uem")):
        uem.update(load_uem(str(path)))
    items = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        item = Item(path.stem, path, rttm.get(path.stem), uem.get(path.stem))
        stm, txt, truth = path.with_suffix(".stm"), path.with_suffix(".txt"), path.with_suffix(".json")
        if stm.is_file():
            turns = []
            for line in stm.read_text(encoding="utf-8").splitlines():
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and not line.startswith(";;"):
                    turns.append((float(parts[3]), float(parts[4]), parts[2], parts[5]))
            item.words = [(w, speaker) for _, _, speaker, text in sorted(turns) for w in text.split()]
            item.word_turns = _annotation(path.stem, [(s, e, speaker) for s, e, speaker, _ in turns])
        elif txt.is_file():
            item.words = [(w, "") for w in txt.read_text(encoding="utf-8").split()]
        elif truth.is_file():
            data = json.loads(truth.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "turns" in data:
                item.truth = data
                ordered = sorted(data["turns"], key=lambda t: t["start"])
                item.words = [(w, t["role"]) for t in ordered for w in t["text"].split()]
                item.speakers = _annotation(path.stem, [(t["start"], t["end"], t["role"]) for t in ordered])
                item.word_turns = item.speakers
        if item.speakers is not None or item.words is not None:
            items.append(item)
    return items


def run_salescalls(item: Item, samples: np.ndarray, settings: Settings, script) -> Result:
    timings: dict[str, float] = {}
    prompt = script.prompt() if (item.truth and script and settings.vocabulary_prompt) else None
    speech = recognise(samples, settings, prompt, timings)
    result = Result(
        words=[(w.text, w.start, w.end) for w in speech.words],
        word_speakers=list(speech.speakers),
        turns=_annotation(item.uri, [(t.start, t.end, t.speaker) for t in speech.turns]),
        language=speech.language,
        seconds={k: timings[k] for k in ("diarize", "transcribe", "align")},
    )
    if item.truth and script:
        assignment = assign_roles(speech, settings, script)
        utterances = [
            ScoredUtterance(
                u.speaker, assignment.roles.get(u.speaker, "customer"), u.start, u.end, u.text, "", 0.0, u.backchannel
            )
            for u in speech.utterances
        ]
        comparison = compare_call(item.uri, utterances, None, None, item.truth)
        result.roles_correct, result.roles_total = comparison.role_correct, comparison.utterances
    return result


def nearest_midpoint(words: list[tuple[str, float, float]], annotation) -> list[str]:
    """The usual baseline: the speaker turn containing the word's midpoint, else the nearest turn."""
    segments = [(s.start, s.end, label) for s, _, label in annotation.itertracks(yield_label=True)]
    speakers = []
    for _, start, end in words:
        middle = (start + end) / 2
        if not segments:
            speakers.append("")
            continue
        inside = [label for s, e, label in segments if s <= middle <= e]
        speakers.append(
            inside[0] if inside else min(segments, key=lambda g: min(abs(middle - g[0]), abs(middle - g[1])))[2]
        )
    return speakers


def run_baseline(item: Item, samples: np.ndarray, whisper_model, pipeline) -> Result:
    import torch

    mono = audio.mixdown(samples)
    started = time.perf_counter()
    output = pipeline(
        {"waveform": torch.from_numpy(np.ascontiguousarray(mono))[None, :], "sample_rate": audio.SAMPLE_RATE}
    )
    annotation = getattr(output, "speaker_diarization", output)
    diarize_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = whisper_model.transcribe(mono, word_timestamps=True, fp16=False)
    transcribe_seconds = time.perf_counter() - started
    words = [
        (w["word"].strip(), float(w["start"]), float(w["end"]))
        for s in result["segments"]
        for w in s.get("words", [])
        if w["word"].strip()
    ]
    started = time.perf_counter()
    speakers = nearest_midpoint(words, annotation)
    align_seconds = time.perf_counter() - started
    annotation.uri = item.uri
    return Result(
        words,
        speakers,
        annotation,
        result.get("language", ""),
        {"diarize": diarize_seconds, "transcribe": transcribe_seconds, "align": align_seconds},
    )


def score(item: Item, result: Result, duration: float, metrics: dict) -> dict:
    """Per-file numbers; also feeds the corpus-level accumulators in `metrics`."""
    row: dict = {"file": item.path.name, "seconds_audio": round(duration, 1)}
    normalise = normaliser(result.language or "en")
    if item.words is not None:
        ref_tokens, _ = tokens_with_speakers(item.words, normalise)
        hyp_tokens, _ = tokens_with_speakers([(w, "") for w, _, _ in result.words], normalise)
        errors = align_words(ref_tokens, hyp_tokens)
        metrics["wer_errors"] += errors.errors
        metrics["wer_words"] += errors.reference_words
        row["wer"] = round(errors.wer, 4)
    if item.speakers is not None:
        for collar in (0.0, 0.25):
            der = metrics[f"der_{collar}"](item.speakers, result.turns, uem=item.uem)
            jer = metrics[f"jer_{collar}"](item.speakers, result.turns, uem=item.uem)
            row[f"der_{collar}"], row[f"jer_{collar}"] = round(der, 4), round(jer, 4)
        if item.word_turns is not None:
            # STM speaker names may differ from RTTM labels: map to the turns the words come from
            mapping = metrics["der_0.0"].optimal_mapping(item.word_turns, result.turns)
            hypothesis = [(w, s) for (w, _, _), s in zip(result.words, result.word_speakers, strict=True)]
            wrong, correct = speaker_attributed_error(item.words, hypothesis, mapping, normalise)
            metrics["sa_wrong"] += wrong
            metrics["sa_words"] += correct
            row["speaker_word_error"] = round(wrong / max(correct, 1), 4)
    if result.roles_total:
        metrics["roles_correct"] += result.roles_correct
        metrics["roles_total"] += result.roles_total
        row["role_accuracy"] = round(result.roles_correct / result.roles_total, 4)
    for step, seconds in result.seconds.items():
        metrics[f"seconds_{step}"] += seconds
        row[f"rtf_{step}"] = round(seconds / duration, 3)
    row["rtf"] = round(sum(result.seconds.values()) / duration, 3)
    return row


def new_metrics() -> dict:
    from collections import defaultdict

    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    metrics = defaultdict(float)
    for collar in (0.0, 0.25):
        metrics[f"der_{collar}"] = DiarizationErrorRate(collar=collar, skip_overlap=False)
        metrics[f"jer_{collar}"] = JaccardErrorRate(collar=collar, skip_overlap=False)
    return metrics


def summarise(metrics: dict, audio_seconds: float) -> dict:
    summary = {}
    if metrics["wer_words"]:
        summary["wer"] = round(metrics["wer_errors"] / metrics["wer_words"], 4)
    for key in ("der_0.0", "der_0.25", "jer_0.0", "jer_0.25"):
        if metrics[key].results_:
            summary[key] = round(abs(metrics[key]), 4)
    if metrics["sa_words"]:
        summary["speaker_word_error"] = round(metrics["sa_wrong"] / metrics["sa_words"], 4)
    if metrics["roles_total"]:
        summary["role_accuracy"] = round(metrics["roles_correct"] / metrics["roles_total"], 4)
    for step in ("diarize", "transcribe", "align"):
        summary[f"rtf_{step}"] = round(metrics[f"seconds_{step}"] / audio_seconds, 4)
    summary["rtf"] = round(sum(metrics[f"seconds_{s}"] for s in ("diarize", "transcribe", "align")) / audio_seconds, 4)
    return summary


COLUMNS = [
    "wer",
    "der_0.0",
    "der_0.25",
    "jer_0.0",
    "jer_0.25",
    "speaker_word_error",
    "role_accuracy",
    "rtf_diarize",
    "rtf_transcribe",
    "rtf_align",
    "rtf",
]


def print_table(rows: list[dict]) -> None:
    import pandas as pd

    from salescalls.insights.tables import format_table

    frame = pd.DataFrame(rows)
    columns = {c: c for c in ["set", "file", "system", *COLUMNS] if c in frame.columns}
    percent = {
        c: ".1%" for c in ("wer", "der_0.0", "der_0.25", "jer_0.0", "jer_0.25", "speaker_word_error", "role_accuracy")
    }
    rtf = {c: ".3f" for c in COLUMNS if c.startswith("rtf")}
    print(format_table(frame, columns, {**percent, **rtf}))


def main(argv: list[str] | None = None) -> dict:
    import torch

    from salescalls.speech.models import find_shared

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--demo", default="data/demo", help="demo folder with ground-truth JSON ('' to skip)")
    parser.add_argument("--demo-calls", type=int, default=0, help="only the first N demo calls (0: all)")
    parser.add_argument("--script", default="data/scripts/demo.yaml", help="script for the demo calls")
    parser.add_argument("--num-speakers", default="2", help="speakers per recording for salescalls ('auto' or N)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", default="bench/results/speech.json")
    args = parser.parse_args(argv)

    folders = list(args.folders)
    if not folders:
        shared = find_shared()
        eval_root = shared.parent / "eval" if shared else None
        folders = sorted(p for p in eval_root.iterdir() if p.is_dir()) if eval_root and eval_root.is_dir() else []
    sets = [(folder.name, discover(folder)) for folder in folders]
    if args.demo:
        demo_items = discover(Path(args.demo))
        sets.append(("demo", demo_items[: args.demo_calls] if args.demo_calls else demo_items))
    for name, items in sets:
        if not items:
            print(f"{name}: no recordings with references, skipped", flush=True)
    sets = [(name, items) for name, items in sets if items]
    speakers = None if args.num_speakers == "auto" else int(args.num_speakers)
    settings = Settings.from_env(num_speakers=speakers)
    if speakers is None:
        settings = type(settings)(**{**settings.__dict__, "num_speakers": None})
    script = load_script(args.script) if args.demo else None

    whisper_model = transcribe.configured_model(settings)  # the engine salescalls runs with
    baseline_model = transcribe.load_model(  # plain openai-whisper, whatever salescalls runs
        settings.models_dir, settings.whisper_model, settings.device, settings.threads, "openai"
    )
    ours_pipeline = diarize.load_pipeline(settings.models_dir, settings.device)
    base_pipeline = diarize.load_pipeline(
        settings.models_dir, settings.device, segmentation_step=0.1, embedding_batch_size=1
    )
    warm = np.random.default_rng(0).normal(0, 0.05, (1, audio.SAMPLE_RATE * 12)).astype(np.float32)
    whisper_model.transcribe(warm[0], fp16=False, word_timestamps=True)
    baseline_model.transcribe(warm[0], fp16=False, word_timestamps=True)  # also compiles the DTW kernel
    with torch.inference_mode():
        diarize.pyannote_turns(warm, ours_pipeline)

    systems = ["salescalls"] + ([] if args.no_baseline else ["baseline"])
    rows, report = (
        [],
        {
            **stamp(),
            "torch_threads": torch.get_num_threads(),
            "sets": {},
        },
    )
    for set_name, items in sets:
        metrics = {system: new_metrics() for system in systems}
        audio_seconds = {"mono": 0.0, "stereo": 0.0}
        per_kind = {system: {"mono": 0.0, "stereo": 0.0} for system in systems}
        for item in items:
            samples = audio.load(item.path)
            duration = samples.shape[1] / audio.SAMPLE_RATE
            kind = "stereo" if samples.shape[0] == 2 else "mono"
            audio_seconds[kind] += duration
            for system in systems:
                if system == "salescalls":
                    result = run_salescalls(item, samples, settings, script)
                else:
                    result = run_baseline(item, samples, baseline_model, base_pipeline)
                per_kind[system][kind] += sum(result.seconds.values())
                row = {"set": set_name, "system": system, **score(item, result, duration, metrics[system])}
                rows.append(row)
                print(
                    f"{set_name}/{item.path.name} {system}: "
                    + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("set", "file", "system")),
                    flush=True,
                )
        total = sum(audio_seconds.values())
        report["sets"][set_name] = {"files": len(items), "audio_seconds": round(total, 1)}
        for system in systems:
            summary = summarise(metrics[system], total)
            for kind in ("mono", "stereo"):
                if audio_seconds[kind]:
                    summary[f"rtf_{kind}"] = round(per_kind[system][kind] / audio_seconds[kind], 4)
            report["sets"][set_name][system] = summary
            rows.append({"set": set_name, "file": "ALL", "system": system, **summary})
    report["rows"] = rows
    print()
    print_table([r for r in rows])
    if "baseline" in systems:
        print("\nsalescalls / baseline (lower is better for every measure but role accuracy):")
        for set_name, numbers in report["sets"].items():
            ours, base = numbers["salescalls"], numbers["baseline"]
            ratios = {k: round(ours[k] / base[k], 3) for k in ours if k in base and base[k]}
            numbers["ratio"] = ratios
            print(f"  {set_name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
