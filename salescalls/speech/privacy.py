"""Redaction of personal data in transcripts, before anything is written.

    redact("Call me on +44 20 7946 0958, I'm Peter Novak") ->
        Redacted(text="Call me on [PHONE], I'm [PERSON]", spans=(...phone..., ...person...))

What is found:
- e-mail addresses;
- payment card numbers: 13-19 digits (spaces or dashes allowed) that pass the Luhn check;
- IBANs: country code, check digits and account, valid by the ISO 13616 mod-97 check;
- phone numbers: 7-15 digits, optionally with +, spaces, dots, dashes or brackets;
- person names: by rule, the name after the phrases people introduce themselves or others with
  ("my name is", "this is", "speaking with", Mr/Mrs/Dr; "меня зовут", "это"; "a nevem",
  "... vagyok") in en, ru, hu; and where a trained spaCy pipeline for the call's language is
  installed (any `<lang>_*` package with NER, or the one SALESCALLS_NER_MODEL names; `off`: none),
  every PERSON it finds as well.

Each span keeps where it sat in the original utterance as a share of its length (`at`, `until`),
so the audio of the words can be bleeped without the original text ever being stored.
- phone numbers said as words, as the recogniser sometimes writes them ("восемь девятьсот
  шестнадцать ...", "hat-nulla-egy ...", "five five five ..."), alone or mixed with numerals: a
  run of number words worth 7-15 digits (en, ru, hu).

Limits: names said without an introduction are only found by a trained NER pipeline.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from salescalls.records import Removal

PLACEHOLDERS = {"email": "[EMAIL]", "card": "[CARD]", "iban": "[IBAN]", "phone": "[PHONE]", "person": "[PERSON]"}


@dataclass(frozen=True)
class Span:
    kind: str  # email, card, iban, phone or person
    start: int  # where the placeholder starts in the redacted text
    end: int  # where it ends
    at: float  # where the removed words started, as a share (0..1) of the original text's length
    until: float  # where they ended


@dataclass(frozen=True)
class Redacted:
    text: str  # the text with each finding replaced by its placeholder
    spans: tuple[Span, ...]  # in text order


EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,18}(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
PHONE = re.compile(r"(?<![\w])(?:\+|00)?\(?\d[\d ().-]{5,}\d(?!\w)")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")  # dates look like phone numbers

_NAME = r"((?:[A-ZÀ-ÖØ-ÞĀ-ſА-ЯЁ][\w'’-]+)(?:\s+[A-ZÀ-ÖØ-ÞĀ-ſА-ЯЁ][\w'’-]+)?)"
# Phrases after (or, in Hungarian, before) which a name is said; the name is group 1.
NAME_RULES = {
    "en": [
        rf"\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|I am|I'm|[Ss]peaking with|[Ss]peaking to|[Aa]sk for)\s+{_NAME}",
        rf"\b(?:Mr|Mrs|Ms|Miss|Dr)\.?\s+{_NAME}",
        rf"\b(?:[Hh]i|[Hh]ello|[Dd]ear|[Tt]hanks|[Tt]hank you),?\s+{_NAME}\b",
    ],
    "ru": [
        rf"(?:[Мм]еня зовут|[Зз]овут меня|[Ээ]то|[Сс] вами|[Мм]оя фамилия)\s+{_NAME}",
        rf"(?:господин|госпожа)\s+{_NAME}",
    ],
    "hu": [
        rf"(?:[Aa] nevem|[Nn]evem|[Bb]eszél)\s+{_NAME}",
        rf"{_NAME}\s+(?:vagyok|beszél)\b",
        rf"(?:[Úú]r|[Aa]sszony)\s+{_NAME}",
    ],
}
HONORIFICS = {"Mr", "Mrs", "Ms", "Miss", "Dr"}
# Capitalised words these rules catch that are not names.
NOT_NAMES = {
    "I",
    "The",
    "This",
    "That",
    "Yes",
    "No",
    "Okay",
    "OK",
    "Sure",
    "Good",
    "Great",
    "Thanks",
    "Sorry",
    "Just",
    "Calling",
    "Here",
    "Not",
    "Very",
    "Happy",
    "Interested",
    "Busy",
    "Afraid",
    "Fine",
}


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@functools.lru_cache(maxsize=8)
def ner_pipeline(language: str):
    """A trained spaCy pipeline with NER for the language, or None when none is installed."""
    import spacy
    from spacy.util import get_installed_models

    from salescalls.config import Settings

    wanted = Settings.from_env().ner_model
    if wanted in ("off", "none"):
        return None
    names = [wanted] if wanted else sorted(m for m in get_installed_models() if m.startswith(f"{language}_"))
    for name in names:
        try:
            nlp = spacy.load(name, disable=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        except (OSError, ImportError, ValueError):
            continue
        if "ner" in nlp.pipe_names:
            return nlp
    return None


# Numbers said as words ("восемь девятьсот шестнадцать ...", "hat-nulla-egy ...", "five five
# five ..."): each word's kind, so a run of them can be counted in digits. A unit is one digit, a
# teen or a tens word two (a tens word takes the unit after it: "двадцать пять" is two digits), a
# hundreds word three (it takes the tens and units after it).
_UNITS = {
    "en": "zero oh one two three four five six seven eight nine",
    "ru": "ноль нуль один одна два две три четыре пять шесть семь восемь девять",
    "hu": "nulla egy kettő két három négy öt hat hét nyolc kilenc",
}
_TEENS = {
    "en": "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen",
    "ru": "десять одиннадцать двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать "
    "восемнадцать девятнадцать",
    "hu": "tíz húsz",
}
_TENS = {
    "en": "twenty thirty forty fifty sixty seventy eighty ninety",
    "ru": "двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто",
    "hu": "harminc negyven ötven hatvan hetven nyolcvan kilencven",
}
_HUNDREDS = {
    "en": "",
    "ru": "сто двести триста четыреста пятьсот шестьсот семьсот восемьсот девятьсот",
    "hu": "",
}
_HU_COMPOUND = re.compile(  # Hungarian writes 11-99 as one word: tizenegy, huszonöt, hatvanhét
    r"^(?:tizen|huszon|harminc|negyven|ötven|hatvan|hetven|nyolcvan|kilencven)"
    r"(?:egy|kettő|két|három|négy|öt|hat|hét|nyolc|kilenc)$"
)
_HU_HUNDREDS = re.compile(r"^(?:egy|két|kettő|három|négy|öt|hat|hét|nyolc|kilenc)?száz\w*$")
_NUMBER_TOKEN = re.compile(r"\d+|[^\W\d_]+")
_BETWEEN_DIGITS = re.compile(r"[\s,.\-–]*")  # what may separate the parts of a number said aloud
_NUMERALS_ONLY = re.compile(r"[\d\s,.\-–]+")  # no number word: a date or a price, left to PHONE's checks


@functools.lru_cache(maxsize=8)
def _number_kinds(language: str) -> dict[str, str]:
    kinds = {}
    for kind, table in (("unit", _UNITS), ("teen", _TEENS), ("tens", _TENS), ("hundreds", _HUNDREDS)):
        for word in table.get(language, "").split():
            kinds[word] = kind
    return kinds


def _number_kind(word: str, language: str) -> str | None:
    word = word.lower()
    if word.isdigit():
        return "digits"
    if language == "hu" and _HU_COMPOUND.match(word):
        return "teen"
    if language == "hu" and _HU_HUNDREDS.match(word):
        return "hundreds"  # száz, kétszáz, kettőszázharminc
    if language == "en" and word in ("hundred", "double"):
        return word
    return _number_kinds(language).get(word)


def _spoken_numbers(text: str, language: str) -> list[tuple[int, int, int]]:
    """(start, end, digits) of every run of number words and numerals said one after the other."""
    runs, current = [], None  # current: [start, end, digits, open place]
    double = False
    for match in _NUMBER_TOKEN.finditer(text):
        kind = _number_kind(match.group(), language)
        joined = current is not None and _BETWEEN_DIGITS.fullmatch(text[current[1] : match.start()])
        if kind is None:
            if current:
                runs.append(tuple(current[:3]))
            current, double = None, False
            continue
        if not joined:
            if current:
                runs.append(tuple(current[:3]))
            current = [match.start(), match.end(), 0, 0]
        current[1] = match.end()
        if kind == "double":  # "double five": two digits
            double = True
            continue
        if kind == "hundred":  # "five hundred": the unit before it becomes three digits
            current[2], current[3] = current[2] + 2, 2
            continue
        place = {"digits": len(match.group()), "unit": 1, "teen": 2, "tens": 2, "hundreds": 3}[kind]
        open_place = current[3]
        if kind != "digits" and open_place and place <= open_place:
            current[3] = 1 if (kind == "tens" and open_place == 2) else 0  # absorbed by the word before
        else:
            current[2] += place * (2 if double and kind == "unit" else 1)
            current[3] = {"hundreds": 2, "tens": 1}.get(kind, 0)
        double = False
    if current:
        runs.append(tuple(current[:3]))
    return runs


def _people(text: str, language: str) -> list[tuple[int, int]]:
    """Names by rule, and by NER where a pipeline is installed (both: ASR text defeats either alone)."""
    nlp = ner_pipeline(language)
    found = [(e.start_char, e.end_char) for e in nlp(text).ents if e.label_ in ("PERSON", "PER")] if nlp else []
    for pattern in NAME_RULES.get(language, NAME_RULES["en"]):
        for match in re.finditer(pattern, text):
            start, _ = match.span(1)
            words = match.group(1).split()
            while words and words[0].rstrip(".") in HONORIFICS:  # "speak to Mrs Whitfield": the name follows
                start += len(words.pop(0))
                start += len(text[start:]) - len(text[start:].lstrip())
            while words and words[-1] in NOT_NAMES:
                words.pop()
            if not words or words[0] in NOT_NAMES:
                continue
            found.append((start, start + len(" ".join(words))))
    return found


def find(text: str, language: str = "en") -> list[tuple[int, int, str]]:
    """(start, end, kind) of the personal data in `text`, non-overlapping, in text order."""
    candidates: list[tuple[int, int, str]] = [(*m.span(), "email") for m in EMAIL.finditer(text)]
    candidates += [(*m.span(), "iban") for m in IBAN.finditer(text) if iban_valid(m.group())]
    candidates += [(*m.span(), "card") for m in CARD.finditer(text) if luhn_valid(_digits(m.group()))]
    candidates += [
        (*m.span(), "phone")
        for m in PHONE.finditer(text)
        if 7 <= len(_digits(m.group())) <= 15
        and not DATE.fullmatch(m.group().strip())
        and not re.match(r"[ .-]?\d", text[m.end() : m.end() + 2])  # part of a longer number
    ]
    candidates += [
        (start, end, "phone")
        for start, end, digits in _spoken_numbers(text, language)
        if 7 <= digits <= 15 and not _NUMERALS_ONLY.fullmatch(text[start:end])  # PHONE above judges those
    ]
    candidates += [(start, end, "person") for start, end in _people(text, language)]
    chosen: list[tuple[int, int, str]] = []
    for start, end, kind in candidates:  # earlier kinds win an overlap (an IBAN's digits are no phone)
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, kind))
    return sorted(chosen)


def redact(text: str, language: str = "en") -> Redacted:
    """The text with every finding replaced by a placeholder, and where each one was."""
    pieces, spans, cursor, length = [], [], 0, max(len(text), 1)
    out_length = 0
    for start, end, kind in find(text, language):
        pieces.append(text[cursor:start])
        out_length += start - cursor
        placeholder = PLACEHOLDERS[kind]
        spans.append(Span(kind, out_length, out_length + len(placeholder), start / length, end / length))
        pieces.append(placeholder)
        out_length += len(placeholder)
        cursor = end
    pieces.append(text[cursor:])
    return Redacted("".join(pieces), tuple(spans))


BLEEP_PAD = 0.2  # seconds added before and after a removed span's estimated time: words are not evenly timed


def redact_utterances(utterances, language: str = "en") -> tuple[tuple, tuple[Removal, ...]]:
    """Each utterance (anything with text, start and end) with its text redacted, and every removal
    with its estimated time in the recording (the span's share of the text, applied to the
    utterance's duration)."""
    from dataclasses import replace

    redacted, removals = [], []
    for idx, utterance in enumerate(utterances):
        result = redact(utterance.text, language)
        redacted.append(replace(utterance, text=result.text) if result.spans else utterance)
        duration = utterance.end - utterance.start
        for span in result.spans:
            removals.append(
                Removal(
                    idx,
                    span.kind,
                    span.start,
                    span.end,
                    round(max(utterance.start, utterance.start + span.at * duration - BLEEP_PAD), 3),
                    round(min(utterance.end, utterance.start + span.until * duration + BLEEP_PAD), 3),
                )
            )
    return tuple(redacted), tuple(removals)
