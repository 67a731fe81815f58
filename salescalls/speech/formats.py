"""Transcript exports for one recording: JSON, SRT, WebVTT, RTTM and plain text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from salescalls import i18n
from salescalls.errors import UsageError
from salescalls.records import Speech
from salescalls.speech.diarize import to_rttm

if TYPE_CHECKING:  # the type only: the speech layer does not import the script layer
    from salescalls.script.roles import RoleAssignment

FORMATS = ("json", "srt", "vtt", "rttm", "txt")


def _clock(seconds: float, separator: str) -> str:
    milliseconds = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _who(speaker: str, roles: RoleAssignment) -> str:
    return roles.roles.get(speaker, speaker)


def to_json(speech: Speech, roles: RoleAssignment, duration: float) -> str:
    return json.dumps(
        {
            "language": speech.language,
            "duration": round(duration, 3),
            "diarization": speech.diarization,
            "roles": {"speakers": roles.roles, "confidence": round(roles.confidence, 4), "method": roles.method},
            "utterances": [
                {
                    "speaker": u.speaker,
                    "role": _who(u.speaker, roles),
                    "start": round(u.start, 3),
                    "end": round(u.end, 3),
                    "text": u.text,
                    "backchannel": u.backchannel,
                }
                for u in speech.utterances
            ],
            "words": [
                {
                    "word": w.text,
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "probability": round(w.probability, 4),
                    "speaker": s,
                    "role": _who(s, roles),
                }
                for w, s in zip(speech.words, speech.speakers, strict=True)
            ],
            "turns": [{"speaker": t.speaker, "start": round(t.start, 3), "end": round(t.end, 3)} for t in speech.turns],
        },
        ensure_ascii=False,
        indent=1,
    )


def to_srt(speech: Speech, roles: RoleAssignment) -> str:
    cues = []
    for number, u in enumerate(speech.utterances, start=1):
        cues.append(f"{number}\n{_clock(u.start, ',')} --> {_clock(u.end, ',')}\n[{_who(u.speaker, roles)}] {u.text}\n")
    return "\n".join(cues)


def to_vtt(speech: Speech, roles: RoleAssignment) -> str:
    cues = [
        f"{_clock(u.start, '.')} --> {_clock(u.end, '.')}\n<v {_who(u.speaker, roles)}>{u.text}\n"
        for u in speech.utterances
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_txt(speech: Speech, roles: RoleAssignment) -> str:
    return "".join(f"[{_clock(u.start, '.')[3:]}] {_who(u.speaker, roles)}: {u.text}\n" for u in speech.utterances)


def render(fmt: str, speech: Speech, roles: RoleAssignment, duration: float, uri: str) -> str:
    if fmt == "json":
        return to_json(speech, roles, duration)
    if fmt == "srt":
        return to_srt(speech, roles)
    if fmt == "vtt":
        return to_vtt(speech, roles)
    if fmt == "rttm":
        return to_rttm(list(speech.turns), uri)
    if fmt == "txt":
        return to_txt(speech, roles)
    raise UsageError(i18n._("unknown format '{fmt}': choose {choices}", fmt=fmt, choices=", ".join(FORMATS)))
