import pytest

from salescalls.records import Utterance
from salescalls.script.roles import role_classifier, roles_from_channels, roles_from_text


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


DEV_SCRIPT_LIKE = """
name: service_call_v2
stages:
  - {name: opening, order: 1, examples: ["Good morning, thanks for calling."]}
  - {name: request, order: 2, examples: ["I am looking for a cheap hotel in the centre.", "What day would you like?"]}
  - {name: booking, order: 3, examples: ["Your table is booked, the reference is X1."]}
  - {name: goodbye, order: 4, examples: ["Thank you, goodbye."]}
"""


def labelled_set_script():
    from salescalls.script.spec import parse_script

    return parse_script(DEV_SCRIPT_LIKE, "service.yaml")


@pytest.mark.parametrize("encoder", [None, "e5-small"])
def test_a_script_without_role_examples_still_tells_the_rep(encoder):
    # The labelled-set format has no per-role phrases: the classifier used to fail with
    # "empty vocabulary" and every mono call was quarantined.
    script = labelled_set_script()
    assert all(role not in ("rep", "customer") for stage in script.stages for role in stage.examples)
    classifier = role_classifier(script, encoder=encoder)
    service = [
        u("S1", "Hello, I need a train to Cambridge on Friday morning."),
        u("S2", "Certainly, what time would you like to leave?"),
        u("S1", "After nine, please. How much is a ticket?"),
        u("S2", "The 9:15 costs twelve pounds. Shall I book it for you?"),
        u("S1", "Yes please, for two people."),
        u("S2", "Done, your reference is TR4471. Is there anything else I can help you with?"),
        u("S1", "No, that's all, thank you."),
    ]
    assignment = roles_from_text(service, classifier)
    assert assignment.roles == {"S1": "customer", "S2": "rep"}
    assert 0.5 <= assignment.confidence <= 1.0 and assignment.evidence["S2"] > assignment.evidence["S1"]


def test_hungarian_call_against_a_script_with_english_examples_only():
    classifier = role_classifier(labelled_set_script(), encoder="e5-small")
    utterances = [
        u("X", "Halló?"),
        u("Y", "Jó napot kívánok, Szabó Péter vagyok, a szolgáltatótól hívom. Van két perce?"),
        u("X", "Igen, miről van szó?"),
        u("Y", "Mennyit fizetnek most havonta az internetért?"),
        u("X", "Körülbelül húszezer forintot, de lassú."),
    ]
    assert roles_from_text(utterances, classifier).roles == {"X": "customer", "Y": "rep"}


def stereo_call(rep_channel: int):
    rep, customer = f"ch{rep_channel}", f"ch{1 - rep_channel}"
    return [
        u(customer, "Hello?"),
        u(rep, "Good afternoon, this is Kim from BrightLine business broadband. Do you have two minutes?"),
        u(customer, "Yes, what is it about?"),
        u(rep, "Which provider are you using at the moment, and how many people work in your office?"),
        u(customer, "We are with City Cable, about ten people."),
        u(rep, "Our fibre package gives you five hundred megabits for forty nine euros a month."),
        u(customer, "That's more than we pay now."),
    ]


def test_stereo_calls_whose_words_contradict_the_channel_convention_are_flagged(demo_script):
    from salescalls.script.roles import roles_for_channels

    classifier = role_classifier(demo_script)
    as_configured = roles_for_channels(stereo_call(0), 0, classifier)
    assert as_configured.roles == {"ch0": "rep", "ch1": "customer"} and as_configured.note == ""
    swapped = roles_for_channels(stereo_call(1), 0, classifier)  # the recorder put the rep on channel 1
    assert swapped.roles == {"ch0": "rep", "ch1": "customer"}  # the convention is kept ...
    assert "rep is on channel 1, not 0" in swapped.note and "SALESCALLS_REP_CHANNEL=auto" in swapped.note
    auto = roles_for_channels(stereo_call(1), "auto", classifier)  # ... unless the team asks for auto
    assert auto.roles == {"ch0": "customer", "ch1": "rep"} and auto.method == "channel+text"
    assert auto.confidence > 0.9


def test_rep_channel_setting_accepts_auto(monkeypatch):
    from salescalls.config import Settings, SettingsError

    monkeypatch.setenv("SALESCALLS_REP_CHANNEL", "auto")
    assert Settings.from_env().rep_channel == "auto"
    monkeypatch.setenv("SALESCALLS_REP_CHANNEL", "2")
    with pytest.raises(SettingsError, match="0, 1 or auto"):
        Settings.from_env()
