"""Stage-model evaluation on labelled dialogues: the model against two baselines, in one run.

    python -m bench.stages [DIALOGUES.jsonl ...] [--script script.yaml] [--folds 5] [--json FILE]

A dialogue file has one call per line in the format of ../shared/eval/dialogues/dev.jsonl:
{"call_id", "turns": [{"speaker": "agent"|"customer", "text", "stage"|null}], "meta":
{"last_stage_before_farewell", "domains"}}. The script is the YAML beside the file (`script.yaml`)
unless given; both salescalls' own script format and the labelled-set format are read. Turns
whose stage is null are context, never scored.

Settings, each system in each:
- cold: fit on the script alone (its example phrases), as on a team's first night;
- cv: k-fold cross-validation over calls (trained on the other folds, tested on the held-out one);
- domains: leave-domains-out, for files whose calls name their domains (`meta.domains`): for each
  domain, trained on the calls without it and tested on the calls with it. Within-set cross-
  validation shares a domain's words between training and test; this does not, so it is the
  measure of how a model does on a team's *new* kinds of calls.
Systems:
- keywords: a turn gets the stage whose keywords it contains most (cold: the content words of
  each stage's examples; trained: words that point to one stage in >= 60 % of their uses);
- tfidf+lr: word 1-2-gram TF-IDF into a logistic regression, nothing else;
- salescalls-words: the product's stage model with words only (no sentence encoder);
- salescalls: the product's stage model with the sentence encoder (what `make demo` runs).
  Both decoded as sequences (the product) and per utterance ("-per-utterance": what the
  decoder adds or costs), from the same fitted model; "-marginal" reads the same sequence model
  utterance by utterance (forward-backward) instead of as one path (Viterbi), which the product
  does when `train` finds it better on held-out labels; "-adapted" is `salescalls adapt`: the
  cold start's surest utterances of the calls under test (words and speakers, never their labels)
  become examples as well, beside the setting's training labels.
Reported: accuracy and macro-F1 over the stages present in the labels, F1 per stage, the share
of calls whose drop-off stage (the end stage as salescalls.script.score defines it) is right, and
throughput. Sentence vectors are cached in bench/results/vectors.npz between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import KFold

from bench.report import stamp, write_json
from salescalls.script.adapt import UnlabelledCall, adapt
from salescalls.script.outcomes import CallEnd, OutcomeClassifier
from salescalls.script.score import call_path
from salescalls.script.spec import OFF_SCRIPT, STAGE_ORDERS, Script, load_script
from salescalls.script.stages import LabelledCall, script_training_data, train
from salescalls.text import encoder as sentence_encoder
from salescalls.text import nlp

ROLE_OF_SPEAKER = {"agent": "rep", "rep": "rep", "customer": "customer"}
KEYWORD_PRECISION = 0.6  # a trained keyword points to one stage in at least this share of its uses
KEYWORD_MIN_COUNT = 3


@dataclass(frozen=True)
class Dialogue:
    call: LabelledCall  # texts, roles, stages (None where unlabelled)
    end_stage: str | None  # the labelled drop-off stage (last stage before the farewell)
    call_id: str
    outcome: str | None = None  # the call's labelled outcome, if any
    domains: tuple[str, ...] = ()  # the call's service domains (meta.domains), if named


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
        meta = record.get("meta") or {}
        end = meta.get("last_stage_before_farewell")
        domains = tuple(meta.get("domains") or ())
        dialogues.append(Dialogue(call, end, record.get("call_id", f"line{number}"), record.get("outcome"), domains))
    return dialogues


def end_stage(stages: list[str], sign_off: str) -> str | None:
    """The drop-off stage as salescalls.script.score defines it (the last stage before the final sign-off,
    strays after the sign-off aside)."""
    spoken = [s for s in stages if s and s != OFF_SCRIPT]
    path = call_path(spoken, sign_off)
    return spoken[path.end] if path.end is not None else (sign_off if spoken else None)


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
    """The product's stage model; one fit gives both the decoded and the per-utterance labels."""

    def __init__(self, encoder: str | None):
        self.encoder = encoder
        self.name = "salescalls" if encoder else "salescalls-words"

    def fit(self, script: Script, dialogues: list[Dialogue]):
        self.script_ = script
        self.training_ = [d.call for d in dialogues]
        self.model_ = train(script, self.training_, encoder=self.encoder)
        return self

    def predict_many(self, dialogues: list[Dialogue]) -> dict[str, list[list[str]]]:
        """All calls in one classifier pass, as a nightly batch or a rescoring run does."""
        batch = [(d.call.texts, d.call.roles, None, d.call.language) for d in dialogues]
        decoded = [[label.stage for label in labels] for labels in self.model_.label_calls(batch)]
        per_utterance = [
            [self.model_.stages[k] for k in np.argmax(self.model_.emissions(*b[:2], b[3]), axis=1)] if b[0] else []
            for b in batch
        ]
        results = {self.name: decoded, f"{self.name}-per-utterance": per_utterance}
        # The same sequence model read utterance by utterance (what the product does when `train`
        # chooses it; cold, it reads the whole path).
        marginal = dataclasses.replace(self.model_, decoding="marginal")
        results[f"{self.name}-marginal"] = [[label.stage for label in labels] for labels in marginal.label_calls(batch)]
        # `salescalls adapt`: the cold start's surest utterances of the calls being labelled (their
        # words and speakers only, never their labels) become examples too, with the training labels.
        unlabelled = [UnlabelledCall(d.call.texts, d.call.roles, d.call.language) for d in dialogues]
        adapted, _ = adapt(self.script_, unlabelled, self.training_, encoder=self.encoder)
        results[f"{self.name}-adapted"] = [[label.stage for label in labels] for labels in adapted.label_calls(batch)]
        return results


