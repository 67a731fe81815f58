"""Accuracy measures for the speech bench: WER with alignment, speaker-attributed word error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WordErrors:
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    pairs: tuple[tuple[int, int], ...]  # (reference index, hypothesis index) of aligned equal words

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / max(self.reference_words, 1)


def align_words(reference: list[str], hypothesis: list[str]) -> WordErrors:
    """Levenshtein alignment of two token lists (unit costs), with the matched pairs."""
    n, m = len(reference), len(hypothesis)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        same = np.array([reference[i - 1] == h for h in hypothesis], dtype=np.int32)
        row, previous = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + 1 - same[j - 1])
    i, j = n, m
    substitutions = deletions = insertions = 0
    pairs = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            if reference[i - 1] == hypothesis[j - 1]:
                pairs.append((i - 1, j - 1))
            else:
                substitutions += 1
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            deletions += 1
            i -= 1
        else:
            insertions += 1
            j -= 1
    return WordErrors(substitutions, deletions, insertions, n, tuple(reversed(pairs)))


def normaliser(language: str):
    """Whisper's normalisers: EnglishTextNormalizer for English (spellings, numbers, contractions),
    BasicTextNormalizer (case, punctuation, diacritics kept) for other languages."""
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer() if language.startswith("en") else BasicTextNormalizer()


def tokens_with_speakers(words: list[tuple[str, str]], normalise) -> tuple[list[str], list[str]]:
    """(word, speaker) pairs -> normalised tokens and the speaker of each token."""
    tokens, speakers = [], []
    for word, speaker in words:
        for token in normalise(word).split():
            tokens.append(token)
            speakers.append(speaker)
    return tokens, speakers


def speaker_attributed_error(
    reference: list[tuple[str, str]], hypothesis: list[tuple[str, str]], mapping: dict[str, str], normalise
) -> tuple[int, int]:
    """Of the words recognised correctly, how many went to the wrong speaker.

    Hypothesis speakers are first mapped to reference speakers (the optimal diarization mapping);
    returns (wrong-speaker words, correctly recognised words).
    """
    ref_tokens, ref_speakers = tokens_with_speakers(reference, normalise)
    hyp_tokens, hyp_speakers = tokens_with_speakers(hypothesis, normalise)
    pairs = align_words(ref_tokens, hyp_tokens).pairs
    wrong = sum(ref_speakers[i] != mapping.get(hyp_speakers[j]) for i, j in pairs)
    return wrong, len(pairs)
