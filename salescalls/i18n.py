"""The team's language for people: gettext catalogues and the locale's dates and numbers.

Every sentence shown to a person (the report's pages, plan sentences, KPI and error names, the
funnel's verdicts) is written in English in the code, marked for extraction, and translated
through standard gettext catalogues (`salescalls/locale/<lang>/LC_MESSAGES/salescalls.po`,
compiled to `.mo`; `make i18n` extracts, updates and compiles them with Babel):

    with i18n.use("hu"):
        i18n._("Training plan")          # 'Képzési terv'
        i18n.percent(0.25)               # '25%'

The active language is a context variable: the CLI and the nightly flow set it from
`SALESCALLS_UI_LANGUAGE`; nothing else needs to pass it around. English is the code's own text
and keeps ISO 8601 dates; Russian and Hungarian use the locale's dates and number formats (CLDR,
through Babel).

May import: nothing of salescalls (every layer may use it).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

LANGUAGES = ("en", "ru", "hu")  # the languages the catalogues cover; en is the code's own text
DOMAIN = "salescalls"
LOCALE_DIR = Path(__file__).parent / "locale"

_active: contextvars.ContextVar[str] = contextvars.ContextVar("salescalls_ui_language", default="en")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Marks a constant for extraction; it is translated where it is shown (`_(constant)`)."""
    return message


@functools.lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (English: the identity)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown UI language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language])


def language() -> str:
    """The active UI language."""
    return _active.get()


@contextlib.contextmanager
def use(code: str) -> Iterator[str]:
    """Everything inside speaks `code` (en, ru or hu)."""
    translations(code)  # an unknown code fails here, before anything is written
    token = _active.set(code)
    try:
        yield code
    finally:
        _active.reset(token)


def _(message: str, **values) -> str:
    """`message` in the active language, with `{name}` fields filled from `values`."""
    text = translations(_active.get()).gettext(message) if message else message
    return text.format(**values) if values else text


def ngettext(singular: str, plural: str, n: int, **values) -> str:
    """The form for `n` in the active language (Russian has three), with `{n}` and `values` filled."""
    return translations(_active.get()).ngettext(singular, plural, n).format(n=n, **values)


def _babel_locale():
    """The active language's Babel locale; None for English (the code's own formats)."""
    code = _active.get()
    return None if code == "en" else _parsed_locale(code)


@functools.lru_cache(maxsize=len(LANGUAGES))
def _parsed_locale(code: str):
    from babel import Locale

    return Locale.parse(code)  # parsed once: formatting a report's cells would parse it thousands of times


def named(table: dict[str, str], key: str) -> str:
    """`table[key]` (a constant marked with N_) in the active language; a key not in it as it is
    (a team's own name)."""
    return _(table[key]) if key in table else key


def percent(value: float, digits: int = 0) -> str:
    """0.25 -> '25%' (en, hu) or '25 %' (ru)."""
    code = _babel_locale()
    if code is None:
        return f"{value:.{digits}%}"
    from babel.numbers import format_percent

    pattern = code.percent_formats[None].pattern  # ru: '#,##0\xa0%'
    if digits:
        pattern = pattern.replace("0", "0." + "0" * digits, 1)
    return format_percent(value, pattern, locale=code)


def number(value: float, spec: str = ".1f") -> str:
    """`value` formatted by a Python format spec ('.1f', '.0f', '+.0f', '.3f', '.2g'), in the locale's symbols."""
    code = _babel_locale()
    if code is None:
        return format(value, spec)
    from babel.numbers import format_decimal

    if spec.startswith("+"):  # a change: always signed
        shown = number(value, spec[1:])
        return shown if shown.startswith("-") or value < 0 else "+" + shown
    if spec.endswith("f"):
        digits = int(spec[1:-1] or 0)
        return format_decimal(value, "#,##0" + ("." + "0" * digits if digits else ""), locale=code)
    from babel.numbers import get_decimal_symbol

    return format(value, spec).replace(".", get_decimal_symbol(code))  # 'g': significant digits


def when(value: datetime) -> str:
    """A moment: 2026-11-23 10:30 (en), 23.11.2026 10:30 (ru), 2026. 11. 23. 10:30 (hu)."""
    code = _babel_locale()
    if code is None:
        return f"{value:%Y-%m-%d %H:%M}"
    from babel.dates import format_date, format_time

    return f"{format_date(value, 'short', locale=code)} {format_time(value, 'HH:mm', locale=code)}"


def day(value: date) -> str:
    """A day: 2026-11-23 (en), 23.11.2026 (ru), 2026. 11. 23. (hu)."""
    code = _babel_locale()
    if code is None:
        return f"{value:%Y-%m-%d}"
    from babel.dates import format_date

    return format_date(value, "short", locale=code)
