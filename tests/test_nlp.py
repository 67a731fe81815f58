from salescalls.text import nlp


def test_english_lemmas_and_number_shapes():
    text = "I 'm looking for 2 tickets at 16:30 , reference 6NOL39Q9 . Booked!"
    assert nlp.normalise(text, "en") == "i be look for _num_ ticket at _time_ reference _code_ book"


def test_russian_and_hungarian_lemmas():
    assert (
        nlp.normalise("Сколько сотрудников работает в вашем офисе?", "ru") == "сколько сотрудник работать в вашем офис"
    )
    assert nlp.normalise("Hányan dolgoznak az irodájukban?", "hu").startswith("hányan dolgozik")


def test_language_is_guessed_when_unknown():
    assert nlp.guess_language("Добрый день") == "ru"
    assert nlp.guess_language("Köszönöm, viszonthallásra") == "hu"
    assert nlp.guess_language("Thank you") == "en"
    assert nlp.normalise("Спасибо, до свидания!") == nlp.normalise("Спасибо, до свидания!", "ru")


def test_unknown_language_and_empty_text():
    assert nlp.normalise("", "en") == ""
    assert nlp.normalise("... !!", "en") == ""
    assert nlp.normalise("Hello there", "xx") == "hello there"  # no such spaCy language: English rules
