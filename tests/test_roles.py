import pytest

from salescalls.align import Utterance
from salescalls.roles import role_classifier, roles_from_channels, roles_from_text


def test_channel_convention():
    assert roles_from_channels(0).roles == {"ch0": "rep", "ch1": "customer"}
    assert roles_from_channels(1).roles == {"ch0": "customer", "ch1": "rep"}
    with pytest.raises(ValueError):
        roles_from_channels(2)


def u(speaker, text, backchannel=False):
    return Utterance(speaker, 0.0, 1.0, text, len(text.split()), backchannel)


def test_the_speaker_who_sounds_like_the_script_is_the_rep(demo_script):
    utterances = [
        u("SPEAKER_00", "Hello?"),
        u("SPEAKER_01", "Good morning, this is Robin calling from BrightLine business internet."),
        u("SPEAKER_00", "Yes, what is it about?"),
        u("SPEAKER_01", "How many people work in your office and who is your provider?"),
        u("SPEAKER_00", "About ten, we are with City Cable, and it drops all the time."),
        u("SPEAKER_01", "Our fibre plan would give you a backup line for forty nine euros a month."),
        u("SPEAKER_00", "That is more than we pay now."),
    ]
    assignment = roles_from_text(utterances, role_classifier(demo_script))
    assert assignment.roles == {"SPEAKER_00": "customer", "SPEAKER_01": "rep"}
    assert assignment.method == "text" and assignment.confidence > 0.9


def test_labels_do_not_matter_and_russian_works(demo_script):
    utterances = [
        u("A", "Алло?"),
        u("B", "Добрый день, меня зовут Олег, я звоню из компании БрайтЛайн."),
        u("A", "Да, слушаю."),
        u("B", "Сколько сотрудников работает в вашем офисе?"),
    ]
    assert roles_from_text(utterances, role_classifier(demo_script)).roles == {"A": "customer", "B": "rep"}


def test_no_utterances():
    assignment = roles_from_text([], None)
    assert assignment.roles == {} and assignment.confidence == 0.5
