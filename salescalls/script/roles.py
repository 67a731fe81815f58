"""Rep or customer: from the channel convention for stereo calls, from what is said for mono calls.

What each speaker says is scored by a classifier of P(rep | utterance) that learns from every
source of role evidence there is, so it works for any valid script:
- generic phrases of the two sides of a business call (`data/roles.yaml`, en/ru/hu): the rep
  greets on behalf of a company, asks, offers, books and thanks; the customer answers, asks for
  what they need and about price, agrees or declines. They need nothing from the team;
- the script's role-tagged examples, when it has them (weighted up: they are the team's words);
- the sentence encoder (when installed), which carries all of it to other languages and wordings.

Stereo calls follow the configured channel convention (`rep_channel` 0 or 1), and the same
classifier checks it: when the words say the other channel is the rep, the call is flagged with
the evidence; with `rep_channel: auto` the channel is chosen per call by that evidence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression

from salescalls.records import Utterance
from salescalls.script.classifier import text_features
from salescalls.script.spec import ROLES, Script

MAX_WEIGHT_WORDS = 15  # an utterance's evidence grows with its length up to this many words
SCRIPT_EXAMPLE_WEIGHT = 3.0  # the team's own role-tagged examples count more than the generic phrases
CONTRADICTION = 0.9  # stereo: flag the call when the words say the other channel is the rep this surely
GENERIC_PHRASES = Path(__file__).parent.parent / "data" / "roles.yaml"


@dataclass(frozen=True)
class RoleAssignment:
    roles: dict[str, str]  # speaker label -> "rep" or "customer"
    confidence: float  # probability the assignment is right, 0.5..1
    method: str  # "channel" (stereo convention), "text" (what each speaker said), "channel+text" (auto)
    evidence: dict[str, float] | None = None  # speaker -> rep log-odds from the words (None: not scored)
    note: str = ""  # a warning for people: the words contradict the channel convention, ...


def roles_from_channels(rep_channel: int) -> RoleAssignment:
    """Stereo recorders put each party on its own channel; which one is the rep is configured."""
    if rep_channel not in (0, 1):
        raise ValueError(f"rep_channel must be 0 or 1, not {rep_channel}")
    return RoleAssignment({f"ch{c}": "rep" if c == rep_channel else "customer" for c in (0, 1)}, 1.0, "channel")


@functools.lru_cache(maxsize=1)
def generic_phrases() -> dict[str, dict[str, tuple[str, ...]]]:
    """role -> language -> phrases, from the package's data/roles.yaml."""
    data = yaml.safe_load(GENERIC_PHRASES.read_text(encoding="utf-8"))
    return {role: {lang: tuple(p) for lang, p in data[role].items()} for role in ROLES}


