"""People's labels -> better stage models: the review queue and label import (review), labelled
transcripts from outside (corpus), training with promotion only when a model measures at least
as well (training), and comparison with ground truth (evaluate).

May import: salescalls.config, salescalls.records, salescalls.text, salescalls.script,
salescalls.db, salescalls.pipeline (to relabel stored calls).
"""

__all__ = [
    "corpus",
    "evaluate",
    "review",
    "training",
]
