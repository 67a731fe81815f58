"""The pure parts of transcription: which stretches whisper decodes and which words are kept."""

import numpy as np

from salescalls.speech.transcribe import BLOCK, BLOCK_GAP, Word, _touching, merge_regions, speech_blocks


def test_merge_regions_pads_joins_and_clips():
    regions = [(5.0, 6.0), (1.0, 2.0), (2.5, 3.0), (9.0, 9.5)]
    assert merge_regions(regions, gap=0.6) == [(1.0, 3.0), (5.0, 6.0), (9.0, 9.5)]
    assert merge_regions(regions, gap=0.0, pad=1.0, duration=10.0) == [(0.0, 7.0), (8.0, 10.0)]


def test_speech_blocks_skip_long_silence_and_stay_short():
    duration = 3000.0
    regions = [(t, t + 4.0) for t in np.arange(20.0, 1500.0, 5.0)] + [(2000.0, 2010.0)]
    blocks = speech_blocks(regions, duration)
    assert all(end - start <= BLOCK for start, end in blocks)  # memory does not grow with the call
    assert all(any(s <= a and b <= e for s, e in blocks) for a, b in regions)  # all speech decoded
    assert not any(s < 1700.0 < e for s, e in blocks)  # 8+ minutes of silence are never decoded
    assert blocks[-1][1] < duration - BLOCK_GAP


def test_touching_keeps_exactly_the_words_that_overlap_a_region():
    rng = np.random.default_rng(3)
    for _ in range(50):
        raw = [(s, s + rng.uniform(0.1, 3.0)) for s in np.sort(rng.uniform(0, 100, rng.integers(0, 20)))]
        regions = merge_regions(raw, 0.0)
        words = [Word(s, s + rng.uniform(0, 0.8), "w", 1.0) for s in rng.uniform(0, 105, rng.integers(0, 40))]
        brute = [w for w in words if any(w.start <= e and w.end >= s for s, e in regions)]
        assert _touching(words, regions) == brute


def test_whispers_own_lines_stay_off_standard_output(capsys):
    """`transcribe -f json > out.json` must be JSON: with progress on, whisper prints its
    detected language to standard output; that goes to standard error."""
    import numpy as np

    from salescalls.speech.transcribe import _decode

    class Whisper:
        def transcribe(self, chunk, verbose=None, **options):
            if verbose is not None:
                print("Detected language: English")
            word = {"word": " hello", "start": 0.1, "end": 0.4, "probability": 0.9}
            return {"segments": [{"words": [word]}], "language": "en"}

    words, language = _decode(np.zeros(16000, np.float32), Whisper(), 0.0, 1.0, None, None, progress=True)
    captured = capsys.readouterr()
    assert [w.text for w in words] == ["hello"] and language == "en"
    assert captured.out == "" and "Detected language" in captured.err
