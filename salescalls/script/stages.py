"""Utterances to call-script stages: the stage model of one script version, and its training.

The classifier (`classifier`: the words, their meaning, the speaker, the neighbouring utterances
and the position in the call, into a logistic regression) gives each utterance a probability per
stage. A hidden-Markov decoder (`decode`) then picks the most likely stage *sequence*, so a lone
ambiguous sentence does not jump the call around the script. Cold start: the script's example
phrases are the training data and the transitions follow the script's order (stay, move on,
rarely skip or go back). With labelled calls the classifier also learns from them and the
transitions are counted from them, smoothed towards the script's order. An utterance whose best
stage is still unlikely is labelled off-script.

This module owns the public model: `StageModel` (classifier + transitions, labels calls),
`StageLabel`, `LabelledCall`, the off-script and decoder-tuning constants, and training
(`train`, `train_from_script`, `training_rows`, `script_training_data`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from salescalls.script.classifier import Context, StageClassifier, _as_context, in_context
from salescalls.script.decode import (
    final_prior,
    initial_prior,
    learn_final,
    learn_transitions,
    order_prior,
    posteriors_many,
    viterbi_many,
)
from salescalls.script.spec import OFF_SCRIPT, ROLES, Script


@dataclass(frozen=True)
class StageLabel:
    stage: str  # script stage name, or "off_script" when no stage fits
    confidence: float  # decoder's posterior probability of that stage, 0..1


OFF_SCRIPT_MARGIN = 1.5  # off-script: no stage is this many times likelier than a uniform guess...
OFF_SCRIPT_BELOW = 0.5  # ...and the decoder too is less sure than this of the stage it chose
SEQUENCE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # how much the transitions count, chosen from data
# How a call's sequence becomes one stage per utterance, chosen from data with the weight:
# "path", the most likely sequence as a whole (Viterbi); "marginal", each utterance's most likely
# stage given the whole call (forward-backward), which maximises the expected number of right
# utterances and does not force a call that jumps back and forth onto one path.
DECODINGS = ("path", "marginal")
# The script's `stage_order:` (how closely the team's calls follow its stages) as the decoder's
# (weight, decoding) until labels choose them. Cold on the dev dialogues, whose calls go back and
# forth (decoded macro-F1 / accuracy): strict 0.451 / 0.501, loose 0.596 / 0.587, free 0.603 /
# 0.578; on the English demo's typed calls, which follow their script: 94.4, 89.8 and 83.1 %.
STAGE_ORDER_DECODING = {"strict": (1.0, "path"), "loose": (0.3, "marginal"), "free": (0.0, "path")}
MIN_CALLS_TO_TUNE_DECODER = 5  # ...from at least this many labelled calls
MIN_LABELS_TO_TUNE_DECODER = 50  # ...and labelled utterances; with fewer, the script's order decides
# A stage the script says one party leads (`speaker: rep`) is rarely entered on the other party's
# words: a customer's "call me back next week" answers the close, it does not start one.
ENTRY_BY_OTHER_PARTY = 0.1
DECODE_BATCH = 256  # calls decoded together (numpy steps over the batch instead of a loop per call)
# A call read by meaning (`StageModel.reads_by_meaning`) is decoded utterance by utterance: its
# emissions come from another language's examples and are flatter, and one most likely path lets
# a few unsure utterances carry the whole call. Measured with bench.languages on the three
# teams' typed demo calls, against the path, in all four cross-language settings more utterances
# and more end stages right (README, "A script in another language than the calls").
MEANING_DECODING = "marginal"


@dataclass
class StageModel:
    """A fitted classifier and the transition model of one script version."""

    script_id: str  # script it was trained for
    script_version: int
    stages: tuple[str, ...]  # in script order
    classifier: StageClassifier
    transitions: np.ndarray  # (K, K) row-stochastic, in `stages` order
    initial: np.ndarray  # (K,) first-utterance stage distribution
    name: str  # model identity stored with every scored call
    sequence_weight: float = 1.0  # 0: each utterance on its own; 1: full hidden-Markov decoding
    decoding: str = "path"  # "path" (Viterbi) or "marginal" (forward-backward), see DECODINGS
    outcome_model: object | None = None  # outcomes.OutcomeClassifier trained with it, if any
    leaders: tuple[str, ...] = ()  # per stage, who leads it (script `speaker`); () for no rule
    final: np.ndarray | None = None  # (K,) stage of a call's last utterance; None: no preference
    languages: tuple[str, ...] = ()  # languages of the training rows; () when unknown
    meaning_classifier: StageClassifier | None = None  # the same rows, sentence vectors only

    def reads_by_meaning(self, language: str | None) -> bool:
        """Whether an utterance in `language` is read by its meaning alone: none of the training
        rows is in that language, so its words say nothing the model learned (an English script
        on Russian calls), while the sentence encoder maps languages onto one another."""
        return (
            self.meaning_classifier is not None
            and bool(language)
            and bool(self.languages)
            and language.lower() not in self.languages
        )

    def _scores(self, contexts: list[Context]) -> np.ndarray:
        """(N, K) stage probabilities in script order; see `reads_by_meaning` for which classifier."""
        by_meaning = np.array([self.reads_by_meaning(context.language) for context in contexts], dtype=bool)
        if not by_meaning.any():
            return self._order(self.classifier.predict_proba(contexts))
        scores = np.empty((len(contexts), len(self.stages)))
        for mask, classifier in ((~by_meaning, self.classifier), (by_meaning, self.meaning_classifier)):
            if mask.any():
                chosen = [context for context, take in zip(contexts, mask, strict=True) if take]
                scores[mask] = self._order(classifier.predict_proba(chosen), classifier)
        return scores

    def _order(self, proba: np.ndarray, classifier: StageClassifier | None = None) -> np.ndarray:
        column = {name: i for i, name in enumerate((classifier or self.classifier).classes_)}
        ordered = np.full((proba.shape[0], len(self.stages)), 1e-6)
        for k, stage in enumerate(self.stages):
            if stage in column:
                ordered[:, k] = np.maximum(proba[:, column[stage]], 1e-6)
        return ordered / ordered.sum(axis=1, keepdims=True)

    def emissions(self, texts: list[str], roles: list[str], language: str | None = None) -> np.ndarray:
        """Per-utterance stage probabilities in script order (T, K)."""
        return self._scores(in_context(texts, roles, language))

    def label(
        self,
        texts: list[str],
        roles: list[str],
        informative: list[bool] | None = None,
        language: str | None = None,
    ) -> list[StageLabel]:
        """Stage of every utterance of one call, decoded as a sequence (see `label_calls`)."""
        return self.label_calls([(texts, roles, informative, language)])[0]

    def label_calls(self, calls: list[tuple]) -> list[list[StageLabel]]:
        """Stages of many calls at once: one classifier pass over all utterances, then each call
        decoded as a sequence. A call is (texts, roles, informative or None, language or None).

        Utterances marked not informative (back-channels) get a flat emission: they take the
        stage of the talk around them instead of pulling the sequence. An informative utterance
        is off-script when no stage stands out in it and the decoder is unsure as well.
        """
        contexts, bounds = [], []
        for texts, roles, _, language in calls:
            bounds.append((len(contexts), len(contexts) + len(texts)))
            contexts.extend(in_context(list(texts), list(roles), language))
        if not contexts:
            return [[] for _ in calls]
        emission = self._scores(contexts)
        decodings = [MEANING_DECODING if self.reads_by_meaning(call[3]) else self.decoding for call in calls]
        return self._decode_many(
            [(emission[a:b], call[2], call[1]) for (a, b), call in zip(bounds, calls, strict=True)], decodings
        )

    def _entry_penalty(self, roles) -> np.ndarray | None:
        """(T, K) log factor on entering each stage at each utterance: a stage led by the rep
        (customer) is entered on a customer's (rep's) utterance only ENTRY_BY_OTHER_PARTY as often."""
        if not self.leaders or roles is None:
            return None
        entry = np.zeros((len(roles), len(self.stages)))
        for k, leader in enumerate(self.leaders):
            if leader in ("rep", "customer"):
                entry[:, k] = [np.log(ENTRY_BY_OTHER_PARTY) if role and role != leader else 0.0 for role in roles]
        return entry if entry.any() else None

    def _decode(self, emission: np.ndarray, informative, roles=None) -> list[StageLabel]:
        return self._decode_many([(emission, informative, roles)])[0]

    def _decode_many(self, calls: list[tuple], decodings: list[str] | None = None) -> list[list[StageLabel]]:
        """Decode calls given as (emission (T, K), informative or None, roles or None), in batches
        of calls of similar length (padding stays small); the result is in the calls' order.
        `decodings` names each call's decoding (DECODINGS); None: the model's for every call."""
        decodings = decodings or [self.decoding] * len(calls)
        n_stages = len(self.stages)
        log_t = self.sequence_weight * np.log(self.transitions)
        log_i = self.sequence_weight * np.log(self.initial)
        log_final = None if self.final is None else self.sequence_weight * np.log(self.final)
        by_length = sorted(range(len(calls)), key=lambda i: len(calls[i][0]))
        labels: list[list[StageLabel]] = [[] for _ in calls]
        for first in range(0, len(by_length), DECODE_BATCH):
            batch = [i for i in by_length[first : first + DECODE_BATCH] if len(calls[i][0])]
            if not batch:
                continue
            lengths = np.array([len(calls[i][0]) for i in batch])
            log_e = np.zeros((len(batch), lengths.max(), n_stages))  # padding: finite, never read
            flat = np.zeros(log_e.shape[:2], dtype=bool)
            nothing_fits = np.zeros(log_e.shape[:2], dtype=bool)
            entries = [self._entry_penalty(calls[i][2]) for i in batch]
            log_entry = None if all(e is None for e in entries) else np.zeros_like(log_e)
            for row, (i, length) in enumerate(zip(batch, lengths, strict=True)):
                emission, informative, _ = calls[i]
                emission = emission.copy()
                if informative is not None:
                    flat[row, :length] = ~np.asarray(informative, dtype=bool)
                emission[flat[row, :length]] = 1.0 / n_stages
                nothing_fits[row, :length] = emission.max(axis=1) < OFF_SCRIPT_MARGIN / n_stages
                log_e[row, :length] = np.log(emission)
                if log_final is not None:
                    log_e[row, length - 1] += log_final
                if entries[row] is not None:
                    log_entry[row, :length] = self.sequence_weight * entries[row]
            marginals = posteriors_many(log_e, lengths, log_t, log_i, log_entry)
            by_marginal = np.array([decodings[i] == "marginal" for i in batch])
            paths = np.argmax(marginals, axis=2)
            if not by_marginal.all():
                best_path = viterbi_many(log_e, lengths, log_t, log_i, log_entry)
                paths = np.where(by_marginal[:, None], paths, best_path)
            confidence = np.take_along_axis(marginals, paths[:, :, None], axis=2)[:, :, 0]
            off = nothing_fits & (confidence < OFF_SCRIPT_BELOW) & ~flat
            names = np.array(self.stages + (OFF_SCRIPT,), dtype=object)
            chosen = np.where(off, n_stages, paths)
            for row, (i, length) in enumerate(zip(batch, lengths, strict=True)):
                labels[i] = [
                    StageLabel(stage, float(sure))
                    for stage, sure in zip(names[chosen[row, :length]], confidence[row, :length], strict=True)
                ]
        return labels


@dataclass(frozen=True)
class LabelledCall:
    """A call whose utterances people labelled: the training data beyond the script's examples."""

    texts: tuple[str, ...]  # utterances in call order
    roles: tuple[str, ...]  # rep / customer / "" per utterance
    stages: tuple[str | None, ...]  # stage per utterance; None where nobody labelled it
    language: str | None = None  # the call's language
    call_id: str = ""  # where the labels came from (a stored call, or corpus:<file>:<dialogue>)


