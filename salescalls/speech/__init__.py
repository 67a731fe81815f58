"""Recording -> words and who spoke when: decoding and checking audio, whisper transcription,
diarization (stereo channels or pyannote.audio with the CAM++ embedding), words aligned into
utterances, transcript exports, personal-data redaction, and where the speech models come from.

May import: salescalls.config, salescalls.records, salescalls.text. Never the script, the
database or anything above them.
"""

__all__ = [
    "align",
    "audio",
    "diarize",
    "embedding",
    "formats",
    "models",
    "privacy",
    "transcribe",
]
