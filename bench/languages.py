"""Stages across languages, on the demo teams' typed calls: each team's own script against a script
in another language, with the baselines in the same run.

    python -m bench.languages [--json bench/results/languages.json]

For each demo team (en: data/demo, ru: data/demo-ru, hu: data/demo-hu) the ground-truth text of
its calls (no recognition errors: this measures the stage model, `bench.demo` the whole chain) is
scored cold, from a script alone:
- own: the team's own script, in the calls' language;
- cross-lingual: the same team's script written in English only (data/scripts/demo-<lang>-en.yaml,
  the same stages in the same order; truth stages are mapped to it by position);
- the reverse for the English calls: the Russian and the Hungarian team's own scripts, which
  hold examples in their language only (the same seven stages in the same order).
Systems as in bench.stages: keywords, TF-IDF + LR, salescalls with words only, salescalls (words
and the sentence encoder) and salescalls with the encoder only ("meaning"), each decoded as the
product does. Reported: utterance accuracy, macro-F1 and end stages right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import stamp, write_json
from bench.stages import Dialogue, Keywords, Salescalls, TfidfLogistic, _predict, end_stage, score
from salescalls.learning.evaluate import load_truth
from salescalls.script.spec import Script, load_script
from salescalls.script.stages import LabelledCall, train
from salescalls.text import encoder as sentence_encoder

ROOT = Path(__file__).resolve().parent.parent
TEAMS = {  # team: (demo folder, own script, {setting: a script in another language than the calls})
    "en": (
        "data/demo",
        "data/scripts/demo.yaml",
        {"ru script": "data/scripts/demo-ru.yaml", "hu script": "data/scripts/demo-hu.yaml"},
    ),
    "ru": ("data/demo-ru", "data/scripts/demo-ru.yaml", {"cross-lingual": "data/scripts/demo-ru-en.yaml"}),
    "hu": ("data/demo-hu", "data/scripts/demo-hu.yaml", {"cross-lingual": "data/scripts/demo-hu-en.yaml"}),
}


class Meaning(Salescalls):
    """The product's model reading the sentence vectors only (no word or character features)."""

    def __init__(self, encoder: str):
        super().__init__(encoder)
        self.name = "salescalls-meaning"

    def fit(self, script: Script, dialogues: list[Dialogue]):
        self.script_, self.training_ = script, [d.call for d in dialogues]
        self.model_ = train(script, self.training_, encoder=self.encoder, words_weight=0.0)
        return self


def typed_calls(folder: Path, own: Script, scored: Script) -> list[Dialogue]:
    """The folder's ground-truth calls, their stages named as in `scored` (by script position)."""
    to_scored = dict(zip(own.stage_names, scored.stage_names, strict=True))
    dialogues = []
    for path in sorted(folder.glob("*.json")):
        truth = load_truth(path)
        if not isinstance(truth, dict) or "turns" not in truth:
            continue
        turns = sorted(truth["turns"], key=lambda turn: turn["start"])
        call = LabelledCall(
            tuple(t["text"] for t in turns),
            tuple(t["role"] for t in turns),
            tuple(to_scored[t["stage"]] for t in turns),
            truth.get("language"),
        )
        dialogues.append(Dialogue(call, to_scored[truth["end_stage"]], truth["call_id"]))
    return dialogues


def systems() -> dict:
    found = {"keywords": Keywords, "tfidf+lr": TfidfLogistic, "salescalls-words": lambda: Salescalls(encoder=None)}
    encoder = sentence_encoder.configured() or sentence_encoder.DEFAULT_ENCODER
    if sentence_encoder.available(encoder):
        found["salescalls"] = lambda: Salescalls(encoder=encoder)
        found["salescalls-meaning"] = lambda: Meaning(encoder)
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="bench/results/languages.json")
    args = parser.parse_args(argv)
    report = {**stamp(), "results": []}
    rows = []
    for team, (folder, own_path, others) in TEAMS.items():
        own = load_script(ROOT / own_path)
        settings = [("own", own)] + [(setting, load_script(ROOT / path)) for setting, path in others.items()]
        for setting, script in settings:
            dialogues = typed_calls(ROOT / folder, own, script)
            sign_off = script.stage_names[-1]
            for factory in systems().values():
                predictions = _predict(factory().fit(script, []), dialogues)
                for system, predicted in predictions.items():
                    if system.endswith("-per-utterance"):
                        continue
                    measured = score(predicted, dialogues, script)
                    ends = sum(end_stage(p, sign_off) == d.end_stage for d, p in zip(dialogues, predicted, strict=True))
                    row = {"team": team, "setting": setting, "script": script.id, "system": system}
                    row |= {"accuracy": measured["accuracy"], "macro_f1": measured["macro_f1"]}
                    row |= {"end_stages": ends, "calls": len(dialogues)}
                    rows.append(row)
                    print(
                        f"{team:3} {setting:14} {system:20} accuracy {row['accuracy']:.3f}  macro-F1 "
                        f"{row['macro_f1']:.3f}  end stages {ends}/{len(dialogues)}",
                        flush=True,
                    )
    report["results"] = rows
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
