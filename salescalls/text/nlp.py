"""Text normalisation for the stage model: spaCy tokens, lower case, lemmas, number shapes.

spaCy's blank pipelines tokenise every language it knows (en, ru, hu, ...); lemmas come from
spaCy's lookup tables (the `spacy-lookups-data` package), which need no trained pipeline and
are fast enough for thousands of utterances a second. Tokens holding digits become shape
tokens (a count, a time, a code such as a booking reference), because the fact that a number
was said matters to the stage, the number itself does not.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_HUNGARIAN = re.compile(r"[őűŐŰ]|\b(?:és|hogy|nem|igen|köszönöm|vagyok|van|szeretnék)\b", re.IGNORECASE)
_TIME = re.compile(r"^\d{1,2}[:.]\d{2}$")
_NUMBER = re.compile(r"^[\d.,]+$")
_LETTERS = re.compile(r"\w", re.UNICODE)
_NON_WORD = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lower-case, NFC, punctuation removed: what the recogniser and the script agree on."""
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def guess_language(text: str, default: str = "en") -> str:
    """A cheap guess for text with no known language: Cyrillic is ru, Hungarian letters hu."""
    if _CYRILLIC.search(text):
        return "ru"
    if _HUNGARIAN.search(text):
        return "hu"
    return default


@functools.lru_cache(maxsize=16)
def _tools(language: str):
    """(tokenizer, lemma table or None) for a language; blank English for unknown languages."""
    import spacy

    try:
        nlp = spacy.blank(language)
    except (ImportError, KeyError, ValueError):
        nlp = spacy.blank("en")
    table = None
    try:
        from spacy.lookups import load_lookups

        lookups = load_lookups(nlp.lang, ["lemma_lookup"], strict=False)
        if lookups.has_table("lemma_lookup"):
            table = lookups.get_table("lemma_lookup")
    except (ImportError, ValueError, OSError):  # spacy-lookups-data not installed: no lemmas
        table = None
    return nlp.tokenizer, table, {}


def _shape(token: str) -> str | None:
    if not any(ch.isdigit() for ch in token):
        return None
    if _TIME.match(token):
        return "_time_"
    if _NUMBER.match(token):
        return "_num_"
    return "_code_"  # letters and digits: a reference, a postcode, a plan name


def normalise(text: str, language: str | None = None) -> str:
    """Space-separated normalised tokens: lemmas in lower case, number shapes, no punctuation."""
    text = unicodedata.normalize("NFC", text).replace("’", "'")
    tokenizer, table, memo = _tools(language or guess_language(text))
    out = []
    for token in tokenizer(text):
        word = token.text.lower()
        lemma = memo.get(word)
        if lemma is None:
            shape = _shape(word)
            if shape is not None:
                lemma = shape
            elif not _LETTERS.search(word):
                lemma = ""
            else:
                lemma = table.get(word, word) if table is not None else word
                lemma = lemma.lower() if isinstance(lemma, str) else word
            memo[word] = lemma
        if lemma:
            out.append(lemma)
    return " ".join(out)
