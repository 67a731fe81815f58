"""Stage-model evaluation on labelled dialogues: the model against two baselines, in one run.

    python -m bench.stages [DIALOGUES.jsonl ...] [--script script.yaml] [--folds 5] [--json FILE]

A dialogue file has one call per line in the format of ../shared/eval/dialogues/dev.jsonl:
{"call_id", "turns": [{"speaker": "agent"|"customer", "text", "stage"|null}], "meta":
{"last_stage_before_farewell"}}. The script is the YAML beside the file (`script.yaml`) unless
given; both salescalls' own script format and the labelled-set format are read. Turns whose
stage is null are context, never scored.

Systems, each cold (the script's example phrases only) and trained (k-fold cross-validation
over calls: trained on the other folds' calls, tested on the held-out fold):
- keywords: a turn gets the stage whose keywords it contains most (cold: the content words of
  each stage's examples; trained: words that point to one stage in >= 60 % of their uses);
- tfidf+lr: word 1-2-gram TF-IDF into a logistic regression, nothing else (cold: the examples;
  trained: the labelled turns);
- salescalls: the product's stage model (`salescalls.stages.train`), with and without the
  sequence decoder ("salescalls-no-hmm" shows what the decoder adds).
Reported: accuracy and macro-F1 over the stages present in the labels, F1 per stage, the share
of calls whose drop-off stage (last stage before the farewell) is right, and throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import KFold

from salescalls import nlp
from salescalls.outcomes import CallEnd, OutcomeClassifier
from salescalls.script import OFF_SCRIPT, Script, load_script
from salescalls.stages import LabelledCall, script_training_data, train

ROLE_OF_SPEAKER = {"agent": "rep", "rep": "rep", "customer": "customer"}
KEYWORD_PRECISION = 0.6  # a trained keyword points to one stage in at least this share of its uses
KEYWORD_MIN_COUNT = 3


@dataclass(frozen=True)
class Dialogue:
    call: LabelledCall  # texts, roles, stages (None where unlabelled)
    end_stage: str | None  # the labelled drop-off stage (last stage before the farewell)
    call_id: str
    outcome: str | None = None  # the call's labelled outcome, if any


def load_dialogues(path: Path) -> list[Dialogue]:
    dialogues = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            turns = record["turns"]
            call = LabelledCall(
                texts=tuple(t["text"] for t in turns),
                roles=tuple(ROLE_OF_SPEAKER.get(t.get("speaker", ""), "") for t in turns),
                stages=tuple(t.get("stage") for t in turns),
                language=record.get("language"),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise SystemExit(f"{path}:{number}: not a labelled dialogue ({error})") from None
        end = (record.get("meta") or {}).get("last_stage_before_farewell")
        dialogues.append(Dialogue(call, end, record.get("call_id", f"line{number}"), record.get("outcome")))
    return dialogues


def end_stage(stages: list[str], sign_off: str) -> str | None:
    """The drop-off stage as salescalls.score defines it: the last stage before the sign-off."""
    spoken = [s for s in stages if s and s != OFF_SCRIPT]
    return next((s for s in reversed(spoken) if s != sign_off), sign_off if spoken else None)


# --- systems: each is fit(script, train_dialogues) -> predict(dialogue) -> stage per turn ---------


class Keywords:
    name = "keywords"

    def fit(self, script: Script, dialogues: list[Dialogue]):
        self.order_ = list(script.stage_names)
        if not dialogues:
            X, y = script_training_data(script)
            self.keywords_ = {stage: set() for stage in self.order_}
            stop = _stop_words(script.languages)
            for (text, _, language), stage in zip(X, y, strict=True):
                self.keywords_[stage] |= {w for w in nlp.normalise(text, language).split() if w not in stop}
            self.default_ = Counter(y).most_common(1)[0][0]
            return self
        uses: dict[str, Counter] = {}
        labels = []
        for d in dialogues:
            for text, stage in zip(d.call.texts, d.call.stages, strict=True):
                if stage is None:
                    continue
                labels.append(stage)
                for word in set(nlp.normalise(text, d.call.language).split()):
                    uses.setdefault(word, Counter())[stage] += 1
        self.keywords_ = {stage: set() for stage in self.order_}
        for word, counter in uses.items():
            stage, count = counter.most_common(1)[0]
            if sum(counter.values()) >= KEYWORD_MIN_COUNT and count / sum(counter.values()) >= KEYWORD_PRECISION:
                self.keywords_[stage].add(word)
        self.default_ = Counter(labels).most_common(1)[0][0]
        return self

    def predict(self, dialogue: Dialogue) -> list[str]:
        predictions = []
        for text in dialogue.call.texts:
            words = set(nlp.normalise(text, dialogue.call.language).split())
            hits = [len(words & self.keywords_[stage]) for stage in self.order_]
            predictions.append(self.order_[int(np.argmax(hits))] if max(hits) else self.default_)
        return predictions


def _stop_words(languages) -> set[str]:
    import spacy

    words: set[str] = set()
    for language in languages:
        try:
            words |= set(spacy.blank(language).Defaults.stop_words)
        except (ImportError, KeyError):
            continue
    return words


class TfidfLogistic:
    name = "tfidf+lr"

    def fit(self, script: Script, dialogues: list[Dialogue]):
        if dialogues:
            pairs = [(t, s) for d in dialogues for t, s in zip(d.call.texts, d.call.stages, strict=True) if s]
        else:
            X, y = script_training_data(script)
            pairs = [(text, stage) for (text, _, _), stage in zip(X, y, strict=True)]
        self.vectoriser_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        features = self.vectoriser_.fit_transform([t for t, _ in pairs])
        self.model_ = LogisticRegression(max_iter=2000).fit(features, [s for _, s in pairs])
        return self

    def predict(self, dialogue: Dialogue) -> list[str]:
        return list(self.model_.predict(self.vectoriser_.transform(list(dialogue.call.texts))))


class Salescalls:
    def __init__(self, decode: bool = True):
        self.decode = decode
        self.name = "salescalls" if decode else "salescalls-no-hmm"

    def fit(self, script: Script, dialogues: list[Dialogue]):
        self.model_ = train(script, [d.call for d in dialogues])
        return self

    def predict_many(self, dialogues: list[Dialogue]) -> list[list[str]]:
        """All calls in one classifier pass, as a nightly batch or a rescoring run does."""
        if not self.decode:
            return [self.predict(d) for d in dialogues]
        batch = [(d.call.texts, d.call.roles, None, d.call.language) for d in dialogues]
        return [[label.stage for label in labels] for labels in self.model_.label_calls(batch)]

    def predict(self, dialogue: Dialogue) -> list[str]:
        call = dialogue.call
        if self.decode:
            labels = self.model_.label(list(call.texts), list(call.roles), language=call.language)
            return [label.stage for label in labels]
        emission = self.model_.emissions(list(call.texts), list(call.roles), call.language)
        return [self.model_.stages[k] for k in np.argmax(emission, axis=1)]


# --- scoring -------------------------------------------------------------------------------------


def score(system_predictions: list[list[str]], dialogues: list[Dialogue], script: Script) -> dict:
    truth, predicted = [], []
    ends_right = ends_total = 0
    sign_off = script.stage_names[-1]
    for dialogue, predictions in zip(dialogues, system_predictions, strict=True):
        for stage, guess in zip(dialogue.call.stages, predictions, strict=True):
            if stage is not None:
                truth.append(stage)
                predicted.append(guess)
        if dialogue.end_stage is not None:
            ends_total += 1
            ends_right += end_stage(predictions, sign_off) == dialogue.end_stage
    present = [s for s in script.stage_names if s in set(truth)]
    per_stage = f1_score(truth, predicted, labels=present, average=None, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(np.mean(per_stage)), 4),
        "drop_off_accuracy": round(ends_right / ends_total, 4) if ends_total else None,
        "off_script_share": round(predicted.count(OFF_SCRIPT) / len(predicted), 4),
        "f1": {s: round(float(f), 4) for s, f in zip(present, per_stage, strict=True)},
        "turns": len(truth),
        "calls": len(dialogues),
    }


def evaluate(system_factory, script: Script, dialogues: list[Dialogue], folds: int, seed: int) -> dict:
    """Cold start (fit on the script alone) and trained (k-fold over calls) predictions, scored."""
    cold = system_factory().fit(script, [])
    started = time.perf_counter()
    cold_predictions = [cold.predict(d) for d in dialogues]
    seconds = time.perf_counter() - started
    batched = None
    if hasattr(cold, "predict_many"):
        started = time.perf_counter()
        assert cold.predict_many(dialogues) == cold_predictions  # same labels, batched or not
        batched = time.perf_counter() - started
    trained_predictions: list[list[str] | None] = [None] * len(dialogues)
    for train_index, test_index in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(dialogues))):
        system = system_factory().fit(script, [dialogues[i] for i in train_index])
        held_out = [dialogues[i] for i in test_index]
        predictions = (
            system.predict_many(held_out) if hasattr(system, "predict_many") else map(system.predict, held_out)
        )
        for i, predicted in zip(test_index, predictions, strict=True):
            trained_predictions[i] = predicted
    turns = sum(len(d.call.texts) for d in dialogues)
    return {
        "cold": score(cold_predictions, dialogues, script),
        "trained": score(trained_predictions, dialogues, script),
        "utterances_per_second": round(turns / seconds, 1),
        "utterances_per_second_batched": round(turns / batched, 1) if batched else None,
    }


def _call_end(dialogue: Dialogue, stages: list[str | None], sign_off: str) -> CallEnd:
    spoken = [i for i, s in enumerate(stages) if s and s != OFF_SCRIPT]
    last_speaker = dialogue.call.roles[spoken[-1]] if spoken else None
    return CallEnd(
        dialogue.call.texts,
        dialogue.call.roles,
        tuple(s or "" for s in stages),
        end_stage([s for s in stages if s], sign_off),
        last_speaker,
        dialogue.call.language,
    )


def evaluate_outcomes(script: Script, dialogues: list[Dialogue], folds: int, seed: int) -> dict | None:
    """The outcome model, cross-validated over calls: trained on the other folds' labelled stages
    and outcomes, it predicts each held-out call from the stages salescalls predicted for it."""
    labelled = [d for d in dialogues if d.outcome]
    if len(labelled) < 2 * folds or len({d.outcome for d in labelled}) < 2:
        return None
    sign_off = script.stage_names[-1]
    truth = np.array([d.outcome for d in labelled])
    predicted = np.empty(len(labelled), dtype=object)
    majority = np.empty(len(labelled), dtype=object)
    for train_index, test_index in KFold(folds, shuffle=True, random_state=seed).split(truth):
        train_set = [labelled[i] for i in train_index]
        stage_model = train(script, [d.call for d in train_set])
        outcome_model = OutcomeClassifier().fit(
            [_call_end(d, list(d.call.stages), sign_off) for d in train_set], truth[train_index]
        )
        held_out = [labelled[i] for i in test_index]
        labels = stage_model.label_calls([(d.call.texts, d.call.roles, None, d.call.language) for d in held_out])
        ends = [_call_end(d, [x.stage for x in ls], sign_off) for d, ls in zip(held_out, labels, strict=True)]
        predicted[test_index] = outcome_model.predict(ends)
        majority[test_index] = Counter(truth[train_index]).most_common(1)[0][0]
    return {
        "calls": len(labelled),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
        "majority_baseline_accuracy": round(float(accuracy_score(truth, majority)), 4),
        "majority_baseline_macro_f1": round(float(f1_score(truth, majority, average="macro")), 4),
    }


def print_table(results: dict, stages: list[str]) -> None:
    header = ["system", "setting", "accuracy", "macro-F1", "drop-off", "off-script", *stages, "utt/s", "batched"]
    rows = []
    for name, result in results.items():
        for setting in ("cold", "trained"):
            r = result[setting]
            rows.append(
                [
                    name,
                    setting,
                    f"{r['accuracy']:.3f}",
                    f"{r['macro_f1']:.3f}",
                    "-" if r["drop_off_accuracy"] is None else f"{r['drop_off_accuracy']:.1%}",
                    f"{r['off_script_share']:.1%}",
                    *[f"{r['f1'][s]:.2f}" if s in r["f1"] else "-" for s in stages],
                    f"{result['utterances_per_second']:,.0f}" if setting == "cold" else "",
                    f"{result['utterances_per_second_batched']:,.0f}"
                    if setting == "cold" and result["utterances_per_second_batched"]
                    else "",
                ]
            )
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dialogues", nargs="*", type=Path, help="labelled dialogue files (JSONL)")
    parser.add_argument("--script", type=Path, help="the script the labels follow (default: script.yaml beside)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/stages.json")
    args = parser.parse_args(argv)
    files = args.dialogues or [_shared_dialogues()]
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "folds": args.folds,
        "sets": {},
    }
    for path in files:
        script = load_script(args.script or path.parent / "script.yaml")
        dialogues = load_dialogues(path)
        print(f"{path}: {len(dialogues)} calls, script {script.id} v{script.version}", flush=True)
        systems = {
            "keywords": Keywords,
            "tfidf+lr": TfidfLogistic,
            "salescalls-no-hmm": lambda: Salescalls(decode=False),
            "salescalls": Salescalls,
        }
        results = {}
        for name, factory in systems.items():
            started = time.perf_counter()
            results[name] = evaluate(factory, script, dialogues, args.folds, args.seed)
            print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
        print()
        present = [s for s in script.stage_names if s in results["salescalls"]["trained"]["f1"]]
        print_table(results, present)
        base, ours = results["tfidf+lr"]["trained"], results["salescalls"]["trained"]
        results["comparison"] = {
            "trained_macro_f1_minus_tfidf_lr": round(ours["macro_f1"] - base["macro_f1"], 4),
            "trained_accuracy_ratio": round(ours["accuracy"] / base["accuracy"], 4),
            "throughput_ratio": round(
                results["salescalls"]["utterances_per_second_batched"] / results["tfidf+lr"]["utterances_per_second"],
                4,
            ),
        }
        print(
            f"\nsalescalls trained macro-F1 {ours['macro_f1']:.3f} vs tfidf+lr {base['macro_f1']:.3f} "
            f"({results['comparison']['trained_macro_f1_minus_tfidf_lr']:+.3f}); drop-off stage right for "
            f"{ours['drop_off_accuracy']:.1%} of calls; "
            f"{results['salescalls']['utterances_per_second_batched']:,.0f} utterances/s batched, "
            f"{results['salescalls']['utterances_per_second']:,.0f} call by call (sequence decoding included)"
        )
        outcome = evaluate_outcomes(script, dialogues, args.folds, args.seed)
        if outcome:
            print(
                f"outcome model ({outcome['calls']} calls, from predicted stages): accuracy {outcome['accuracy']:.1%}, "
                f"macro-F1 {outcome['macro_f1']:.3f}; always the most common outcome: "
                f"{outcome['majority_baseline_accuracy']:.1%}, macro-F1 {outcome['majority_baseline_macro_f1']:.3f}"
            )
        report["sets"][str(path)] = {"script": f"{script.id}@{script.version}", "results": results, "outcomes": outcome}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\nwritten {args.json}")
    return report


def _shared_dialogues() -> Path:
    for base in (Path(__file__).resolve().parent.parent, *Path(__file__).resolve().parents):
        candidate = base / "shared" / "eval" / "dialogues" / "dev.jsonl"
        if candidate.is_file():
            return candidate
        candidate = base.parent / "shared" / "eval" / "dialogues" / "dev.jsonl"
        if candidate.is_file():
            return candidate
    raise SystemExit("no dialogue file given and no shared/eval/dialogues/dev.jsonl found")


if __name__ == "__main__":
    main()
