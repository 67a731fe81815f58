"""The values passed between layers: what the recogniser heard (Word), who spoke when (Turn),
same-speaker runs of words (Utterance) and all of it for one call (Speech); each utterance with
its role and stage (ScoredUtterance), the call's results (CallScore, PhraseHit), what privacy
removed (Removal), and the whole analysed call (CallRecord) with its JSON codec.

Plain frozen dataclasses and nothing else: every layer imports them from here, and this module
imports nothing of the package, so the database, the inbox and the report never load a model to
read a record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = [
    "DEFAULT_SUCCESS",
    "MIN_CONFIDENCE",
    "CallRecord",
    "CallScore",
    "PhraseHit",
    "Removal",
    "ScoredUtterance",
    "Speech",
    "Turn",
    "Utterance",
    "Word",
]


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the recording
    end: float  # seconds
    text: str  # the word as written, punctuation attached, no surrounding spaces
    probability: float  # whisper's confidence in the word, 0..1


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float  # seconds
    speaker: str  # ch0/ch1 for stereo channels, SPEAKER_nn from pyannote


@dataclass(frozen=True)
class Utterance:
    speaker: str  # diarization label (ch0/ch1 or SPEAKER_nn)
    start: float  # seconds
    end: float  # seconds
    text: str  # words joined with spaces
    n_words: int  # number of words
    backchannel: bool = False  # "uh-huh" inside the other party's talk; carries no stage of its own


@dataclass(frozen=True)
class Speech:
    language: str  # transcription language
    turns: tuple[Turn, ...]  # who spoke when
    words: tuple[Word, ...]  # in time order
    speakers: tuple[str, ...]  # the speaker of each word
    utterances: tuple[Utterance, ...]  # same-speaker runs of words
    diarization: str  # "channels" for stereo, "pyannote" for mono


@dataclass(frozen=True)
class ScoredUtterance:
    speaker: str  # diarization label
    role: str  # rep or customer
    start: float  # seconds
    end: float  # seconds
    text: str  # what was said
    stage: str  # script stage
    confidence: float  # stage posterior, 0..1
    backchannel: bool = False  # listener's "uh-huh"; ignored by call-level results


@dataclass(frozen=True)
class PhraseHit:
    rule: str  # forbidden rule name or outcome name
    phrase: str  # the phrase that matched
    utterance: int  # index into the call's utterances
    start: float  # seconds
    role: str  # who said it


# A predicted outcome (CallScore.predicted_outcome) counts as the call's outcome only from this
# confidence on: below it the call's outcome is unknown unless the CRM or the call's words say.
MIN_CONFIDENCE = 0.6

# Outcomes that make a call a success wherever it ended, for a script that names none itself
# (its `success:`); the CRM's outcome names for sales teams.
DEFAULT_SUCCESS = ("sale", "meeting")


@dataclass(frozen=True)
class CallScore:
    stages_reached: tuple[str, ...]  # in the order they were first reached
    stages_skipped: tuple[str, ...]  # required stages the call went past without
    out_of_order: tuple[str, ...]  # required stages reached after a later required stage
    end_stage: str | None  # last stage before the sign-off
    ended_by: str | None  # rep or customer
    detected_outcome: str | None  # last outcome marker said in the call
    forbidden: tuple[PhraseHit, ...]  # forbidden phrases said by the rep
    controlled: tuple[PhraseHit, ...] = ()  # controlled phrases (allowed only with approval) the rep said
    predicted_outcome: str | None = None  # the outcome model's guess, when a trained model has one
    outcome_confidence: float | None = None  # its probability


@dataclass(frozen=True)
class Removal:
    idx: int  # the utterance's position in the call
    kind: str  # email, card, iban, phone or person
    start: int  # the placeholder's place in the stored (redacted) text
    end: int
    start_s: float  # the removed words' estimated time in the recording, padded, seconds
    end_s: float


@dataclass(frozen=True)
class CallRecord:
    call_id: str  # sha256 of the recording's bytes: the call's identity
    file: str  # file name as it arrived
    duration: float  # seconds
    channels: int  # in the file
    sample_rate: int  # of the file
    codec: str  # audio codec of the file
    language: str  # transcription language
    script_id: str  # script the call was scored against
    script_version: int
    stage_model: str  # identity of the stage model that labelled it
    whisper_model: str  # speech model name
    diarization: str  # "channels" for stereo, "pyannote" for mono
    role_method: str  # channel or text
    role_confidence: float  # 0.5..1
    utterances: tuple[ScoredUtterance, ...]  # in time order
    score: CallScore  # call-level results
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    metadata: dict[str, str] = field(default_factory=dict)  # CRM fields from calls.csv
    source: str = ""  # the recording's absolute path when it was processed (reports play it from there)
    redacted: bool = False  # personal data was removed from the texts before anything was written
    redactions: tuple[Removal, ...] = ()  # what was removed where (no original text)
    role_note: str = ""  # a warning about the roles (words contradict the channel convention, ...)
    embedding_model: str = ""  # sentence encoder of `embeddings`; "" when none was used
    embeddings: tuple[str, ...] = ()  # per utterance, its packed vector (encoder.pack), for the writer to keep

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CallRecord:
        data = json.loads(text)
        data["utterances"] = tuple(ScoredUtterance(**u) for u in data["utterances"])
        score = data["score"]
        score["forbidden"] = tuple(PhraseHit(**h) for h in score["forbidden"])
        score["controlled"] = tuple(PhraseHit(**h) for h in score.get("controlled", ()))
        for key in ("stages_reached", "stages_skipped", "out_of_order"):
            score[key] = tuple(score[key])
        data["score"] = CallScore(**score)
        data["redactions"] = tuple(Removal(**r) for r in data.get("redactions", ()))
        data["embeddings"] = tuple(data.get("embeddings", ()))
        return cls(**data)
