"""One call end to end: audio -> words -> speakers -> roles -> stages -> call score.

`analyse_call` is what a worker runs per recording; it returns a CallRecord, a plain value that
serialises to JSON, so workers never touch the database (one writer stores records).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import audio, diarize, roles, stages, transcribe
from .align import assign_speakers, build_utterances
from .config import Settings
from .score import CallScore, PhraseHit, ScoredUtterance, score_call
from .script import Script


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CallRecord:
        data = json.loads(text)
        data["utterances"] = tuple(ScoredUtterance(**u) for u in data["utterances"])
        score = data["score"]
        score["forbidden"] = tuple(PhraseHit(**h) for h in score["forbidden"])
        for key in ("stages_reached", "stages_skipped", "out_of_order"):
            score[key] = tuple(score[key])
        data["score"] = CallScore(**score)
        return cls(**data)


@contextmanager
def _timed(timings: dict[str, float], step: str):
    started = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - started, 3)


def analyse_call(
    path: str | Path,
    settings: Settings,
    script: Script,
    call_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> CallRecord:
    """Run the whole speech and stage pipeline on one recording."""
    path = Path(path)
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        info = audio.probe(path)
        samples = audio.load(path, info)
        call_id = call_id or audio.content_hash(path)
    with _timed(timings, "load_models"):
        whisper_model = transcribe.load_model(
            settings.models_dir, settings.whisper_model, settings.device, settings.threads
        )
        stage_model = stages.train_from_script(script)
    stereo = samples.shape[0] == 2
    with _timed(timings, "diarize"):
        if stereo:
            turns = diarize.channel_turns(samples)
        else:
            pipeline = diarize.load_pipeline(settings.models_dir, settings.device)
            turns = diarize.pyannote_turns(samples, pipeline, settings.num_speakers)
    with _timed(timings, "transcribe"):
        duration = samples.shape[1] / audio.SAMPLE_RATE
        clips = transcribe.speech_clips([(t.start, t.end) for t in turns], duration)
        transcript = transcribe.transcribe(
            audio.mixdown(samples), whisper_model, settings.language, script.prompt(settings.language), clips
        )
    with _timed(timings, "align"):
        speakers = assign_speakers(transcript.words, turns)
        utterances = build_utterances(transcript.words, speakers)
    with _timed(timings, "roles"):
        if stereo:
            assignment = roles.roles_from_channels(settings.rep_channel)
        else:
            assignment = roles.roles_from_text(utterances, roles.role_classifier(script))
        speaker_roles = [assignment.roles.get(u.speaker, "customer") for u in utterances]
    with _timed(timings, "stages"):
        labels = stage_model.label(
            [u.text for u in utterances], speaker_roles, informative=[not u.backchannel for u in utterances]
        )
        scored = tuple(
            ScoredUtterance(
                u.speaker,
                role,
                round(u.start, 3),
                round(u.end, 3),
                u.text,
                label.stage,
                round(label.confidence, 4),
                u.backchannel,
            )
            for u, role, label in zip(utterances, speaker_roles, labels, strict=True)
        )
        call_score = score_call(list(scored), script)
    return CallRecord(
        call_id=call_id,
        file=path.name,
        duration=round(info.duration or samples.shape[1] / audio.SAMPLE_RATE, 3),
        channels=info.channels,
        sample_rate=info.sample_rate,
        codec=info.codec,
        language=transcript.language,
        script_id=script.id,
        script_version=script.version,
        stage_model=stage_model.name,
        whisper_model=settings.whisper_model,
        diarization="channels" if stereo else "pyannote",
        role_method=assignment.method,
        role_confidence=round(assignment.confidence, 4),
        utterances=scored,
        score=call_score,
        timings=timings,
        metadata=dict(metadata or {}),
    )