def _predict(system, dialogues: list[Dialogue]) -> dict[str, list[list[str]]]:
    if hasattr(system, "predict_many"):
        return system.predict_many(dialogues)
    return {system.name: [system.predict(d) for d in dialogues]}


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


def evaluate(
    system_factory, script: Script, dialogues: list[Dialogue], folds: int, seed: int, min_domain_calls: int = 10
) -> dict:
    """Cold start, k-fold and leave-domains-out predictions of one system (and its variants), scored."""
    started = time.perf_counter()
    cold = _predict(system_factory().fit(script, []), dialogues)
    seconds = time.perf_counter() - started
    results = {name: {"cold": score(predictions, dialogues, script)} for name, predictions in cold.items()}
    pooled: dict[str, list] = {name: [None] * len(dialogues) for name in cold}
    for train_index, test_index in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(dialogues))):
        system = system_factory().fit(script, [dialogues[i] for i in train_index])
        for name, predictions in _predict(system, [dialogues[i] for i in test_index]).items():
            for i, predicted in zip(test_index, predictions, strict=True):
                pooled[name][i] = predicted
    for name, predictions in pooled.items():
        results[name]["cv"] = score(predictions, dialogues, script)
    domains = leave_domains_out(system_factory, script, dialogues, min_domain_calls)
    for name in results:
        results[name]["domains"] = domains.get(name)
        results[name]["seconds_cold_fit_and_label"] = round(seconds, 1)
    return results


def leave_domains_out(
    system_factory, script: Script, dialogues: list[Dialogue], min_calls: int = 10
) -> dict[str, dict]:
    """For each named domain: trained on the calls without it, scored on the calls with it.

    Returns per system variant the mean over domains of accuracy, macro-F1 and drop-off accuracy,
    and each domain's scores; {} when the calls name no domains.
    """
    names = sorted({d for dialogue in dialogues for d in dialogue.domains})
    per_domain: dict[str, dict[str, dict]] = {}
    for domain in names:
        test = [d for d in dialogues if domain in d.domains]
        training = [d for d in dialogues if domain not in d.domains]
        if len(test) < min_calls or len(training) < min_calls:  # too few to say anything
            continue
        system = system_factory().fit(script, training)
        for name, predictions in _predict(system, test).items():
            per_domain.setdefault(name, {})[domain] = score(predictions, test, script)
    summary = {}
    for name, scores in per_domain.items():
        summary[name] = {
            "accuracy": round(float(np.mean([s["accuracy"] for s in scores.values()])), 4),
            "macro_f1": round(float(np.mean([s["macro_f1"] for s in scores.values()])), 4),
            "drop_off_accuracy": round(float(np.mean([s["drop_off_accuracy"] or 0 for s in scores.values()])), 4),
            "per_domain": {
                domain: {k: s[k] for k in ("accuracy", "macro_f1", "calls")} for domain, s in scores.items()
            },
        }
    return summary


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


SETTINGS = (("cold", "cold start"), ("cv", "within-set CV"), ("domains", "leave-domains-out"))


