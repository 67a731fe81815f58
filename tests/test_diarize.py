import numpy as np
import pytest

from salescalls.records import Turn
from salescalls.speech.audio import SAMPLE_RATE
from salescalls.speech.diarize import channel_turns, recheck_turns, to_rttm


def voice(seconds: float, frequency: float, rng) -> np.ndarray:
    """A crude voiced sound: a tone with syllable-rate amplitude modulation."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.4 * envelope * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def stereo_call(schedule, seconds=10.0, bleed=0.04, noise=0.002, seed=0):
    """schedule: (channel, start, end); each party also leaks into the other channel."""
    rng = np.random.default_rng(seed)
    own = np.zeros((2, int(seconds * SAMPLE_RATE)), np.float32)
    for channel, start, end in schedule:
        a = int(start * SAMPLE_RATE)
        sound = voice(end - start, 180 if channel == 0 else 260, rng)
        own[channel, a : a + sound.size] += sound
    mixed = own + bleed * own[::-1]
    return mixed + rng.normal(0, noise, mixed.shape).astype(np.float32)


def spans(turns, speaker):
    return [(t.start, t.end) for t in turns if t.speaker == speaker]


def test_each_channel_is_one_party_and_bleed_makes_no_turns():
    samples = stereo_call([(0, 0.5, 3.0), (1, 3.5, 5.0), (0, 5.5, 8.0)])
    turns = channel_turns(samples)
    rep, customer = spans(turns, "ch0"), spans(turns, "ch1")
    assert len(rep) == 2 and len(customer) == 1
    for (start, end), (true_start, true_end) in zip(rep + customer, [(0.5, 3.0), (5.5, 8.0), (3.5, 5.0)], strict=True):
        assert start == pytest.approx(true_start, abs=0.1)
        assert end == pytest.approx(true_end, abs=0.1)


def test_real_overlap_is_kept_on_both_channels():
    samples = stereo_call([(0, 0.5, 4.0), (1, 3.0, 6.0)])
    turns = channel_turns(samples)
    (rep,), (customer,) = spans(turns, "ch0"), spans(turns, "ch1")
    assert rep[1] > customer[0]  # both talk between 3 and 4 s


def test_loud_bleed_still_makes_no_false_turn():
    samples = stereo_call([(0, 0.5, 6.0)], bleed=0.12)  # about -18 dB
    assert spans(channel_turns(samples), "ch1") == []


def test_silence_has_no_turns():
    assert channel_turns(np.zeros((2, SAMPLE_RATE * 3), np.float32)) == []


def test_channel_turns_needs_stereo():
    with pytest.raises(ValueError):
        channel_turns(np.zeros((1, SAMPLE_RATE), np.float32))


def test_rttm_lines():
    rttm = to_rttm([Turn(0.5, 1.75, "ch0")], "call_1")
    assert rttm == "SPEAKER call_1 1 0.500 1.250 <NA> <NA> ch0 <NA> <NA>\n"


def tone_embedding(clip: np.ndarray) -> np.ndarray:
    """A stand-in speaker embedding for tones: energy near 180 Hz and near 260 Hz."""
    spectrum = np.abs(np.fft.rfft(clip))
    hz = np.fft.rfftfreq(clip.size, 1 / SAMPLE_RATE)
    return np.array([spectrum[np.abs(hz - 180) < 20].sum(), spectrum[np.abs(hz - 260) < 20].sum()])


def test_a_short_turn_given_to_the_wrong_speaker_is_moved_to_the_voice_it_matches():
    rng = np.random.default_rng(0)
    mono = np.zeros(20 * SAMPLE_RATE, np.float32)
    for start, end, frequency in [(0, 5, 180), (5.5, 9, 260), (10, 15, 180), (16, 17, 260), (17.5, 19.5, 260)]:
        sound = voice(end - start, frequency, rng)
        mono[int(start * SAMPLE_RATE) : int(start * SAMPLE_RATE) + sound.size] = sound
    turns = [
        Turn(0, 5, "A"),
        Turn(5.5, 9, "B"),
        Turn(10, 15, "A"),
        Turn(16, 17, "A"),  # B's voice, clustered with A
        Turn(17.5, 17.8, "A"),  # B's voice but too short to judge
        Turn(17.8, 19.5, "B"),
    ]
    rechecked = recheck_turns(mono, turns, tone_embedding)
    assert [t.speaker for t in rechecked] == ["A", "B", "A", "B", "A", "B"]
    assert recheck_turns(mono, [Turn(0, 5, "A"), Turn(16, 17, "A")], tone_embedding)[1].speaker == "A"  # one voice


def test_an_overlapped_turn_is_left_alone():
    rng = np.random.default_rng(0)
    mono = np.zeros(12 * SAMPLE_RATE, np.float32)
    for start, end, frequency in [(0, 5, 180), (5, 10, 260)]:
        sound = voice(end - start, frequency, rng)
        mono[int(start * SAMPLE_RATE) : int(start * SAMPLE_RATE) + sound.size] = sound
    turns = [Turn(0, 5, "A"), Turn(5, 10, "B"), Turn(7, 8, "A")]  # A speaks over B
    assert recheck_turns(mono, turns, tone_embedding) == turns
