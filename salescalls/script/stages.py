"""Utterances to call-script stages: a scikit-learn classifier plus order-aware decoding.

The classifier (TF-IDF over spaCy-normalised words and characters, per speaker role, plus the
neighbouring utterances, the speaker and the position in the call, into a logistic regression)
gives each utterance a probability per stage. A hidden-Markov decoder then picks the most likely
stage *sequence*, so a lone ambiguous sentence does not jump the call around the script. Cold
start: the script's example phrases are the training data and the transitions follow the
script's order (stay, move on, rarely skip or go back). With labelled calls the classifier also
learns from them and the transitions are counted from them, smoothed towards the script's order.
An utterance whose best stage is still unlikely is labelled off-script.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from salescalls.script.spec import OFF_SCRIPT, ROLES, Script
from salescalls.text import nlp
from salescalls.text.nlp import normalise_text  # stored models name it here: keep the name


def text_features(char_ngrams=(2, 5), word_ngrams=(1, 2), preprocessor=normalise_text) -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=char_ngrams,
                    sublinear_tf=True,
                    preprocessor=preprocessor,
                    min_df=1,
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=word_ngrams,
                    sublinear_tf=True,
                    preprocessor=preprocessor,
                    token_pattern=r"(?u)\b\w[\w']*\b",
                ),
            ),
        ]
    )


@dataclass(frozen=True)
class Context:
    """One utterance as the stage classifier sees it: its words, who said it, where in the call."""

    text: str  # what was said
    role: str = ""  # rep, customer, or "" when unknown
    language: str | None = None  # en, ru, hu...; None guesses from the text
    previous: str = ""  # the utterance before it ("" at the start, or with no call around it)
    following: str = ""  # the utterance after it
    previous_role: str = ""  # who said the previous utterance
    position: float | None = None  # 0 at the call's first utterance, 1 at its last; None: unknown


def in_context(texts: list[str], roles: list[str], language: str | None = None) -> list[Context]:
    """The utterances of one call, each with its neighbours and position."""
    n = len(texts)
    return [
        Context(
            text=texts[i],
            role=roles[i] or "",
            language=language,
            previous=texts[i - 1] if i > 0 else "",
            following=texts[i + 1] if i + 1 < n else "",
            previous_role=(roles[i - 1] or "") if i > 0 else "",
            position=i / (n - 1) if n > 1 else 0.0,
        )
        for i in range(n)
    ]


def _as_context(row) -> Context:
    if isinstance(row, Context):
        return row
    return Context(text=row[0], role=row[1] or "", language=row[2] if len(row) > 2 else None)


POSITION_BINS = 5  # the call's first fifth, second fifth, ...


class StageClassifier(ClassifierMixin, BaseEstimator):
    """Per-utterance stage probabilities from the words, their meaning, the speaker and the context.

    X is a sequence of `Context` rows, or (text, role) pairs, which have no context. Features:
    TF-IDF of the spaCy-normalised words and characters, once shared and once per role (so "the
    reference number is" can mean one stage from the rep and another from the customer); with an
    `encoder`, the sentence vector (what it means, in any language), also shared and per role;
    the neighbouring utterances' words and vectors, down-weighted; the speaker and the previous
    speaker; the position in the call. A logistic regression, temperature-calibrated.
    `class_weight` "balanced" suits labelled calls, where stages are very unequal; none suits the
    script's examples, where a stage with one example would otherwise be predicted everywhere.
    """

    def __init__(
        self,
        C: float = 4.0,
        char_ngrams=(2, 5),
        word_ngrams=(1, 2),
        role_weight: float = 1.0,
        context_weight: float = 0.5,
        position_weight: float = 0.5,
        calibrate: bool = True,
        random_state: int = 0,
        encoder: str | None = None,
        embedding_weight: float = 2.0,
        words_weight: float = 1.0,
        class_weight: str | None = "balanced",
    ):
        self.C = C
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.role_weight = role_weight
        self.context_weight = context_weight
        self.position_weight = position_weight
        self.calibrate = calibrate
        self.random_state = random_state
        self.encoder = encoder
        self.embedding_weight = embedding_weight
        self.words_weight = words_weight
        self.class_weight = class_weight

    def __setstate__(self, state):
        # Models saved before the sentence encoder existed read words only, as they were trained.
        defaults = {"encoder": None, "embedding_weight": 2.0, "words_weight": 1.0, "class_weight": "balanced"}
        super().__setstate__({**defaults, **state})

    def _features(self, X, fit: bool = False):
        rows = [_as_context(row) for row in X]
        # Every distinct text is normalised, vectorised and encoded once; neighbours reuse those rows.
        index: dict[tuple[str, str | None], int] = {}
        row_keys = []
        for row in rows:
            keys = tuple((text, row.language) for text in (row.text, row.previous, row.following))
            for key in keys:
                index.setdefault(key, len(index))
            row_keys.append(keys)
        normalised = [nlp.normalise(text, language) if text else "" for text, language in index]
        if fit:
            self.features_ = text_features(self.char_ngrams, self.word_ngrams, preprocessor=None)
            self.features_.fit([n for n in normalised if n] or ["_"])
        vectors = self.features_.transform(normalised).tocsr()
        role = np.array([[r.role == name for name in ROLES] for r in rows], dtype=np.float64).reshape(-1, len(ROLES))
        previous_role = np.array([[r.previous_role == name for name in ROLES] for r in rows], dtype=np.float64)
        position = np.zeros((len(rows), POSITION_BINS))
        for i, r in enumerate(rows):
            if r.position is not None:
                position[i, min(int(r.position * POSITION_BINS), POSITION_BINS - 1)] = 1.0
        blocks = self._text_blocks(vectors, row_keys, index, role, self.words_weight)
        if self.encoder:
            meaning = self._sentence_vectors([text for text, _ in index])
            blocks += self._text_blocks(meaning, row_keys, index, role, self.embedding_weight)
        blocks += [
            csr_matrix(self.role_weight * role),
            csr_matrix(self.role_weight * previous_role.reshape(-1, len(ROLES))),
            csr_matrix(self.position_weight * position),
        ]
        return hstack(blocks).tocsr()

    def _text_blocks(self, vectors, row_keys, index, role, weight: float) -> list:
        """One representation of the texts as feature blocks: the utterance's own (shared and per
        role) and its neighbours' (down-weighted)."""
        vectors = csr_matrix(vectors)
        own, previous, following = (weight * vectors[[index[keys[k]] for keys in row_keys]] for k in range(3))
        blocks = [own] + [csr_matrix(own.multiply(role[:, [k]])) for k in range(len(ROLES))]
        return blocks + [self.context_weight * previous, self.context_weight * following]

    def _sentence_vectors(self, texts: list[str]) -> np.ndarray:
        from salescalls.text import encoder as sentence_encoder

        cache = sentence_encoder.shared_cache(self.encoder)
        vectors = cache.encode(texts).copy()
        vectors[[i for i, text in enumerate(texts) if not text]] = 0.0  # no neighbour: no meaning
        return vectors

    def _new_model(self) -> LogisticRegression:
        # Balanced weights give a stage with two labelled utterances a large say that only a tight
        # optimum honours (sklearn's tol); the script's examples alone reach the same predictions
        # at 1e-3 in less than half the time.
        tol = 1e-4 if self.class_weight == "balanced" else 1e-3
        return LogisticRegression(
            C=self.C, tol=tol, max_iter=5000, class_weight=self.class_weight, random_state=self.random_state
        )

    def fit(self, X, y):
        X, y = list(X), np.asarray(y)
        if len(X) != len(y) or not len(y):
            raise ValueError("StageClassifier.fit needs as many labels as utterances, and at least one")
        features = self._features(X, fit=True)
        self.model_ = self._new_model().fit(features, y)
        self.classes_ = self.model_.classes_
        self.temperature_ = self._fit_temperature(features, y) if self.calibrate else 1.0
        return self

    def _fit_temperature(self, features, y) -> float:
        """Temperature scaling on cross-validated scores, so probabilities mean what they say.

        A logistic regression trained on a few dozen phrases is under-confident; the temperature
        that best predicts held-out examples sharpens (or softens) its scores accordingly.
        """
        from scipy.optimize import minimize_scalar
        from scipy.special import log_softmax
        from sklearn.model_selection import StratifiedKFold

        folds = min(5, int(np.min(np.unique(y, return_counts=True)[1])))
        if folds < 2 or len(self.classes_) < 2:
            return 1.0
        scores = np.zeros((len(y), len(self.classes_)))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for train, test in splitter.split(np.zeros(len(y)), y):
            if len(np.unique(y[train])) < len(self.classes_):
                return 1.0
            scores[test] = self._scores(self._new_model().fit(features[train], y[train]), features[test])
        self.held_out_scores_ = scores  # out-of-fold class scores of the training rows
        truth = np.searchsorted(self.classes_, y)
        loss = lambda t: -log_softmax(scores * t, axis=1)[np.arange(len(y)), truth].mean()  # noqa: E731
        return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)

    @staticmethod
    def _scores(model: LogisticRegression, features) -> np.ndarray:
        """Class scores whose softmax is the model's probability (also for two classes)."""
        scores = model.decision_function(features)
        return np.stack([-scores / 2, scores / 2], axis=1) if scores.ndim == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import softmax

        X = list(X)
        if not X:
            return np.zeros((0, len(self.classes_)))
        return softmax(self._scores(self.model_, self._features(X)) * self.temperature_, axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


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


def order_prior(
    n_stages: int,
    required: list[bool] | None = None,
    stay: float = 0.8,
    back: float = 0.04,
    sign_off: float = 0.05,
    forward_decay: float = 0.3,
) -> np.ndarray:
    """Cold-start transition matrix from the script's order.

    From stage i: stay with probability `stay` (stages span several utterances); go back with
    total probability `back` (objections send calls back to the offer); go to the sign-off (the
    last stage) with probability `sign_off`, since a customer can end a call at any point; and
    move forward with the rest: each *required* stage jumped over makes a target `forward_decay`
    times less likely (skipping a required stage is rare), jumping over optional stages is free.
    The sign-off itself only stays or goes back.
    """
    required = [True] * n_stages if required is None else list(required)
    matrix = np.zeros((n_stages, n_stages))
    last = n_stages - 1
    for i in range(n_stages):
        back_share = back if i > 0 else 0.0
        if i > 0:
            matrix[i, :i] = back_share / i
        if i == last:
            matrix[i, i] = 1 - back_share
            continue
        matrix[i, i] = stay
        forward = 1 - stay - back_share
        if i + 1 < last:
            jumped = np.cumsum([0] + [int(r) for r in required[i + 1 : last - 1]])  # required stages passed
            decay = forward_decay**jumped
            matrix[i, i + 1 : last] = (forward - sign_off) * decay / decay.sum()
            matrix[i, last] = sign_off
        else:
            matrix[i, last] = forward
    return matrix


def _step_transitions(log_transitions: np.ndarray, log_entry: np.ndarray | None, t: int) -> np.ndarray:
    """Transitions into step t: the base matrix, with entering stage j (from another stage)
    changed by log_entry[t, j]; staying is never penalised."""
    if log_entry is None:
        return log_transitions
    step = log_transitions + log_entry[t][None, :]
    np.fill_diagonal(step, np.diag(log_transitions))
    return step


def viterbi(
    log_emissions: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """Most likely state sequence (T,) for emissions (T, K); log_entry (T, K), if given, is added
    to every transition that enters state k at step t from another state."""
    n_steps, n_states = log_emissions.shape
    score = log_initial + log_emissions[0]
    back = np.zeros((n_steps, n_states), dtype=np.int64)
    for t in range(1, n_steps):
        candidates = score[:, None] + _step_transitions(log_transitions, log_entry, t)
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(n_states)] + log_emissions[t]
    path = np.zeros(n_steps, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n_steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def posteriors(
    log_emissions: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """Forward-backward state marginals (T, K): how sure the decoder is at each step.

    Scaled recursions in probability space (each step renormalised), which is exact and needs
    no log-sum-exp: emissions are first divided by their row maximum so nothing underflows.
    """
    emissions = np.exp(log_emissions - log_emissions.max(axis=1, keepdims=True))
    n_steps, n_states = emissions.shape
    steps = [np.exp(_step_transitions(log_transitions, log_entry, t)) for t in range(n_steps)]
    alpha = np.empty((n_steps, n_states))
    beta = np.ones((n_steps, n_states))
    alpha[0] = np.exp(log_initial - log_initial.max()) * emissions[0]
    alpha[0] /= alpha[0].sum()
    for t in range(1, n_steps):
        alpha[t] = (alpha[t - 1] @ steps[t]) * emissions[t]
        alpha[t] /= alpha[t].sum()
    for t in range(n_steps - 2, -1, -1):
        beta[t] = steps[t + 1] @ (emissions[t + 1] * beta[t + 1])
        beta[t] /= beta[t].sum()
    marginals = alpha * beta
    return marginals / marginals.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class StageLabel:
    stage: str  # script stage name, or "off_script" when no stage fits
    confidence: float  # decoder's posterior probability of that stage, 0..1


OFF_SCRIPT_MARGIN = 1.5  # off-script: no stage is this many times likelier than a uniform guess...
OFF_SCRIPT_BELOW = 0.5  # ...and the decoder too is less sure than this of the stage it chose
SEQUENCE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # how much the transitions count, chosen from data
MIN_CALLS_TO_TUNE_DECODER = 5  # ...from at least this many labelled calls
MIN_LABELS_TO_TUNE_DECODER = 50  # ...and labelled utterances; with fewer, the script's order decides
# A stage the script says one party leads (`speaker: rep`) is rarely entered on the other party's
# words: a customer's "call me back next week" answers the close, it does not start one.
ENTRY_BY_OTHER_PARTY = 0.1


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
    outcome_model: object | None = None  # outcomes.OutcomeClassifier trained with it, if any
    leaders: tuple[str, ...] = ()  # per stage, who leads it (script `speaker`); () for no rule
    final: np.ndarray | None = None  # (K,) stage of a call's last utterance; None: no preference

    def _order(self, proba: np.ndarray) -> np.ndarray:
        column = {name: i for i, name in enumerate(self.classifier.classes_)}
        ordered = np.full((proba.shape[0], len(self.stages)), 1e-6)
        for k, stage in enumerate(self.stages):
            if stage in column:
                ordered[:, k] = np.maximum(proba[:, column[stage]], 1e-6)
        return ordered / ordered.sum(axis=1, keepdims=True)

    def emissions(self, texts: list[str], roles: list[str], language: str | None = None) -> np.ndarray:
        """Per-utterance stage probabilities in script order (T, K)."""
        return self._order(self.classifier.predict_proba(in_context(texts, roles, language)))

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
        emission = self._order(self.classifier.predict_proba(contexts))
        return [
            self._decode(emission[a:b], call[2], call[1]) if b > a else []
            for (a, b), call in zip(bounds, calls, strict=True)
        ]

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
        n_stages = len(self.stages)
        emission = emission.copy()
        flat = np.zeros(len(emission), dtype=bool) if informative is None else ~np.asarray(informative, dtype=bool)
        emission[flat] = 1.0 / n_stages
        nothing_fits = emission.max(axis=1) < OFF_SCRIPT_MARGIN / n_stages
        log_e = np.log(emission)
        if self.final is not None:
            log_e[-1] += self.sequence_weight * np.log(self.final)
        log_t = self.sequence_weight * np.log(self.transitions)
        log_i = self.sequence_weight * np.log(self.initial)
        entry = self._entry_penalty(roles)
        log_entry = None if entry is None else self.sequence_weight * entry
        path = viterbi(log_e, log_t, log_i, log_entry)
        marginals = posteriors(log_e, log_t, log_i, log_entry)
        labels = []
        for t, k in enumerate(path):
            confidence = float(marginals[t, k])
            off = nothing_fits[t] and confidence < OFF_SCRIPT_BELOW and not flat[t]
            labels.append(StageLabel(OFF_SCRIPT if off else self.stages[k], confidence))
        return labels


@dataclass(frozen=True)
class LabelledCall:
    """A call whose utterances people labelled: the training data beyond the script's examples."""

    texts: tuple[str, ...]  # utterances in call order
    roles: tuple[str, ...]  # rep / customer / "" per utterance
    stages: tuple[str | None, ...]  # stage per utterance; None where nobody labelled it
    language: str | None = None  # the call's language
    call_id: str = ""  # where the labels came from (a stored call, or corpus:<file>:<dialogue>)


def learn_transitions(
    calls: list[LabelledCall], stages: tuple[str, ...], prior: np.ndarray, prior_weight: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix and initial distribution counted from labelled calls.

    Each row is smoothed with `prior_weight` pseudo-counts spread like the script-order prior,
    so a transition never seen in the labels stays possible, and a row with few observations
    stays close to the script's order: the data decides only where there is data.
    """
    k = len(stages)
    position = {name: i for i, name in enumerate(stages)}
    counts = np.zeros((k, k))
    first = np.zeros(k)
    for call in calls:
        sequence = [position[s] for s in call.stages if s in position]
        if sequence:
            first[sequence[0]] += 1
        for a, b in zip(sequence, sequence[1:], strict=False):
            counts[a, b] += 1
    transitions = counts + prior_weight * prior
    transitions /= transitions.sum(axis=1, keepdims=True)
    initial = first + prior_weight * initial_prior(k)
    return transitions, initial / initial.sum()


def final_prior(n_stages: int, sign_off: float = 0.8) -> np.ndarray:
    """Cold-start stage of a call's last utterance: mostly the sign-off (the script's last stage),
    since a recorded call ends with a goodbye far more often than in the middle of a stage. A
    misheard "goodbye" ("not interested, don't buy") then still ends the call."""
    final = np.full(n_stages, (1 - sign_off) / max(n_stages - 1, 1))
    final[-1] = sign_off if n_stages > 1 else 1.0
    return final


def learn_final(
    calls: list[LabelledCall], stages: tuple[str, ...], prior: np.ndarray, prior_weight: float = 20.0
) -> np.ndarray:
    """Last-utterance stage distribution counted from labelled calls whose last utterance is
    labelled, smoothed with `prior_weight` pseudo-counts of the prior."""
    position = {name: i for i, name in enumerate(stages)}
    counts = np.zeros(len(stages))
    for call in calls:
        if call.stages and call.stages[-1] in position:
            counts[position[call.stages[-1]]] += 1
    final = counts + prior_weight * prior
    return final / final.sum()


def initial_prior(n_stages: int) -> np.ndarray:
    """Cold-start first-utterance distribution: each stage half as likely as the one before."""
    weights = 0.5 ** np.arange(n_stages)
    return weights / weights.sum()


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


def training_rows(script: Script, calls: list[LabelledCall]) -> tuple[list[Context], list[str]]:
    """The script's examples (no context) and every labelled utterance of the calls.

    Labelled utterances come in context (neighbours, previous speaker, position) once there are
    enough of them to learn what context means (MIN_LABELS_TO_TUNE_DECODER in
    MIN_CALLS_TO_TUNE_DECODER calls). With fewer they are taken like the script's examples, words
    and speaker only: otherwise the context features, which no example has, would be fitted to a
    handful of utterances and then move the stage of every other one (10 labels once took the
    demo's right end stages from 12 to 8).
    """
    X, y = script_training_data(script)
    rows = [_as_context(row) for row in X]
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
    **classifier_params,
) -> StageModel:
    """A stage model from the script's examples plus labelled calls (none: cold start).

    `encoder` names the sentence encoder whose vectors are features ("configured": the one
    SALESCALLS_ENCODER names, when installed; None: words only).
    """
    if encoder == "configured":
        encoder = default_encoder()
    X, y = training_rows(script, calls)
    labelled_rows = sum(stage in script.stage_names for call in calls for stage in call.stages)
    examples = len(X) - labelled_rows
    # While the script's examples are most of the data they keep their say: equal weights (a stage
    # with one example is not blown up); once labelled calls dominate, stages are balanced.
    classifier_params.setdefault("class_weight", "balanced" if labelled_rows > examples else None)
    # A few examples per stage need stronger regularisation than thousands of labelled turns
    # (cold start on the dev dialogues: per-utterance macro-F1 0.597 at C=1, 0.521 at C=4).
    classifier_params.setdefault("C", 4.0 if labelled_rows > examples else 1.0)
    classifier = StageClassifier(random_state=random_state, encoder=encoder, **classifier_params).fit(X, y)
    prior = order_prior(len(script.stages), [stage.required for stage in script.stages])
    final = final_prior(len(script.stages))
    if calls:
        transitions, initial = learn_transitions(calls, script.stage_names, prior)
        final = learn_final(calls, script.stage_names, final)
    else:
        transitions, initial = prior, initial_prior(len(script.stages))
    kind = "trained" if calls else "cold-start"
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
    )
    labelled_calls = sum(any(stage in script.stage_names for stage in call.stages) for call in calls)
    if labelled_calls >= MIN_CALLS_TO_TUNE_DECODER and labelled_rows >= MIN_LABELS_TO_TUNE_DECODER:
        model.sequence_weight = _choose_sequence_weight(model, calls, examples)
    return model


def _choose_sequence_weight(model: StageModel, calls: list[LabelledCall], first_call_row: int) -> float:
    """How much the learned transitions should count, decided by the labelled calls themselves.

    Decodes every labelled call from the classifier's out-of-fold probabilities (rows it was not
    trained on) with each candidate weight and keeps the most accurate: a script whose calls
    follow its order gains from decoding, data that jumps around does not ("where the data
    supports it"). Without out-of-fold scores (too few labels) the full decoder is kept.
    """
    from scipy.special import softmax

    held_out = getattr(model.classifier, "held_out_scores_", None)
    if held_out is None:
        return 1.0
    proba = model._order(softmax(held_out * model.classifier.temperature_, axis=1))
    best, best_right = 1.0, -1
    for weight in sorted(SEQUENCE_WEIGHTS, reverse=True):  # ties keep the stronger order
        model.sequence_weight = weight
        right, row = 0, first_call_row
        for call in calls:
            # Unlabelled utterances were not training rows: decode the labelled ones in order.
            truth = [s for s in call.stages if s in model.stages]
            roles = [r for r, s in zip(call.roles, call.stages, strict=True) if s in model.stages]
            if truth:
                predicted = model._decode(proba[row : row + len(truth)], None, roles)
                right += sum(p.stage == t for p, t in zip(predicted, truth, strict=True))
            row += len(truth)
        if right > best_right:
            best, best_right = weight, right
    return best
