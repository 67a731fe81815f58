"""Redaction of personal data: what is found, what is not, and that the original never gets written."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from salescalls.db import store
from salescalls.records import CallRecord, ScoredUtterance
from salescalls.report import site as report
from salescalls.speech import privacy
from tests.conftest import write_tone
from tests.test_store import record


@pytest.fixture
def rules_only(monkeypatch):
    """The rule-based finder alone, whatever NER pipelines this machine has."""
    monkeypatch.setenv("SALESCALLS_NER_MODEL", "off")
    privacy.ner_pipeline.cache_clear()
    yield
    privacy.ner_pipeline.cache_clear()


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Call me on +44 20 7946 0958 tomorrow", "en", "Call me on [PHONE] tomorrow"),
        ("my number is (555) 014-2368", "en", "my number is [PHONE]"),
        ("Send it to peter.novak@example.co.uk please", "en", "Send it to [EMAIL] please"),
        ("Card 4111 1111 1111 1111, expiry next year", "en", "Card [CARD], expiry next year"),
        ("The IBAN is GB82 WEST 1234 5698 7654 32 thanks", "en", "The IBAN is [IBAN] thanks"),
        ("Hu IBAN: HU42117730161111101800000000", "en", "Hu IBAN: [IBAN]"),
        (
            "Good morning, this is Claire calling from BrightLine.",
            "en",
            "Good morning, this is [PERSON] calling from BrightLine.",
        ),
        ("Hi, my name is Peter Novak.", "en", "Hi, my name is [PERSON]."),
        ("Could I speak to Mrs Whitfield?", "en", "Could I speak to Mrs [PERSON]?"),
        ("Здравствуйте, меня зовут Анна Петрова.", "ru", "Здравствуйте, меня зовут [PERSON]."),
        ("Телефон 8 (495) 123-45-67, спасибо", "ru", "Телефон [PHONE], спасибо"),
        ("Jó napot, Kovács Péter vagyok a BrightLine-tól.", "hu", "Jó napot, [PERSON] vagyok a BrightLine-tól."),
        ("A nevem Kiss Anna.", "hu", "A nevem [PERSON]."),
    ],
)
def test_personal_data_is_replaced(rules_only, text, language, expected):
    assert privacy.redact(text, language).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "It is fifty nine euros per shop per month on a 24 month contract, 500 megabits.",
        "We opened in 2019 and have 35 staff.",
        "The installation is on 2026-11-23 at 10:30.",
        "Card number 4111 1111 1111 1112 is not valid",  # fails the Luhn check, too long for a phone
        "I'm not interested, thanks.",
        "Yes, that would be me.",
    ],
)
def test_ordinary_talk_is_left_alone(rules_only, text):
    assert privacy.redact(text).text == text


def test_a_trained_pipeline_finds_names_the_rules_miss():
    nlp = privacy.ner_pipeline("en")
    if nlp is None:
        pytest.skip("no English spaCy pipeline with NER installed")
    assert privacy.redact("I talked to Margaret Thatcher yesterday").text == "I talked to [PERSON] yesterday"


def test_invalid_iban_is_not_called_one():
    kinds = [kind for _, _, kind in privacy.find("IBAN GB82 WEST 1234 5698 7654 33 has a wrong check")]
    assert "iban" not in kinds  # its digits may still be redacted as a number


def test_spans_locate_the_removed_words_in_text_and_time():
    utterance = ScoredUtterance("A", "customer", 10.0, 20.0, "Reach me at anna@example.com or later", "needs", 0.9)
    (redacted,), (removal,) = privacy.redact_utterances([utterance])
    assert redacted.text == "Reach me at [EMAIL] or later"
    assert redacted.text[removal.start : removal.end] == "[EMAIL]"
    at = 10.0 + 10.0 * len("Reach me at ") / len(utterance.text)
    assert removal.start_s == pytest.approx(at - privacy.BLEEP_PAD, abs=0.01)
    assert 10.0 <= removal.start_s < removal.end_s <= 20.0


def test_a_redacted_record_holds_no_original_text_and_is_stored_with_its_removals(tmp_path, demo_script):
    original = record(call_id="c" * 64)
    said = "My card is 4111 1111 1111 1111, my name is Peter Novak"
    utterances = (ScoredUtterance("A", "customer", 0.0, 6.0, said, "close", 0.9), *original.utterances)
    redacted, removals = privacy.redact_utterances(utterances)
    call = CallRecord(**{**original.__dict__, "utterances": redacted, "redacted": True, "redactions": removals})
    staged = call.to_json()
    assert "4111" not in staged and "Peter" not in staged and "Novak" not in staged
    assert CallRecord.from_json(staged) == call
    database = tmp_path / "calls.duckdb"
    with store.writer(database) as con:
        store.save_script(con, demo_script)
        store.save_call(con, call)
        store.save_call(con, call)  # saving again replaces, never duplicates
        rows = con.execute("SELECT idx, kind FROM redactions ORDER BY start_s").fetchall()
        texts = " ".join(t for (t,) in con.execute("SELECT text FROM utterances").fetchall())
        flag = con.execute("SELECT redacted FROM calls").fetchone()[0]
    assert rows == [(0, "card"), (0, "person")] and flag is True
    assert "4111" not in texts and "[CARD]" in texts
    raw = database.read_bytes()
    assert b"4111 1111" not in raw and b"Novak" not in raw


def test_the_report_silences_the_redacted_audio(tmp_path, demo_script):
    recording = write_tone(tmp_path / "call.wav", seconds=4.0, rate=16000, amplitude=0.5)
    spoken = ScoredUtterance("A", "customer", 0.0, 4.0, "call me on 0701 234 5678 please", "needs", 0.9)
    redacted, removals = privacy.redact_utterances([spoken])
    base = record(call_id="d" * 64)
    call = CallRecord(
        **{
            **base.__dict__,
            "utterances": redacted,
            "redacted": True,
            "redactions": removals,
            "source": str(recording),
            "duration": 4.0,
        }
    )
    database = tmp_path / "calls.duckdb"
    with store.writer(database) as con:
        store.save_script(con, demo_script)
        store.save_call(con, call)
    site = report.build(database, tmp_path / "site")
    (mp3,) = (site.folder / "audio").glob("*.mp3")
    assert mp3.name.endswith("-redacted.mp3")
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(mp3), "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(pcm, dtype=np.int16).astype(float) / 32768

    def rms(start, end):
        return float(np.sqrt(np.mean(samples[int(start * 8000) : int(end * 8000)] ** 2)))

    (removal,) = removals
    assert rms(removal.start_s + 0.1, removal.end_s - 0.1) < 0.01  # silenced
    assert rms(0.0, max(0.2, removal.start_s - 0.2)) > 0.2 and rms(removal.end_s + 0.2, 3.9) > 0.2
    page = next((site.folder / "stages").glob("*.html")).read_text(encoding="utf-8")
    assert '<mark class="redacted">[PHONE]</mark>' in page and "0701" not in page
    assert json.dumps(page).count("Personal data was removed") == 1


@pytest.mark.models
def test_analysis_with_redaction_on_never_returns_the_name(model_settings, demo_script):
    from dataclasses import replace

    from salescalls.pipeline import analyse_call
    from tests.conftest import DEMO

    settings = replace(model_settings, redact=True)
    call = analyse_call(DEMO / "c13.flac", settings, demo_script)  # "this is Claire from BrightLine ..."
    assert call.redacted and any(r.kind == "person" for r in call.redactions)
    assert "Claire" not in call.to_json() and "[PERSON]" in " ".join(u.text for u in call.utterances)
    assert all(0 <= r.start_s < r.end_s <= call.duration for r in call.redactions)


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "Мой номер восемь девятьсот шестнадцать двести двадцать три сорок пять шестьдесят семь.",
            "ru",
            "Мой номер [PHONE].",
        ),
        ("Мой номер 8 916 двести двадцать три 45 67.", "ru", "Мой номер [PHONE]."),
        ("A számom hat-nulla-egy, kettőszázharminc, negyvenöt hatvanhét.", "hu", "A számom [PHONE]."),
        ("call me on five five five, oh one four, double two six eight", "en", "call me on [PHONE]"),
        # Numbers that are not phone numbers stay: too few digits said.
        ("Нас двенадцать человек, платим три тысячи рублей в месяц.", "ru", None),
        ("Tizenketten vagyunk, havonta háromszázezer forint a villany.", "hu", None),
        ("we are twenty five people, about one hundred and twenty calls a day", "en", None),
    ],
)
def test_phone_numbers_said_as_words_are_redacted(text, language, expected):
    assert privacy.redact(text, language).text == (text if expected is None else expected)
