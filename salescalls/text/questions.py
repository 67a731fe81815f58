"""Is an utterance a question? From its words as well as its question mark.

Speech recognisers drop question marks (whisper base on 8 kHz calls often does), so a count of
utterances ending in "?" says more about the recogniser than about the rep. An utterance is a
question when it has a question mark, or when its words have an interrogative form: it, or a
clause of it, opens (after fillers such as "so", "ну", "szóval") with a question word (what, how,
сколько, hány ...), a modal ("would Thursday work", "can we") or an auxiliary followed by its
subject ("do you", "is there"); or it carries the Russian particle "ли" as its second word or a
Hungarian "-e" particle (van-e, tudja-e), or ends in a tag ("..., right"). Questions asked by
intonation alone ("Вам удобно говорить") have no such form and are found by their question mark
only. Measured on the 3,488 turns of ../shared/eval/dialogues/dev.jsonl with their question marks
removed (never tuned on): 90 % of the questions found, 97 % of what it finds are questions.

PATTERN is one regular expression that Python's `re` and DuckDB's RE2 read the same way (no \\b
or \\w, which RE2 takes as ASCII only), so the stored conversation metrics and the Python side
agree; it is matched against the lower-cased text.
"""

from __future__ import annotations

import re

_END = r"(?:[\s,.!?:;]|$)"  # end of a word, for any alphabet
_FILLERS = r"(?:(?:so|and|but|well|okay|ok|um|uh|now|then|and then|а|и|ну|так|и вот|és|na|szóval|akkor|és akkor),?\s+)*"
_SUBJECTS = (
    "you|we|they|i|he|she|it|there|that|this|these|those|your|the|our|my|now|anyone|anybody|everything|everyone|any"
)
_RELATIVES = r"(?:which|who|whom|whose|where|when)" + _END  # after a comma these relate, not ask
_ENGLISH = (
    r"(?:what|how|why)" + _END,
    r"(?:what's|how's|who's|where's|when's)" + _END,
    r"(?:would|could|can|shall|may|might|will)\s+[^\s,.!?]+" + _END,  # a modal opening a clause asks
    r"am\s+i" + _END,
    r"(?:is|are|am|was|were|do|does|did|can|could|would|will|shall|should|may|might|have|has|had|"
    r"isn't|aren't|wasn't|don't|doesn't|didn't|can't|couldn't|won't|wouldn't|shouldn't|haven't|hasn't)\s+"
    r"(?:" + _SUBJECTS + r")" + _END,
)
_RUSSIAN = (
    r"(?:что|какой|какая|какое|какие|каким|какую|какого|какой-то|каков|сколько|когда|где|куда|откуда|"
    r"почему|зачем|кто|кого|кому|чем|чей|чья|чьё|насколько|можно|можете|могу|могли бы|удобно|правильно|верно)" + _END,
    # "как" also compares ("как я уже говорил"): only with what follows it in a question
    r"как\s+(?:у|дела|часто|давно|долго|скоро|быстро|много|вам|вас|ваш|ваша|ваши|это|там|сейчас|прошло|поживаете)"
    + _END,
)
_HUNGARIAN = (
    r"(?:mit|mik|miért|mikor|hol|hová|hova|honnan|hogyan|hogy|hány|hányan|hányat|mennyi|mennyire|mennyiért|"
    r"melyik|milyen|min|mennyibe|kit|kinek|kivel|mivel|miben|mire|miről|vajon)" + _END,
    # "mi" is also "we": only with what follows it in a question; "ki" likewise
    r"mi\s+(?:a|az|zavarja|történt|van|lenne|volna|érdekli|okozza|legyen|lesz|kell)" + _END,
    r"ki\s+(?:az|dönt|felel|intézi|foglalkozik|a|lesz|szokott)" + _END,
)
_OPENERS = "|".join(_ENGLISH + _RUSSIAN + _HUNGARIAN)
_ANYWHERE = (
    r"\?",
    r"(?:^|[.,;:!]\s+)" + _FILLERS + r"(?:" + _OPENERS + r")",  # at the start of any clause
    r"(?:^|[.;:!]\s+)" + _FILLERS + _RELATIVES,  # at the start of a sentence
    r"^[^\s]+\s+ли" + _END,  # "Есть ли у вас ...", "Удобно ли вам ..."
    r"[^\s,.!?]+-e" + _END,  # "Van-e önöknek ...", "tudja-e"
    r",\s*(?:right|correct|isn't it|aren't you|don't you|doesn't it|is that right)[.!]?$",
    r",\s*(?:да|верно|правильно|так ведь|не так ли)[.!]?$",
    r",\s*(?:igaz|ugye|ugyebár|nem)[.!]?$",
)
PATTERN = "|".join(f"(?:{part})" for part in _ANYWHERE)
_COMPILED = re.compile(PATTERN)


def normalise(text: str) -> str:
    """What the pattern is matched against: lower case, typographic apostrophes made plain."""
    return text.strip().lower().replace("\u2019", "'")


def is_question(text: str) -> bool:
    """True when the utterance is a question by its punctuation or its words (module docstring)."""
    return _COMPILED.search(normalise(text)) is not None


# The same test in DuckDB SQL, for a column or expression holding the text (PATTERN as a parameter).
SQL = "regexp_matches(replace(lower(trim({text})), '\u2019', ''''), ?)"
