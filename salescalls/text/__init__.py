"""Language tools every layer may use: normalisation and lemmas (spaCy), the multilingual sentence
encoder, and whether an utterance is a question.

May import: salescalls.config only.
"""

__all__ = [
    "encoder",
    "nlp",
    "questions",
]
