"""How a call ended (sale, meeting, callback, refusal, ...): marker phrases, a model, the CRM.

Three sources, reconciled in this order of trust: the CRM's outcome when the metadata has one
(someone recorded it); else an outcome marker phrase of the script said in the call ("send me
the contract"); else the outcome model when it is confident enough. The model reads the end of
the call — the words of its last utterances per role — and where the call got to in the script
(stages reached, end stage, who ended it), and is trained from stored calls whose CRM outcome
is known, so it learns each team's own calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from salescalls.records import MIN_CONFIDENCE  # a model guess below this is not used as the call's outcome
from salescalls.text import nlp

LAST_UTTERANCES = 8  # the end of the call carries the outcome


@dataclass(frozen=True)
class CallEnd:
    """What the outcome model sees of one call."""

    texts: tuple[str, ...]  # utterances in call order
    roles: tuple[str, ...]  # rep / customer per utterance
    stages: tuple[str, ...]  # stage per utterance
    end_stage: str | None  # last stage before the sign-off
    ended_by: str | None  # rep or customer
    language: str | None = None


def call_end(utterances, end_stage: str | None, ended_by: str | None, language: str | None = None) -> CallEnd:
    """A stored or just-scored call (ScoredUtterance rows) as the outcome model sees it, the same
    way for training and prediction: back-channels are listening, not how the call ended."""
    spoken = [u for u in utterances if not u.backchannel]
    return CallEnd(
        tuple(u.text for u in spoken),
        tuple(u.role for u in spoken),
        tuple(u.stage for u in spoken),
        end_stage,
        ended_by,
        language,
    )


def _ending_text(call: CallEnd) -> str:
    """The last utterances, each word tagged with who said it (rep_x / customer_x)."""
    tokens = []
    for text, role in list(zip(call.texts, call.roles, strict=True))[-LAST_UTTERANCES:]:
        tokens += [f"{role or 'anyone'}_{word}" for word in nlp.normalise(text, call.language).split()]
    return " ".join(tokens)


class OutcomeClassifier(ClassifierMixin, BaseEstimator):
    """Outcome of a call from how it ended; X is a sequence of CallEnd, y the outcomes."""

    def __init__(self, C: float = 2.0, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    def _features(self, X, fit: bool = False):
        X = list(X)
        texts = [_ending_text(call) for call in X]
        if fit:
            self.words_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
            self.words_.fit(texts)
            self.stage_names_ = sorted({s for call in X for s in call.stages} | {c.end_stage or "" for c in X})
        index = {name: i for i, name in enumerate(self.stage_names_)}
        structure = np.zeros((len(X), 2 * len(index) + 2))
        for row, call in enumerate(X):
            for stage in set(call.stages):
                if stage in index:
                    structure[row, index[stage]] = 1.0  # reached
            if call.end_stage in index:
                structure[row, len(index) + index[call.end_stage]] = 1.0  # where it ended
            structure[row, -2] = call.ended_by == "customer"
            structure[row, -1] = call.ended_by == "rep"
        return hstack([self.words_.transform(texts), csr_matrix(structure)]).tocsr()

    def fit(self, X, y):
        X, y = list(X), np.asarray(y)
        if len(X) != len(y) or len(set(y)) < 2:
            raise ValueError("OutcomeClassifier.fit needs one outcome per call and at least two outcomes")
        self.model_ = LogisticRegression(
            C=self.C, max_iter=5000, class_weight="balanced", random_state=self.random_state
        ).fit(self._features(X, fit=True), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.model_.predict_proba(self._features(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def reconcile(
    crm: str | None, marker: str | None, predicted: str | None, confidence: float | None
) -> tuple[str | None, str | None]:
    """(outcome, source): the CRM first, then a marker phrase, then a confident model guess."""
    if crm:
        return crm, "crm"
    if marker:
        return marker, "phrases"
    if predicted and confidence is not None and confidence >= MIN_CONFIDENCE:
        return predicted, "model"
    return None, None