def script_training_data(script: Script, descriptions: bool = True) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Every example phrase of every stage, role and language, labelled with its stage (and, with
    `descriptions`, each stage's description as one more example of it)."""
    X, y = [], []
    for stage in script.stages:
        if descriptions and stage.description:
            role = stage.speaker if stage.speaker in ROLES else ""
            X.append((stage.description, role, script.languages[0] if script.languages else None))
            y.append(stage.name)
        for role, by_language in stage.examples.items():
            for language, phrases in by_language.items():
                for phrase in phrases:
                    X.append((phrase, role if role in ROLES else "", language))
                    y.append(stage.name)
    return X, y


_cold_start_models: dict[tuple[str, int, str | None], StageModel] = {}


def train_from_script(script: Script, random_state: int = 0, encoder: str | None = "configured") -> StageModel:
    """Cold-start model: trained on the script's example phrases, order prior for transitions.

    Trained once per process, script text and encoder (it takes about a second).
    """
    if encoder == "configured":
        encoder = default_encoder()
    key = (script.sha256, random_state, encoder)
    if key not in _cold_start_models:
        _cold_start_models[key] = train(script, [], random_state=random_state, encoder=encoder)
    return _cold_start_models[key]


def training_rows(
    script: Script, calls: list[LabelledCall], examples: list[tuple[Context, str]] = ()
) -> tuple[list[Context], list[str]]:
    """The script's examples (no context), any further `examples` taken like them (the team's
    own utterances, salescalls.script.adapt) and every labelled utterance of the calls.

    Labelled utterances come in context (neighbours, previous speaker, position) once there are
    enough of them to learn what context means (MIN_LABELS_TO_TUNE_DECODER in
    MIN_CALLS_TO_TUNE_DECODER calls). With fewer they are taken like the script's examples, words
    and speaker only: otherwise the context features, which no example has, would be fitted to a
    handful of utterances and then move the stage of every other one (10 labels once took the
    demo's right end stages from 12 to 8).
    """
    X, y = script_training_data(script)
    rows = [_as_context(row) for row in X]
    for context, stage in examples:
        if stage in script.stage_names:
            rows.append(Context(context.text, context.role, context.language))
            y.append(stage)
    labelled = [(call, i) for call in calls for i, stage in enumerate(call.stages) if stage in script.stage_names]
    in_calls = len({id(call) for call, _ in labelled})
    with_context = len(labelled) >= MIN_LABELS_TO_TUNE_DECODER and in_calls >= MIN_CALLS_TO_TUNE_DECODER
    for call in calls:
        contexts = in_context(list(call.texts), list(call.roles), call.language)
        for context, stage in zip(contexts, call.stages, strict=True):
            if stage in script.stage_names:
                rows.append(context if with_context else Context(context.text, context.role, context.language))
                y.append(stage)
    return rows, y


def default_encoder() -> str | None:
    """The sentence encoder new models use: the configured one when it can be loaded here."""
    from salescalls.text import encoder as sentence_encoder

    name = sentence_encoder.configured()
    return name if name and sentence_encoder.available(name) else None


def train(
    script: Script,
    calls: list[LabelledCall],
    random_state: int = 0,
    name: str | None = None,
    encoder: str | None = "configured",
    examples: list[tuple[Context, str]] = (),
    **classifier_params,
) -> StageModel:
    """A stage model from the script's examples plus labelled calls (none: cold start).

    `encoder` names the sentence encoder whose vectors are features ("configured": the one
    SALESCALLS_ENCODER names, when installed; None: words only). `examples` are more (context,
    stage) examples weighed like the script's: the team's own utterances that the cold start is
    surest of (salescalls.script.adapt), which keep the script's order for the transitions.
    """
    if encoder == "configured":
        encoder = default_encoder()
    X, y = training_rows(script, calls, examples)
    labelled_rows = sum(stage in script.stage_names for call in calls for stage in call.stages)
    example_rows = len(X) - labelled_rows
    # While the script's examples are most of the data they keep their say: equal weights (a stage
    # with one example is not blown up); once labelled calls dominate, stages are balanced.
    classifier_params.setdefault("class_weight", "balanced" if labelled_rows > example_rows else None)
    # A few examples per stage need stronger regularisation than thousands of labelled turns
    # (cold start on the dev dialogues: per-utterance macro-F1 0.597 at C=1, 0.521 at C=4).
    classifier_params.setdefault("C", 4.0 if labelled_rows > example_rows else 1.0)
    classifier = StageClassifier(random_state=random_state, encoder=encoder, **classifier_params).fit(X, y)
    # For calls in a language none of the rows has, the same rows read by meaning only: fitted
    # beside the words, the vectors' weights are too small to carry such a call alone (an English
    # script on the Russian demo calls: accuracy 0.508 with words and meaning, 0.644 by meaning).
    languages = tuple(sorted({row.language.lower() for row in X if row.language}))
    meaning = None
    if encoder and classifier_params.get("words_weight", 1.0) > 0:
        meaning_params = {**classifier_params, "words_weight": 0.0}
        meaning = StageClassifier(random_state=random_state, encoder=encoder, **meaning_params).fit(X, y)
    prior = order_prior(len(script.stages), [stage.required for stage in script.stages])
    final = final_prior(len(script.stages))
    if calls:
        transitions, initial = learn_transitions(calls, script.stage_names, prior)
        final = learn_final(calls, script.stage_names, final)
    else:
        transitions, initial = prior, initial_prior(len(script.stages))
    kind = "trained" if calls else "adapted" if examples else "cold-start"
    features = "+meaning" if encoder else ""
    model = StageModel(
        script_id=script.id,
        script_version=script.version,
        stages=script.stage_names,
        classifier=classifier,
        transitions=transitions,
        initial=initial,
        name=name or f"{kind}:{script.id}@{script.version}:{script.sha256[:8]}{features}",
        leaders=tuple(stage.speaker for stage in script.stages),
        final=final,
        languages=languages,
        meaning_classifier=meaning,
    )
    model.sequence_weight, model.decoding = STAGE_ORDER_DECODING[script.stage_order]
    labelled_calls = sum(any(stage in script.stage_names for stage in call.stages) for call in calls)
    if labelled_calls >= MIN_CALLS_TO_TUNE_DECODER and labelled_rows >= MIN_LABELS_TO_TUNE_DECODER:
        model.sequence_weight, model.decoding = _choose_decoder(model, calls, example_rows)
    return model


def _choose_decoder(model: StageModel, calls: list[LabelledCall], first_call_row: int) -> tuple[float, str]:
    """How much the learned transitions should count and how the sequence is read (DECODINGS),
    decided by the labelled calls themselves.

    Decodes every labelled call from the classifier's out-of-fold probabilities (rows it was not
    trained on) with each candidate weight and decoding and keeps the most accurate: a script
    whose calls follow its order gains from decoding, data that jumps around does not ("where
    the data supports it"). Ties keep the stronger order and the whole path. Without out-of-fold
    scores (too few labels) the full path decoder is kept.
    """
    from scipy.special import softmax

    held_out = getattr(model.classifier, "held_out_scores_", None)
    if held_out is None:
        return 1.0, "path"
    proba = model._order(softmax(held_out * model.classifier.temperature_, axis=1))
    # Unlabelled utterances were not training rows: decode the labelled ones in order.
    decodable, truths, row = [], [], first_call_row
    for call in calls:
        truth = [s for s in call.stages if s in model.stages]
        roles = [r for r, s in zip(call.roles, call.stages, strict=True) if s in model.stages]
        if truth:
            decodable.append((proba[row : row + len(truth)], None, roles))
            truths.append(truth)
        row += len(truth)
    best, best_right = (1.0, "path"), -1
    for weight in sorted(SEQUENCE_WEIGHTS, reverse=True):  # ties keep the stronger order...
        for decoding in DECODINGS:  # ...and the whole path
            model.sequence_weight, model.decoding = weight, decoding
            predicted = model._decode_many(decodable)
            right = sum(
                p.stage == t
                for call, truth in zip(predicted, truths, strict=True)
                for p, t in zip(call, truth, strict=True)
            )
            if right > best_right:
                best, best_right = (weight, decoding), right
    return best
