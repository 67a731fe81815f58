"""Rep or customer: from the channel convention for stereo calls, from what is said for mono calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from .align import Utterance
from .script import ROLES, Script
from .stages import text_features

MAX_WEIGHT_WORDS = 15  # an utterance's evidence grows with its length up to this many words


@dataclass(frozen=True)
class RoleAssignment:
    roles: dict[str, str]  # speaker label -> "rep" or "customer"
    confidence: float  # probability the assignment is right, 0.5..1
    method: str  # "channel" (stereo convention) or "text" (what each speaker said)


def roles_from_channels(rep_channel: int) -> RoleAssignment:
    """Stereo recorders put each party on its own channel; which one is the rep is configured."""
    if rep_channel not in (0, 1):
        raise ValueError(f"rep_channel must be 0 or 1, not {rep_channel}")
    return RoleAssignment({f"ch{c}": "rep" if c == rep_channel else "customer" for c in (0, 1)}, 1.0, "channel")


class RoleClassifier:
    """P(rep | text), learned from the script's rep and customer example phrases."""

    def fit(self, texts: list[str], roles: list[str]) -> RoleClassifier:
        self.features_ = text_features()
        self.model_ = LogisticRegression(C=4.0, max_iter=5000, class_weight="balanced")
        self.model_.fit(self.features_.fit_transform(texts), np.asarray(roles) == "rep")
        return self

    def rep_log_odds(self, texts: list[str]) -> np.ndarray:
        proba = self.model_.predict_proba(self.features_.transform(texts))[:, 1]
        proba = np.clip(proba, 1e-4, 1 - 1e-4)
        return np.log(proba / (1 - proba))


_role_models: dict[str, RoleClassifier] = {}


def role_classifier(script: Script) -> RoleClassifier:
    """Trained once per process and script text."""
    if script.sha256 not in _role_models:
        texts, roles = [], []
        for stage in script.stages:
            for role, by_language in stage.examples.items():
                if role not in ROLES:
                    continue  # examples of either side say nothing about who is the rep
                for phrases in by_language.values():
                    texts.extend(phrases)
                    roles.extend([role] * len(phrases))
        _role_models[script.sha256] = RoleClassifier().fit(texts, roles)
    return _role_models[script.sha256]


def roles_from_text(utterances: list[Utterance], classifier: RoleClassifier) -> RoleAssignment:
    """The speaker whose words sound most like the rep's side of the script is the rep.

    Each utterance adds its rep-vs-customer log-odds, weighted by its length; the speaker with
    the highest total is the rep, everyone else a customer. Confidence is the logistic of the
    gap between the top two speakers.
    """
    spoken = [u for u in utterances if not u.backchannel] or list(utterances)
    speakers = sorted({u.speaker for u in spoken})
    if not speakers:
        return RoleAssignment({}, 0.5, "text")
    log_odds = classifier.rep_log_odds([u.text for u in spoken])
    weights = np.array([min(u.n_words, MAX_WEIGHT_WORDS) / MAX_WEIGHT_WORDS for u in spoken])
    evidence = {
        s: float(sum(w * lo for w, lo, u in zip(weights, log_odds, spoken, strict=True) if u.speaker == s))
        for s in speakers
    }
    ranked = sorted(speakers, key=lambda s: evidence[s], reverse=True)
    if len(ranked) == 1:
        role = "rep" if evidence[ranked[0]] > 0 else "customer"
        return RoleAssignment({ranked[0]: role}, float(1 / (1 + np.exp(-abs(evidence[ranked[0]])))), "text")
    roles = {s: "customer" for s in speakers}
    roles[ranked[0]] = "rep"
    gap = evidence[ranked[0]] - evidence[ranked[1]]
    return RoleAssignment(roles, float(1 / (1 + np.exp(-gap))), "text")
