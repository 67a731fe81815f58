"""Words to speakers to utterances.

Each word goes to the speaker whose turns overlap it most, computed for all words at once from
cumulative speech time per speaker (O((words + turns) log turns), no word-by-turn loop); a word
no turn touches goes to the nearest turn, so no word is left without a speaker.
"""

from __future__ import annotations

import numpy as np

from salescalls.records import Turn, Utterance, Word
from salescalls.speech.audio import SAMPLE_RATE

MAX_PAUSE = 1.0  # seconds of silence that end an utterance even without punctuation
BACKCHANNEL_WORDS = 2  # at most this many words...
BACKCHANNEL_SECONDS = 1.2  # ...this short, inside the other speaker's talk, is a back-channel
SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
WEAK_OVERLAP = 0.5  # a word less than half inside any turn is placed by its sentence


def _merged(intervals: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    array = np.array(merged, dtype=np.float64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _speech_before(t: np.ndarray, starts: np.ndarray, ends: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Seconds of a speaker's (disjoint, sorted) speech that lie before each time in t."""
    index = np.searchsorted(starts, t, side="right") - 1
    safe = np.clip(index, 0, None)
    after_t = np.maximum(ends[safe] - t, 0.0)
    return np.where(index >= 0, cumulative[safe] - after_t, 0.0)


def _distance(t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Seconds from each time in t to the nearest of a speaker's intervals (0 inside one)."""
    index = np.searchsorted(starts, t, side="right") - 1
    previous = np.where(index >= 0, t - ends[np.clip(index, 0, None)], np.inf)
    following_index = np.clip(index + 1, 0, len(starts) - 1)
    following = np.where(index + 1 < len(starts), starts[following_index] - t, np.inf)
    return np.minimum(np.maximum(previous, 0.0), following)


def assign_speakers(words: list[Word] | tuple[Word, ...], turns: list[Turn], by_sentence: bool = True) -> list[str]:
    """The speaker of every word: most overlap with the speaker's turns, else the nearest turn;
    with `by_sentence`, a word mostly outside every turn goes with the rest of its sentence."""
    if not words:
        return []
    speakers = sorted({turn.speaker for turn in turns})
    if not speakers:
        return ["SPEAKER_00"] * len(words)
    word_start = np.array([w.start for w in words], dtype=np.float64)
    word_end = np.maximum(np.array([w.end for w in words], dtype=np.float64), word_start)
    middle = (word_start + word_end) / 2
    overlap = np.zeros((len(speakers), len(words)))
    distance = np.zeros((len(speakers), len(words)))
    for row, speaker in enumerate(speakers):
        starts, ends = _merged([(t.start, t.end) for t in turns if t.speaker == speaker])
        cumulative = np.cumsum(ends - starts)
        overlap[row] = _speech_before(word_end, starts, ends, cumulative) - _speech_before(
            word_start, starts, ends, cumulative
        )
        distance[row] = _distance(middle, starts, ends)
    # Most overlap wins; a word no turn touches goes to the nearest speaker.
    choice = np.where(overlap.max(axis=0) > 0, np.argmax(overlap, axis=0), np.argmin(distance, axis=0))
    if by_sentence:
        covered = overlap.max(axis=0) / np.maximum(word_end - word_start, 1e-3)
        choice = _follow_sentence(words, choice, covered >= WEAK_OVERLAP, len(speakers))
    return [speakers[i] for i in choice]


def _follow_sentence(words, choice: np.ndarray, strong: np.ndarray, n_speakers: int) -> np.ndarray:
    """Weakly placed words take the speaker of the rest of their sentence.

    Whisper often stretches a sentence's first word back into the pause before it, so that word
    straddles the previous speaker's last turn ("... the whole back area. | We can install ...").
    A word whose interval is mostly outside every turn goes with the words of its own sentence
    that turns do place, when those agree on one speaker.
    """
    sentence = np.zeros(len(words), dtype=np.int64)
    for i in range(1, len(words)):
        ended = words[i - 1].text.endswith(SENTENCE_END) or words[i].start - words[i - 1].end > MAX_PAUSE
        sentence[i] = sentence[i - 1] + ended
    votes = np.zeros((sentence[-1] + 1, n_speakers))
    np.add.at(votes, (sentence[strong], choice[strong]), 1)
    agreed = (votes > 0).sum(axis=1) == 1
    follow = ~strong & agreed[sentence]
    return np.where(follow, np.argmax(votes, axis=1)[sentence], choice)


def assign_channels(words: list[Word] | tuple[Word, ...], samples: np.ndarray) -> list[str]:
    """Stereo: each word goes to the channel that is louder while it is spoken (ch0/ch1).

    One party per channel means the speaker's own channel carries their voice at full level and
    the other only a bleed; comparing the channels' energy over the word's own interval is
    exact where turn boundaries are not, e.g. for an "uh-huh" inside the other party's sentence.
    """
    if not words:
        return []
    if samples.shape[0] != 2:
        raise ValueError("assign_channels expects stereo audio (2, samples)")
    # Energy per 10 ms block, accumulated: small (a 30-minute call is 180,000 blocks per channel).
    block = SAMPLE_RATE // 100
    full = samples.shape[1] // block
    block_energy = np.empty((2, full))
    for channel in (0, 1):
        blocks = samples[channel, : full * block].reshape(full, block)  # a view: no copy of the audio
        block_energy[channel] = np.einsum("bs,bs->b", blocks, blocks, dtype=np.float64)
    tail = samples[:, full * block :].astype(np.float64)
    if tail.shape[1]:
        block_energy = np.concatenate([block_energy, (tail**2).sum(axis=1, keepdims=True)], axis=1)
    n_blocks = block_energy.shape[1]
    cumulative = np.concatenate([np.zeros((2, 1)), np.cumsum(block_energy, axis=1)], axis=1)
    start = np.clip(np.floor(np.array([w.start for w in words]) * 100).astype(np.int64), 0, n_blocks)
    end = np.clip(np.ceil(np.array([w.end for w in words]) * 100).astype(np.int64), 0, n_blocks)
    end = np.maximum(end, np.minimum(start + 1, n_blocks))
    energy = cumulative[:, end] - cumulative[:, start]  # (2, words)
    return [f"ch{c}" for c in np.argmax(energy, axis=0)]


def _backchannels(words: list[Word], speakers: list[str]) -> np.ndarray:
    """Mask of words forming a short run of one speaker inside another speaker's talk."""
    mask = np.zeros(len(words), dtype=bool)
    runs = []  # (speaker, first index, last index)
    for i, speaker in enumerate(speakers):
        if runs and runs[-1][0] == speaker:
            runs[-1][2] = i
        else:
            runs.append([speaker, i, i])
    for k in range(1, len(runs) - 1):
        speaker, first, last = runs[k]
        before, after = runs[k - 1], runs[k + 1]
        short = last - first + 1 <= BACKCHANNEL_WORDS and words[last].end - words[first].start <= BACKCHANNEL_SECONDS
        # The other speaker keeps going: their next word follows their previous one closely.
        continues = before[0] == after[0] != speaker and words[after[1]].start - words[before[2]].end <= MAX_PAUSE
        if short and continues:
            mask[first : last + 1] = True
    return mask


def _utterance(words: list[Word], speaker: str, backchannel: bool = False) -> Utterance:
    return Utterance(
        speaker=speaker,
        start=words[0].start,
        end=words[-1].end,
        text=" ".join(w.text for w in words),
        n_words=len(words),
        backchannel=backchannel,
    )


def build_utterances(words: list[Word] | tuple[Word, ...], speakers: list[str]) -> list[Utterance]:
    """Same-speaker runs of words, split at sentence ends and long pauses.

    A back-channel ("yes", "uh-huh") from the listener becomes its own utterance and does not
    break the speaker's utterance around it.
    """
    words = list(words)
    if len(words) != len(speakers):
        raise ValueError("one speaker per word is needed")
    backchannel = _backchannels(words, speakers)
    utterances: list[Utterance] = []
    current: list[Word] = []
    current_speaker = None
    for word, speaker, is_backchannel in zip(words, speakers, backchannel, strict=True):
        if is_backchannel:
            utterances.append(_utterance([word], speaker, backchannel=True))
            continue
        if current and (speaker != current_speaker or word.start - current[-1].end > MAX_PAUSE):
            utterances.append(_utterance(current, current_speaker))
            current = []
        current.append(word)
        current_speaker = speaker
        if word.text.endswith(SENTENCE_END):
            utterances.append(_utterance(current, current_speaker))
            current = []
    if current:
        utterances.append(_utterance(current, current_speaker))
    # Adjacent back-channel words of one speaker form one back-channel utterance.
    merged: list[Utterance] = []
    for utterance in sorted(utterances, key=lambda u: u.start):
        previous = merged[-1] if merged else None
        if previous and utterance.backchannel and previous.backchannel and previous.speaker == utterance.speaker:
            merged[-1] = Utterance(
                previous.speaker,
                previous.start,
                utterance.end,
                f"{previous.text} {utterance.text}",
                previous.n_words + 1,
                True,
            )
        else:
            merged.append(utterance)
    return merged
