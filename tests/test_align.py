import numpy as np
import pytest

from salescalls.records import Turn, Word
from salescalls.speech.align import assign_speakers, build_utterances


def words(*items):
    return [Word(start, end, text, 0.9) for start, end, text in items]


def brute_force(ws, turns):
    """The obvious quadratic reference: total overlap per speaker, nearest turn when none."""
    speakers = sorted({t.speaker for t in turns})
    result = []
    for w in ws:
        overlap = {s: 0.0 for s in speakers}
        distance = {s: np.inf for s in speakers}
        for t in turns:
            overlap[t.speaker] += max(0.0, min(w.end, t.end) - max(w.start, t.start))
            middle = (w.start + w.end) / 2
            gap = 0.0 if t.start <= middle <= t.end else min(abs(middle - t.start), abs(middle - t.end))
            distance[t.speaker] = min(distance[t.speaker], gap)
        best = max(overlap.values())
        if best > 0:
            result.append(min(s for s in speakers if overlap[s] == best))
        else:
            result.append(min(speakers, key=lambda s: (distance[s], s)))
    return result


def test_most_overlap_wins_at_a_turn_boundary():
    turns = [Turn(0.0, 2.0, "A"), Turn(1.9, 4.0, "B")]
    ws = words((1.5, 1.95, "end"), (1.92, 2.5, "start"), (3.0, 3.5, "middle"))
    assert assign_speakers(ws, turns) == ["A", "B", "B"]


def test_words_outside_every_turn_go_to_the_nearest_speaker():
    turns = [Turn(0.0, 1.0, "A"), Turn(5.0, 6.0, "B")]
    ws = words((1.2, 1.4, "late"), (4.5, 4.8, "early"), (10.0, 10.0, "zero-length"))
    assert assign_speakers(ws, turns) == ["A", "B", "B"]


def test_no_turns_still_gives_every_word_a_speaker():
    assert assign_speakers(words((0.0, 0.5, "hi")), []) == ["SPEAKER_00"]
    assert assign_speakers([], [Turn(0, 1, "A")]) == []


def test_vectorised_assignment_matches_brute_force_on_random_calls():
    rng = np.random.default_rng(7)
    for _ in range(30):
        turns = []
        t = 0.0
        for _ in range(rng.integers(1, 15)):
            start = t + rng.uniform(-0.3, 1.0)
            end = start + rng.uniform(0.2, 4.0)
            turns.append(Turn(max(0.0, start), end, rng.choice(["A", "B", "C"])))
            t = end
        ws = []
        for _ in range(rng.integers(1, 60)):
            start = rng.uniform(0, t + 2)
            ws.append(Word(start, start + rng.uniform(0, 0.6), "w", 1.0))
        assert assign_speakers(ws, turns, by_sentence=False) == brute_force(ws, turns)


def test_a_sentence_start_stretched_into_the_pause_goes_with_its_sentence():
    # Whisper starts "We" in the pause, over the end of the customer's last turn: by overlap alone
    # it is the customer's; its sentence, which the rep's turn clearly holds, decides.
    turns = [Turn(22.0, 24.8, "customer"), Turn(25.2, 29.0, "rep")]
    ws = words((23.5, 24.6, "area."), (24.6, 25.3, "We"), (25.3, 25.6, "can"), (25.6, 26.0, "install"))
    assert assign_speakers(ws, turns, by_sentence=False)[1] == "customer"
    assert assign_speakers(ws, turns) == ["customer", "rep", "rep", "rep"]


def test_a_well_placed_word_keeps_its_speaker_inside_a_run_on_sentence():
    turns = [Turn(0.0, 1.0, "A"), Turn(1.0, 3.0, "B")]
    ws = words((0.1, 0.9, "yes"), (1.1, 1.5, "and"), (1.5, 2.0, "then"))  # no sentence end
    assert assign_speakers(ws, turns) == ["A", "B", "B"]


def test_utterances_split_at_speaker_change_sentence_end_and_long_pause():
    ws = words(
        (0.0, 0.3, "Hello,"),
        (0.35, 0.6, "there."),
        (0.7, 0.9, "How"),
        (0.95, 1.2, "are"),
        (3.0, 3.2, "you"),
        (3.5, 3.8, "Fine"),
        (3.9, 4.1, "thanks."),
    )
    speakers = ["A", "A", "A", "A", "A", "B", "B"]
    utterances = build_utterances(ws, speakers)
    assert [(u.speaker, u.text) for u in utterances] == [
        ("A", "Hello, there."),
        ("A", "How are"),
        ("A", "you"),
        ("B", "Fine thanks."),
    ]
    assert utterances[0].start == 0.0 and utterances[0].end == 0.6


def test_back_channel_does_not_break_the_speakers_utterance():
    ws = words(
        (0.0, 0.4, "Our"),
        (0.45, 0.8, "plan"),
        (0.85, 1.2, "has"),
        (1.0, 1.3, "uh-huh"),
        (1.3, 1.6, "five"),
        (1.65, 2.0, "hundred"),
        (2.05, 2.5, "megabits."),
        (3.0, 3.3, "Sounds"),
        (3.35, 3.7, "good."),
    )
    speakers = ["A", "A", "A", "B", "A", "A", "A", "B", "B"]
    utterances = build_utterances(ws, speakers)
    main = [u for u in utterances if not u.backchannel]
    assert [(u.speaker, u.text) for u in main] == [
        ("A", "Our plan has five hundred megabits."),
        ("B", "Sounds good."),
    ]
    (backchannel,) = [u for u in utterances if u.backchannel]
    assert (backchannel.speaker, backchannel.text) == ("B", "uh-huh")


def test_a_real_reply_is_not_a_back_channel():
    ws = words((0.0, 0.4, "Price?"), (0.6, 1.0, "Forty"), (1.05, 1.4, "euros."), (4.0, 4.5, "Okay."))
    utterances = build_utterances(ws, ["A", "B", "B", "A"])
    assert not any(u.backchannel for u in utterances)


def test_one_speaker_per_word_is_required():
    with pytest.raises(ValueError):
        build_utterances(words((0, 1, "a")), [])
