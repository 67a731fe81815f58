"""Call-level results from stage-labelled utterances: where the call went, where it ended, who ended it.

Definitions (also in the README):
- A stage is *reached* when at least one utterance (not a back-channel) is labelled with it.
- The script's last stage is the sign-off (farewell). The *end stage* is the last stage before
  the final sign-off: where the conversation was when the call ended. It is read off the decoded
  sequence so that one stray utterance cannot move it: the sign-off is absorbing (after it, the
  call resumes only when two utterances of other stages come in a row, as a new request after
  "anything else?" does; a misheard "I need a name" after the goodbye is part of the goodbye, and
  does not count as reaching its stage either).
- *Who ended* the call is whoever started the final sign-off; with no sign-off, the last speaker.
- A required stage is *skipped* when the call got past it (its end stage comes later in the
  script) without reaching it.
- A required stage is *out of order* when it was first reached after a later required stage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from salescalls.records import CallScore, PhraseHit, ScoredUtterance
from salescalls.script.spec import Script
from salescalls.text.nlp import normalise_text


def find_phrases(
    utterances: list[ScoredUtterance], rules: dict[str, list[str]], texts: list[str] | None = None
) -> list[PhraseHit]:
    """Whole-word, case- and punctuation-insensitive phrase matches, in call order (`texts`: the
    utterances already made " normalised ", when the caller looks for several rule sets)."""
    needles = {name: _needles(tuple(phrases)) for name, phrases in rules.items()}
    texts = texts if texts is not None else _padded(utterances)
    hits = []
    for index, (utterance, text) in enumerate(zip(utterances, texts, strict=True)):
        for name, phrases in needles.items():
            for phrase, needle in phrases:
                if needle in text:
                    hits.append(PhraseHit(name, phrase, index, utterance.start, utterance.role))
    return hits


def _padded(utterances: list[ScoredUtterance]) -> list[str]:
    return [f" {normalise_text(u.text)} " for u in utterances]


@functools.lru_cache(maxsize=256)
def _needles(phrases: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each phrase with the form it is looked for in (rescoring scores 100,000 calls per script)."""
    return tuple((p, f" {normalise_text(p)} ") for p in phrases if normalise_text(p))


def _all_languages(by_language: dict[str, tuple[str, ...]]) -> list[str]:
    return [phrase for phrases in by_language.values() for phrase in phrases]


RESUME = 2  # after the sign-off, this many utterances of other stages in a row resume the call


@dataclass(frozen=True)
class CallPath:
    """Where a call went, from its decoded stages (see the module's definitions)."""

    sign_off: int | None  # index (in the sequence given) of the utterance starting the final sign-off
    end: int | None  # index of the utterance that sets the end stage (None: only sign-off, or nothing)
    strays: frozenset[int]  # utterances after the sign-off that do not resume the call


def call_path(stages: list[str], sign_off: str) -> CallPath:
    """The final sign-off, the strays after it and the utterance that fixes the end stage.

    The sign-off is absorbing: once a call has signed off, it resumes only when RESUME utterances
    of other stages come in a row (a new request after "anything else?"); fewer are strays, part
    of the goodbye (one misheard sentence after it cannot move the end stage).
    """
    start, pending, strays = None, [], set()
    for i, stage in enumerate(stages):
        if stage == sign_off:
            start = i if start is None else start
            strays.update(pending)
            pending = []
        elif start is not None:
            pending.append(i)
            if len(pending) >= RESUME:  # the conversation went on: that was not the final sign-off
                start, pending, strays = None, [], set()
    strays.update(pending)
    before = [i for i in range(start if start is not None else len(stages)) if stages[i] != sign_off]
    return CallPath(start, before[-1] if before else None, frozenset(strays) if start is not None else frozenset())


def score_call(utterances: list[ScoredUtterance], script: Script) -> CallScore:
    # Back-channels and off-script talk say nothing about where the call is in the script.
    spoken = [u for u in utterances if not u.backchannel and u.stage in script.stage_names]
    sign_off = script.stage_names[-1]
    path = call_path([u.stage for u in spoken], sign_off)
    reached: list[str] = []
    for i, utterance in enumerate(spoken):
        if utterance.stage not in reached and i not in path.strays:
            reached.append(utterance.stage)

    end_stage = spoken[path.end].stage if path.end is not None else (sign_off if spoken else None)

    ended_by = None
    if spoken:
        ended_by = spoken[path.sign_off].role if path.sign_off is not None else spoken[-1].role

    required = [s.name for s in script.stages if s.required and s.name != sign_off]
    skipped = []
    if end_stage is not None:
        end_position = script.position(end_stage)
        skipped = [s for s in required if script.position(s) < end_position and s not in reached]
    first_required = [s for s in reached if s in required]
    out_of_order = [
        stage
        for i, stage in enumerate(first_required)
        if any(script.position(earlier) > script.position(stage) for earlier in first_required[:i])
    ]

    texts = _padded(utterances)

    def said(rules: dict[str, list[str]], role: str | None = None) -> list[PhraseHit]:
        hits = find_phrases(utterances, rules, texts)  # indices refer to the call's utterances
        return [h for h in hits if not utterances[h.utterance].backchannel and role in (None, h.role)]

    def rules(phrase_rules) -> dict[str, list[str]]:
        return {rule.name: _all_languages(rule.phrases) for rule in phrase_rules}

    outcome_hits = said({name: _all_languages(p) for name, p in script.outcomes.items()})
    return CallScore(
        stages_reached=tuple(reached),
        stages_skipped=tuple(skipped),
        out_of_order=tuple(out_of_order),
        end_stage=end_stage,
        ended_by=ended_by,
        detected_outcome=outcome_hits[-1].rule if outcome_hits else None,
        forbidden=tuple(said(rules(script.forbidden), role="rep")),
        controlled=tuple(said(rules(script.controlled), role="rep")),
    )
