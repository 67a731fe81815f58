"""What the QA specialist and the trainer read, answered in SQL on read-only connections.

For the QA specialist: the script funnel and its weak stages (funnel), script versions compared
(versions), what to change in the script (advice), why customers leave (reasons), the script's
trackers (trackers). For the trainer: each call's errors and a rep's profile against the team
(rep_errors), KPIs and the 1-4 rating (scorecard), training plans (coaching), conversation
metrics and periods (analytics). Shared: statistics (stats) and plain-text tables (tables).

May import: salescalls.config, salescalls.errors, salescalls.records, salescalls.text,
salescalls.script, salescalls.db. Never the speech layer or the report.
"""

__all__ = [
    "advice",
    "analytics",
    "coaching",
    "funnel",
    "reasons",
    "rep_errors",
    "scorecard",
    "stats",
    "tables",
    "trackers",
    "versions",
]