class RoleClassifier:
    """P(rep | text): TF-IDF of words and characters, plus sentence meaning when an encoder is set."""

    def __init__(self, encoder: str | None = None, C: float = 4.0, embedding_weight: float = 2.0):
        self.encoder = encoder
        self.C = C
        self.embedding_weight = embedding_weight

    def _features(self, texts: list[str], fit: bool = False):
        if fit:
            self.features_ = text_features()
            words = self.features_.fit_transform(texts)
        else:
            words = self.features_.transform(texts)
        if not self.encoder:
            return words
        from salescalls.text import encoder as sentence_encoder

        vectors = sentence_encoder.shared_cache(self.encoder).encode(texts)
        return hstack([words, csr_matrix(self.embedding_weight * vectors)]).tocsr()

    def fit(self, texts: list[str], roles: list[str], weights: list[float] | None = None) -> RoleClassifier:
        is_rep = np.asarray(roles) == "rep"
        if len(texts) != len(roles) or is_rep.all() or not is_rep.any():
            raise ValueError("RoleClassifier.fit needs phrases of both roles")
        self.model_ = LogisticRegression(C=self.C, max_iter=5000, class_weight="balanced")
        self.model_.fit(self._features(list(texts), fit=True), is_rep, sample_weight=weights)
        return self

    def rep_log_odds(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        proba = self.model_.predict_proba(self._features(list(texts)))[:, 1]
        proba = np.clip(proba, 1e-4, 1 - 1e-4)
        return np.log(proba / (1 - proba))


def role_training_data(script: Script) -> tuple[list[str], list[str], list[float]]:
    """(texts, roles, weights): the generic phrases, then the script's role-tagged examples."""
    texts, roles, weights = [], [], []
    for role, by_language in generic_phrases().items():
        for phrases in by_language.values():
            texts.extend(phrases)
            roles.extend([role] * len(phrases))
            weights.extend([1.0] * len(phrases))
    for stage in script.stages:
        for role, by_language in stage.examples.items():
            if role not in ROLES:
                continue  # examples of either side say nothing about who is the rep
            for phrases in by_language.values():
                texts.extend(phrases)
                roles.extend([role] * len(phrases))
                weights.extend([SCRIPT_EXAMPLE_WEIGHT] * len(phrases))
    return texts, roles, weights


_role_models: dict[tuple[str, str | None], RoleClassifier] = {}


def role_classifier(script: Script, encoder: str | None = "configured") -> RoleClassifier:
    """Trained once per process, script text and encoder; any valid script gives one."""
    from salescalls.text import encoder as sentence_encoder

    if encoder == "configured":
        encoder = sentence_encoder.configured() if sentence_encoder.available() else None
    key = (script.sha256, encoder)
    if key not in _role_models:
        texts, roles, weights = role_training_data(script)
        _role_models[key] = RoleClassifier(encoder=encoder).fit(texts, roles, weights)
    return _role_models[key]


def speaker_evidence(utterances: list[Utterance], classifier: RoleClassifier) -> dict[str, float]:
    """Each speaker's rep log-odds: every utterance adds its own, weighted by its length."""
    spoken = [u for u in utterances if not u.backchannel and u.text.strip()] or [
        u for u in utterances if u.text.strip()
    ]
    evidence = {u.speaker: 0.0 for u in utterances}
    if not spoken:
        return evidence
    log_odds = classifier.rep_log_odds([u.text for u in spoken])
    for u, lo in zip(spoken, log_odds, strict=True):
        evidence[u.speaker] += min(max(u.n_words, 1), MAX_WEIGHT_WORDS) / MAX_WEIGHT_WORDS * float(lo)
    return evidence


def _logistic(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def roles_from_text(utterances: list[Utterance], classifier: RoleClassifier) -> RoleAssignment:
    """The speaker whose words sound most like the rep's side of a call is the rep.

    The speaker with the highest total evidence is the rep, everyone else a customer. Confidence
    is the logistic of the gap between the top two speakers (0.5: the words do not tell).
    """
    evidence = speaker_evidence(utterances, classifier)
    if not evidence:
        return RoleAssignment({}, 0.5, "text", {})
    ranked = sorted(evidence, key=lambda s: (-evidence[s], s))
    if len(ranked) == 1:
        role = "rep" if evidence[ranked[0]] > 0 else "customer"
        return RoleAssignment({ranked[0]: role}, _logistic(abs(evidence[ranked[0]])), "text", evidence)
    roles = {s: "customer" for s in ranked}
    roles[ranked[0]] = "rep"
    confidence = _logistic(evidence[ranked[0]] - evidence[ranked[1]])
    note = "" if confidence >= 0.6 else "the words barely tell the rep from the customer"
    return RoleAssignment(roles, confidence, "text", evidence, note)


def roles_for_channels(
    utterances: list[Utterance], rep_channel: int | str, classifier: RoleClassifier | None
) -> RoleAssignment:
    """Stereo: the channel convention, checked against what each channel says.

    `rep_channel` 0 or 1 keeps the convention and flags a call whose words contradict it (the
    other channel sounds like the rep with at least 90 % confidence); "auto" takes the channel
    the words point to, and the convention's channel 0 when they do not tell.
    """
    if classifier is None:
        return roles_from_channels(0 if rep_channel == "auto" else int(rep_channel))
    evidence = speaker_evidence(utterances, classifier)
    gap = evidence.get("ch0", 0.0) - evidence.get("ch1", 0.0)  # > 0: channel 0 sounds like the rep
    words_say = 0 if gap >= 0 else 1
    sure = _logistic(abs(gap))
    if rep_channel == "auto":
        chosen = words_say if "ch0" in evidence and "ch1" in evidence else 0
        base = roles_from_channels(chosen)
        return RoleAssignment(base.roles, max(sure, 0.5), "channel+text", evidence, "")
    base = roles_from_channels(int(rep_channel))
    note = ""
    if words_say != int(rep_channel) and sure >= CONTRADICTION and {"ch0", "ch1"} <= set(evidence):
        note = (
            f"the words say the rep is on channel {words_say}, not {rep_channel} as configured "
            f"({sure:.0%} sure; rep log-odds ch0 {evidence['ch0']:+.1f}, ch1 {evidence['ch1']:+.1f}); "
            "check the recorder or set SALESCALLS_REP_CHANNEL=auto"
        )
    return RoleAssignment(base.roles, base.confidence, "channel", evidence, note)
