"""One call end to end: audio -> words -> speakers -> roles -> stages -> call score.

`analyse_call` is what a worker runs per recording; it returns a CallRecord, a plain value that
serialises to JSON, so workers never touch the database (one writer stores records).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from salescalls.config import Settings
from salescalls.records import CallRecord, CallScore, ScoredUtterance, Speech
from salescalls.script import outcomes, roles, stage_versions, stages
from salescalls.script.score import score_call
from salescalls.script.spec import Script
from salescalls.speech import audio, diarize, privacy, transcribe
from salescalls.speech.align import assign_channels, assign_speakers, build_utterances
from salescalls.text import encoder


@contextmanager
def _timed(timings: dict[str, float], step: str):
    started = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - started, 3)


def recognise(
    samples: np.ndarray,
    settings: Settings,
    prompt: str | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = False,
) -> Speech:
    """The speech layer: who spoke when, what was said, and which words each speaker said.

    Speakers come first (stereo: channel energy; mono: pyannote), so whisper decodes only the
    stretches where someone speaks; then every word is assigned to a speaker (stereo: the louder
    channel while it is said; mono: the speaker whose turns overlap it most). A stereo file
    whose channels are the same signal is treated as mono.
    """
    timings = {} if timings is None else timings
    transcribe.use_threads(settings.threads)
    if audio.is_dual_mono(samples):
        samples = audio.mixdown(samples)[None, :]
    with _timed(timings, "load_models"):
        whisper_model = transcribe.configured_model(settings)
        pipeline = None if samples.shape[0] == 2 else diarize.load_pipeline(settings.models_dir, settings.device)
    with _timed(timings, "diarize"):
        if pipeline is None:
            turns = diarize.channel_turns(samples)
        else:
            turns = diarize.pyannote_turns(
                samples,
                pipeline,
                settings.num_speakers,
                settings.min_speakers,
                settings.max_speakers,
                progress=progress,
            )
    with _timed(timings, "transcribe"):
        regions = [(t.start, t.end) for t in turns]
        transcript = transcribe.transcribe(
            audio.mixdown(samples), whisper_model, settings.language, prompt, regions, progress=progress
        )
    with _timed(timings, "align"):
        if pipeline is None:
            speakers = assign_channels(transcript.words, samples)
        else:
            speakers = assign_speakers(transcript.words, turns)
        utterances = build_utterances(transcript.words, speakers)
    return Speech(
        language=transcript.language,
        turns=tuple(turns),
        words=transcript.words,
        speakers=tuple(speakers),
        utterances=tuple(utterances),
        diarization="pyannote" if pipeline is not None else "channels",
    )


def assign_roles(speech: Speech, settings: Settings, script: Script) -> roles.RoleAssignment:
    """Stereo: the configured rep channel, checked against the words (or chosen by them with
    `auto`); mono: what each speaker says. Never fails a call: with no evidence the confidence
    says so."""
    classifier = roles.role_classifier(script)
    if speech.diarization == "channels":
        return roles.roles_for_channels(list(speech.utterances), settings.rep_channel, classifier)
    return roles.roles_from_text(list(speech.utterances), classifier)


def label_stages(
    utterances: tuple[ScoredUtterance, ...] | list[ScoredUtterance],
    script: Script,
    model: stages.StageModel,
    language: str | None = None,
) -> tuple[tuple[ScoredUtterance, ...], CallScore]:
    """Stages of a call's utterances and the call's score: what analysis and rescoring share."""
    return label_stages_many([(utterances, language)], script, model)[0]


def label_stages_many(
    calls: list[tuple[list[ScoredUtterance] | tuple[ScoredUtterance, ...], str | None]],
    script: Script,
    model: stages.StageModel,
) -> list[tuple[tuple[ScoredUtterance, ...], CallScore]]:
    """label_stages for many calls, (utterances, language) each: one classifier pass over all
    their utterances and one outcome-model pass over all their endings (rescoring at scale)."""
    labels = model.label_calls(
        [
            (
                [u.text for u in utterances],
                [u.role for u in utterances],
                [not u.backchannel for u in utterances],
                language,
            )
            for utterances, language in calls
        ]
    )
    results = []
    for (utterances, _), call_labels in zip(calls, labels, strict=True):
        scored = tuple(
            replace(u, stage=label.stage, confidence=round(label.confidence, 4))
            for u, label in zip(utterances, call_labels, strict=True)
        )
        results.append((scored, score_call(list(scored), script)))
    if model.outcome_model is not None:
        ended = [i for i, (scored, _) in enumerate(results) if scored]
        endings = [
            outcomes.call_end(results[i][0], results[i][1].end_stage, results[i][1].ended_by, calls[i][1])
            for i in ended
        ]
        if endings:
            proba = model.outcome_model.predict_proba(endings)
            for i, row in zip(ended, proba, strict=True):
                best = int(np.argmax(row))
                results[i] = (
                    results[i][0],
                    replace(
                        results[i][1],
                        predicted_outcome=str(model.outcome_model.classes_[best]),
                        outcome_confidence=round(float(row[best]), 4),
                    ),
                )
    return results


def sentence_vectors(model: stages.StageModel, texts: list[str], timings: dict[str, float]) -> np.ndarray | None:
    """Encode a call's utterances once, up front (the stage model then only looks them up)."""
    name = getattr(model.classifier, "encoder", None)
    if not name or not texts:
        return None
    with _timed(timings, "encode"):
        return encoder.shared_cache(name).encode(texts)


