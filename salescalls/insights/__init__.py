"""What the QA specialist and the trainer read, answered in SQL on read-only connections: the
funnel and weak stages (analytics), ratings and training plans (coaching), what to change in the
script (advice), why customers leave (reasons) and the script's trackers (trackers).

May import: salescalls.config, salescalls.records, salescalls.text, salescalls.script,
salescalls.db. Never the speech layer or the report.
"""

__all__ = [
    "advice",
    "analytics",
    "coaching",
    "reasons",
    "trackers",
]
