"""The team's call script and what it says about a call: the YAML spec (stages, phrases,
outcomes, trackers, reasons), who is the rep (roles), the stage of every utterance (stages: the
stage model and its training, from the per-utterance classifier in classifier and the sequence
decoder in decode; adapt teaches it a team's own words from unlabelled calls), the call's
outcome (outcomes), its results (score), and the stage-model versions on disk with the active
one (stage_versions).

May import: salescalls.config, salescalls.records, salescalls.text (and speech's types through
records). Never the database or anything above it.
"""

__all__ = [
    "adapt",
    "classifier",
    "decode",
    "outcomes",
    "roles",
    "score",
    "spec",
    "stage_versions",
    "stages",
]
