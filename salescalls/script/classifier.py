"""Per-utterance stage probabilities: what the classifier sees of an utterance, and the classifier.

An utterance is a `Context`: its words, who said it, its neighbours and where in the call it is
(`in_context` makes them for one call). `StageClassifier` turns them into features (TF-IDF over
spaCy-normalised words and characters, once shared and once per speaker role; the sentence
vector with an encoder; the neighbours' words and vectors, down-weighted; the speaker, the
previous speaker and the position in the call) and those into a probability per stage with a
temperature-calibrated logistic regression. `text_features` is the TF-IDF union, which the role
classifier uses too. Nothing here knows the script's order: decoding a call as a sequence is
`decode`'s, and the model that puts the two together is in `stages`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from salescalls.script.spec import ROLES
from salescalls.text import nlp
from salescalls.text.nlp import normalise_text


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

    def _parts(self, X, fit: bool = False):
        """What the features are made of: per row its role, previous role and position, and per
        distinct text (its own, or a neighbour's) the TF-IDF row and, with an encoder, the vector."""
        rows = [_as_context(row) for row in X]
        # Every distinct text is normalised, vectorised and encoded once; neighbours reuse those rows.
        index: dict[tuple[str, str | None], int] = {}
        row_keys = []
        for row in rows:
            keys = tuple((text, row.language) for text in (row.text, row.previous, row.following))
            for key in keys:
                index.setdefault(key, len(index))
            row_keys.append(keys)
        vectors = None  # words_weight 0 reads by meaning only: no words normalised or vectorised
        if self.words_weight:
            normalised = [nlp.normalise(text, language) if text else "" for text, language in index]
            if fit:
                self.features_ = text_features(self.char_ngrams, self.word_ngrams, preprocessor=None)
                self.features_.fit([n for n in normalised if n] or ["_"])
            vectors = self.features_.transform(normalised).tocsr()
        meaning = self._sentence_vectors([text for text, _ in index]) if self.encoder else None
        role = np.array([[r.role == name for name in ROLES] for r in rows], dtype=np.float64).reshape(-1, len(ROLES))
        previous_role = np.array([[r.previous_role == name for name in ROLES] for r in rows], dtype=np.float64)
        position = np.zeros((len(rows), POSITION_BINS))
        for i, r in enumerate(rows):
            if r.position is not None:
                position[i, min(int(r.position * POSITION_BINS), POSITION_BINS - 1)] = 1.0
        # Which distinct text each row's own words, previous and following utterance are (R, 3).
        where = np.array([[index[key] for key in keys] for keys in row_keys], dtype=np.int64).reshape(-1, 3)
        return vectors, meaning, role, previous_role.reshape(-1, len(ROLES)), position, where

    def _features(self, X, fit: bool = False):
        vectors, meaning, role, previous_role, position, where = self._parts(X, fit)
        blocks = [] if vectors is None else self._text_blocks(vectors, where, role, self.words_weight)
        if meaning is not None:
            blocks += self._text_blocks(meaning, where, role, self.embedding_weight)
        blocks += [
            csr_matrix(self.role_weight * role),
            csr_matrix(self.role_weight * previous_role),
            csr_matrix(self.position_weight * position),
        ]
        return hstack(blocks).tocsr()

    def _decision(self, X) -> np.ndarray:
        """The logistic regression's decision_function on `_features(X)`, computed block by block
        without building the feature matrix: each block's weights are applied once per distinct
        text and the products gathered per row. Rescoring 100,000 calls spent most of its time
        stacking the sentence vectors into a sparse matrix; this is the same sum, reordered."""
        vectors, meaning, role, previous_role, position, where = self._parts(X)
        coef, offset = self.model_.coef_, 0
        scores = np.tile(self.model_.intercept_, (len(where), 1)).astype(np.float64)
        for matrix, weight in ((vectors, self.words_weight), (meaning, self.embedding_weight)):
            if matrix is None:
                continue
            width, n_blocks = matrix.shape[1], 3 + len(ROLES)
            weights = coef[:, offset : offset + n_blocks * width].reshape(len(coef), n_blocks, width)
            offset += n_blocks * width
            # (distinct texts, blocks, classes): every block's score of every distinct text.
            projected = np.asarray(matrix @ weights.transpose(2, 1, 0).reshape(width, -1), dtype=np.float64)
            projected = projected.reshape(matrix.shape[0], n_blocks, len(coef))
            own = projected[where[:, 0]]
            scores += weight * (own[:, 0] + np.einsum("rk,rkc->rc", role, own[:, 1 : 1 + len(ROLES)]))
            scores += self.context_weight * weight * projected[where[:, 1], 1 + len(ROLES)]
            scores += self.context_weight * weight * projected[where[:, 2], 2 + len(ROLES)]
        for dense, weight in (
            (role, self.role_weight),
            (previous_role, self.role_weight),
            (position, self.position_weight),
        ):
            scores += (weight * dense) @ coef[:, offset : offset + dense.shape[1]].T
            offset += dense.shape[1]
        if offset != coef.shape[1]:
            raise ValueError(f"the stage classifier's features changed ({offset} scored, {coef.shape[1]} fitted)")
        return scores[:, 0] if len(coef) == 1 else scores

    def _text_blocks(self, vectors, where, role, weight: float) -> list:
        """One representation of the texts as feature blocks: the utterance's own (shared and per
        role) and its neighbours' (down-weighted)."""
        vectors = csr_matrix(vectors)
        own, previous, following = (weight * vectors[where[:, k]] for k in range(3))
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
        return StageClassifier._two_sided(model.decision_function(features))

    @staticmethod
    def _two_sided(scores: np.ndarray) -> np.ndarray:
        return np.stack([-scores / 2, scores / 2], axis=1) if scores.ndim == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import softmax

        X = list(X)
        if not X:
            return np.zeros((0, len(self.classes_)))
        return softmax(self._two_sided(self._decision(X)) * self.temperature_, axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