def _encoder_identity(model: stages.StageModel) -> str:
    return encoder.shared_cache(model.classifier.encoder).encoder.name


def _seed(call_id: str) -> None:
    """Seed torch from the call's identity: whisper samples when it falls back to a temperature
    above 0, and the same call must give the same record whichever worker runs it, and when."""
    import hashlib

    import torch

    torch.manual_seed(int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:7], "big"))


def models_loaded() -> int:
    """How many times this process has loaded a speech model (whisper, pyannote): each is loaded
    once per process and cached, so this stays at two however many calls the process runs."""
    return transcribe.load_model.cache_info().misses + diarize.load_pipeline.cache_info().misses


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
    _seed(call_id)
    prompt = script.prompt(settings.language) if settings.vocabulary_prompt else None
    speech = recognise(samples, settings, prompt, timings)
    utterances = list(speech.utterances)
    stage_model = stage_versions.load_model(settings.models_dir, script)
    vectors = sentence_vectors(stage_model, [u.text for u in utterances], timings)  # roles use them too
    with _timed(timings, "roles"):
        assignment = assign_roles(speech, settings, script)
        speaker_roles = [assignment.roles.get(u.speaker, "customer") for u in utterances]
    with _timed(timings, "stages"):
        scored = tuple(
            ScoredUtterance(u.speaker, role, round(u.start, 3), round(u.end, 3), u.text, "", 0.0, u.backchannel)
            for u, role in zip(utterances, speaker_roles, strict=True)
        )
        scored, call_score = label_stages(scored, script, stage_model, speech.language)
    removals = ()
    if settings.redact:  # before the record exists: the original text is never staged or stored
        with _timed(timings, "redact"):
            scored, removals = privacy.redact_utterances(scored, speech.language)
    # The writer keeps each utterance's vector for rescoring; never one of text that was redacted.
    packed = tuple(
        encoder.pack(vectors[i]) if vectors is not None and u.text == utterances[i].text else ""
        for i, u in enumerate(scored)
    )
    return CallRecord(
        call_id=call_id,
        file=path.name,
        duration=round(info.duration or samples.shape[1] / audio.SAMPLE_RATE, 3),
        channels=info.channels,
        sample_rate=info.sample_rate,
        codec=info.codec,
        language=speech.language,
        script_id=script.id,
        script_version=script.version,
        stage_model=stage_model.name,
        whisper_model=transcribe.engine_label(settings),
        diarization=speech.diarization,
        role_method=assignment.method,
        role_confidence=round(assignment.confidence, 4),
        role_note=assignment.note,
        embedding_model=_encoder_identity(stage_model) if vectors is not None else "",
        embeddings=packed if vectors is not None else (),
        utterances=scored,
        score=call_score,
        timings=timings,
        metadata=dict(metadata or {}),
        source=str(path.resolve()),
        redacted=settings.redact,
        redactions=removals,
    )