def print_table(results: dict, stages: list[str]) -> None:
    header = ["system", "setting", "accuracy", "macro-F1", "drop-off", *stages]
    rows = []
    for name, result in results.items():
        for setting, label in SETTINGS:
            r = result.get(setting)
            if not r:
                continue
            f1 = r.get("f1", {})
            rows.append(
                [
                    name,
                    label,
                    f"{r['accuracy']:.3f}",
                    f"{r['macro_f1']:.3f}",
                    "-" if r["drop_off_accuracy"] is None else f"{r['drop_off_accuracy']:.1%}",
                    *[f"{f1[s]:.2f}" if s in f1 else "" for s in stages],
                ]
            )
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def systems() -> dict:
    """Every system of the comparison; the encoder ones only where the encoder is installed."""
    found = {
        "keywords": Keywords,
        "tfidf+lr": TfidfLogistic,
        "salescalls-words": lambda: Salescalls(encoder=None),
    }
    encoder = sentence_encoder.configured() or sentence_encoder.DEFAULT_ENCODER
    if sentence_encoder.available(encoder):
        found["salescalls"] = lambda: Salescalls(encoder=encoder)
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dialogues", nargs="*", type=Path, help="labelled dialogue files (JSONL)")
    parser.add_argument("--script", type=Path, help="the script the labels follow (default: script.yaml beside)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-domain-calls", type=int, default=10, help="calls a domain needs to be left out")
    parser.add_argument("--json", default="bench/results/stages.json")
    parser.add_argument("--vectors", type=Path, default=Path("bench/results/vectors.npz"), help="sentence-vector cache")
    parser.add_argument(
        "--stage-order", choices=STAGE_ORDERS, help="read the calls with this stage_order (default: the script's)"
    )
    args = parser.parse_args(argv)
    files = args.dialogues or [_shared_dialogues()]
    cache = sentence_encoder.shared_cache(sentence_encoder.configured() or sentence_encoder.DEFAULT_ENCODER)
    if cache is not None and sentence_encoder.available():
        cache.load(args.vectors)
    report = {
        **stamp(),
        "folds": args.folds,
        "sets": {},
    }
    for path in files:
        script = load_script(args.script or path.parent / "script.yaml")
        if args.stage_order:
            script = dataclasses.replace(script, stage_order=args.stage_order)
        dialogues = load_dialogues(path)
        print(f"{path}: {len(dialogues)} calls, script {script.id} v{script.version}", flush=True)
        results = {}
        for name, factory in systems().items():
            started = time.perf_counter()
            results.update(evaluate(factory, script, dialogues, args.folds, args.seed, args.min_domain_calls))
            print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
        print()
        present = [s for s in script.stage_names if s in results["tfidf+lr"]["cv"]["f1"]]
        print_table(results, present)
        results["comparison"] = _comparison(results)
        for line in results["comparison"]["lines"]:
            print(line)
        outcome = evaluate_outcomes(script, dialogues, args.folds, args.seed)
        if outcome:
            print(
                f"outcome model ({outcome['calls']} calls, from predicted stages): accuracy {outcome['accuracy']:.1%}, "
                f"macro-F1 {outcome['macro_f1']:.3f}; always the most common outcome: "
                f"{outcome['majority_baseline_accuracy']:.1%}, macro-F1 {outcome['majority_baseline_macro_f1']:.3f}"
            )
        report["sets"][str(path)] = {"script": f"{script.id}@{script.version}", "results": results, "outcomes": outcome}
    if cache is not None and len(cache):
        cache.save(args.vectors)
    write_json(args.json, report)
    return report


def _comparison(results: dict) -> dict:
    """The product against the best baseline in each setting (macro-F1 differences)."""
    ours = "salescalls" if "salescalls" in results else "salescalls-words"
    lines, numbers = [], {}
    for setting, label in SETTINGS:
        if not (results[ours].get(setting) and results["tfidf+lr"].get(setting)):
            continue
        mine = results[ours][setting]["macro_f1"]
        best = max(("keywords", "tfidf+lr"), key=lambda name: results[name][setting]["macro_f1"])
        numbers[setting] = {
            "salescalls": mine,
            "best_baseline": best,
            "difference": round(mine - results[best][setting]["macro_f1"], 4),
        }
        lines.append(
            f"{label}: {ours} macro-F1 {mine:.3f} vs {best} {results[best][setting]['macro_f1']:.3f} "
            f"({numbers[setting]['difference']:+.3f})"
        )
    return {"system": ours, **numbers, "lines": lines}


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
