"""The cold start adapted to a team's own calls, without labels: class-balanced self-training.

The script's few examples say what each stage means; a team's calls say how its reps and
customers put it. The cold-start model reads every stored call once, and for each stage the
utterances it is surest of (a fixed share of all utterances, the same for every stage, so a
stage the model over-predicts does not flood the examples and a rare one is not starved) become
extra examples of that stage, taken like the script's own (words and speaker, no context). A
model trained on both then scores the calls. One round only: a second one fed the model its own
mistakes (MultiWOZ dev, see the README).

Nothing here reads a database or a file: the caller gives the calls (salescalls.learning.training
for stored calls, bench.stages for labelled dialogues, whose labels it never sees).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from salescalls.script.classifier import Context, in_context
from salescalls.script.spec import Script
from salescalls.script.stages import LabelledCall, StageModel, train, train_from_script

ADAPT_SHARE = 0.02  # per stage, this share of all utterances becomes examples (MultiWOZ dev: 1-2 % alike)
MIN_ADAPT_CALLS = 10  # fewer calls than this teach the words of a handful of conversations
# A reply of a word or two ("Goodbye.", "Yes, sure.") is sure of its stage through the talk around
# it, not its words; as an example it teaches that any short reply of that speaker is the stage
# (the demo's real transcripts, see the README).
MIN_EXAMPLE_WORDS = 3


@dataclass(frozen=True)
class UnlabelledCall:
    texts: tuple[str, ...]  # utterances in call order
    roles: tuple[str, ...]  # rep / customer / "" per utterance
    language: str | None = None  # the call's language
    informative: tuple[bool, ...] | None = None  # False: a back-channel, never taken as an example


@dataclass(frozen=True)
class Adaptation:
    calls: int  # calls read
    utterances: int  # utterances that could become examples
    per_stage: int  # examples taken per stage, at most
    examples: dict[str, int]  # examples taken, per stage (fewer where the model chose it less often)

    def serialize(self) -> dict:
        return {
            "calls": self.calls,
            "utterances": self.utterances,
            "per_stage": self.per_stage,
            "examples": dict(self.examples),
        }


def confident_examples(
    model: StageModel, calls: list[UnlabelledCall], share: float = ADAPT_SHARE
) -> tuple[list[tuple[Context, str]], Adaptation]:
    """(context, stage) examples from the calls: per stage, the utterances the model gives that
    stage as its first choice, surest first, at most `share` of all utterances."""
    contexts: list[Context] = []
    candidate: list[bool] = []
    for call in calls:
        contexts.extend(in_context(list(call.texts), list(call.roles), call.language))
        informative = call.informative or (True,) * len(call.texts)
        candidate.extend(
            bool(i) and len(t.split()) >= MIN_EXAMPLE_WORDS for i, t in zip(informative, call.texts, strict=True)
        )
    usable = np.flatnonzero(candidate)
    per_stage = max(1, round(share * len(usable)))
    if not len(usable):
        return [], Adaptation(len(calls), 0, per_stage, {})
    proba = model._scores([contexts[i] for i in usable])
    best = proba.argmax(axis=1)
    examples: list[tuple[Context, str]] = []
    taken: Counter = Counter()
    for k, stage in enumerate(model.stages):
        mine = np.flatnonzero(best == k)
        for j in mine[np.argsort(-proba[mine, k], kind="stable")][:per_stage]:
            context = contexts[usable[j]]
            examples.append((Context(context.text, context.role, context.language), stage))
            taken[stage] += 1
    return examples, Adaptation(len(calls), len(usable), per_stage, {s: taken[s] for s in model.stages if taken[s]})


def adapt(
    script: Script,
    calls: list[UnlabelledCall],
    labelled: list[LabelledCall] = (),
    share: float = ADAPT_SHARE,
    random_state: int = 0,
    encoder: str | None = "configured",
) -> tuple[StageModel, Adaptation]:
    """A model from the script, the cold start's surest utterances of the calls, and any labels.

    The examples always come from the cold start (the script alone), so what they teach does not
    depend on an earlier adaptation or on which model is active."""
    cold = train_from_script(script, random_state=random_state, encoder=encoder)
    examples, adaptation = confident_examples(cold, calls, share)
    model = train(script, list(labelled), random_state=random_state, encoder=encoder, examples=examples)
    return model, adaptation
