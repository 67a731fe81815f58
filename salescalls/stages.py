"""Utterances to call-script stages: a scikit-learn classifier plus order-aware decoding.

The classifier (TF-IDF over character and word n-grams, plus the speaker's role, into a
logistic regression) gives each utterance a probability per stage. A hidden-Markov decoder
then picks the most likely stage *sequence*, with transitions that favour the script's order
(stay in a stage, move to the next, rarely skip or go back), so a lone ambiguous sentence does
not jump the call around the script. Cold start: the script's example phrases are the
training data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from .script import ROLES, Script

_NON_WORD = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lower-case, NFC, punctuation removed: what the recogniser and the script agree on."""
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def text_features(char_ngrams=(2, 5), word_ngrams=(1, 2)) -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=char_ngrams,
                    sublinear_tf=True,
                    preprocessor=normalise_text,
                    min_df=1,
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=word_ngrams,
                    sublinear_tf=True,
                    preprocessor=normalise_text,
                    token_pattern=r"(?u)\b\w[\w']*\b",
                ),
            ),
        ]
    )


def _role_columns(roles, weight: float) -> csr_matrix:
    columns = np.array([[weight * (role == r) for r in ROLES] for role in roles], dtype=np.float64)
    return csr_matrix(columns.reshape(len(roles), len(ROLES)))


class StageClassifier(ClassifierMixin, BaseEstimator):
    """Per-utterance stage probabilities from text and the speaker's role.

    X is a sequence of (text, role) pairs; role is "rep", "customer" or "" when unknown.
    """

    def __init__(
        self,
        C: float = 4.0,
        char_ngrams=(2, 5),
        word_ngrams=(1, 2),
        role_weight: float = 1.0,
        calibrate: bool = True,
        random_state: int = 0,
    ):
        self.C = C
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.role_weight = role_weight
        self.calibrate = calibrate
        self.random_state = random_state

    def _features(self, X, fit: bool = False):
        texts = [text for text, _ in X]
        roles = [role for _, role in X]
        text_matrix = self.features_.fit_transform(texts) if fit else self.features_.transform(texts)
        return hstack([text_matrix, _role_columns(roles, self.role_weight)]).tocsr()

    def _new_model(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=5000, class_weight="balanced", random_state=self.random_state)

    def fit(self, X, y):
        X, y = list(X), np.asarray(y)
        if len(X) != len(y) or not len(y):
            raise ValueError("StageClassifier.fit needs as many labels as utterances, and at least one")
        self.features_ = text_features(self.char_ngrams, self.word_ngrams)
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


def script_training_data(script: Script) -> tuple[list[tuple[str, str]], list[str]]:
    """Every example phrase of every stage, role and language, labelled with its stage."""
    X, y = [], []
    for stage in script.stages:
        for role, by_language in stage.examples.items():
            for phrases in by_language.values():
                for phrase in phrases:
                    X.append((phrase, role))
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


def viterbi(log_emissions: np.ndarray, log_transitions: np.ndarray, log_initial: np.ndarray) -> np.ndarray:
    """Most likely state sequence (T,) for emissions (T, K)."""
    n_steps, n_states = log_emissions.shape
    score = log_initial + log_emissions[0]
    back = np.zeros((n_steps, n_states), dtype=np.int64)
    for t in range(1, n_steps):
        candidates = score[:, None] + log_transitions
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(n_states)] + log_emissions[t]
    path = np.zeros(n_steps, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n_steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def posteriors(log_emissions: np.ndarray, log_transitions: np.ndarray, log_initial: np.ndarray) -> np.ndarray:
    """Forward-backward state marginals (T, K): how sure the decoder is at each step."""
    from scipy.special import logsumexp

    n_steps, n_states = log_emissions.shape
    alpha = np.zeros((n_steps, n_states))
    beta = np.zeros((n_steps, n_states))
    alpha[0] = log_initial + log_emissions[0]
    for t in range(1, n_steps):
        alpha[t] = log_emissions[t] + logsumexp(alpha[t - 1][:, None] + log_transitions, axis=0)
    for t in range(n_steps - 2, -1, -1):
        beta[t] = logsumexp(log_transitions + (log_emissions[t + 1] + beta[t + 1])[None, :], axis=1)
    log_marginals = alpha + beta
    log_marginals -= logsumexp(log_marginals, axis=1, keepdims=True)
    return np.exp(log_marginals)


@dataclass(frozen=True)
class StageLabel:
    stage: str  # script stage name
    confidence: float  # decoder's posterior probability of that stage, 0..1


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

    def emissions(self, texts: list[str], roles: list[str]) -> np.ndarray:
        """Per-utterance stage probabilities in script order (T, K)."""
        proba = self.classifier.predict_proba(list(zip(texts, roles, strict=True)))
        column = {name: i for i, name in enumerate(self.classifier.classes_)}
        ordered = np.full((len(texts), len(self.stages)), 1e-6)
        for k, stage in enumerate(self.stages):
            if stage in column:
                ordered[:, k] = np.maximum(proba[:, column[stage]], 1e-6)
        return ordered / ordered.sum(axis=1, keepdims=True)

    def label(self, texts: list[str], roles: list[str], informative: list[bool] | None = None) -> list[StageLabel]:
        """Stage of every utterance of one call, decoded as a sequence.

        Utterances marked not informative (back-channels) get a flat emission: they take the
        stage of the talk around them instead of pulling the sequence.
        """
        if not texts:
            return []
        emission = self.emissions(texts, roles)
        if informative is not None:
            emission[~np.asarray(informative, dtype=bool)] = 1.0 / len(self.stages)
        log_e = np.log(emission)
        log_t = np.log(self.transitions)
        log_i = np.log(self.initial)
        path = viterbi(log_e, log_t, log_i)
        marginals = posteriors(log_e, log_t, log_i)
        return [StageLabel(self.stages[k], float(marginals[t, k])) for t, k in enumerate(path)]


_cold_start_models: dict[tuple[str, int], StageModel] = {}


def train_from_script(script: Script, random_state: int = 0) -> StageModel:
    """Cold-start model: trained on the script's example phrases, order prior for transitions.

    Trained once per process and script text (it takes well under a second).
    """
    key = (script.sha256, random_state)
    if key not in _cold_start_models:
        _cold_start_models[key] = _cold_start(script, random_state)
    return _cold_start_models[key]


def _cold_start(script: Script, random_state: int) -> StageModel:
    X, y = script_training_data(script)
    classifier = StageClassifier(random_state=random_state).fit(X, y)
    n = len(script.stages)
    initial = np.array([0.5**i for i in range(n)])
    return StageModel(
        script_id=script.id,
        script_version=script.version,
        stages=script.stage_names,
        classifier=classifier,
        transitions=order_prior(n, [stage.required for stage in script.stages]),
        initial=initial / initial.sum(),
        name=f"cold-start:{script.id}@{script.version}:{script.sha256[:8]}",
    )
