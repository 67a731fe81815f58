import subprocess

import numpy as np
import pytest

from salescalls import audio
from tests.conftest import write_tone


def test_mono_8k_is_resampled_to_16k_and_normalised(tmp_path):
    path = write_tone(tmp_path / "call.wav", seconds=2.0, rate=8000, amplitude=0.05)
    info = audio.probe(path)
    assert (info.channels, info.sample_rate) == (1, 8000)
    assert info.duration == pytest.approx(2.0, abs=0.01)
    samples = audio.load(path, info)
    assert samples.shape[0] == 1
    assert samples.shape[1] == pytest.approx(2 * audio.SAMPLE_RATE, abs=50)
    assert np.abs(samples).max() == pytest.approx(audio.PEAK, abs=1e-3)
    assert abs(float(samples.mean())) < 1e-3


def test_stereo_keeps_both_channels_with_one_gain(tmp_path):
    path = tmp_path / "stereo.flac"
    rate = 16000
    t = np.arange(rate) / rate
    loud, quiet = 0.5 * np.sin(2 * np.pi * 200 * t), 0.05 * np.sin(2 * np.pi * 300 * t)
    import soundfile as sf

    sf.write(path, np.stack([loud, quiet], axis=1), rate)
    samples = audio.load(path)
    assert samples.shape[0] == 2
    ratio = np.abs(samples[0]).max() / np.abs(samples[1]).max()
    assert ratio == pytest.approx(10.0, rel=0.05)  # the level relation between channels survives


def test_six_channels_are_mixed_down_to_mono(tmp_path):
    path = write_tone(tmp_path / "surround.wav", channels=6)
    assert audio.probe(path).channels == 6
    assert audio.load(path).shape[0] == 1


def test_non_ascii_file_name_with_spaces(tmp_path):
    path = write_tone(tmp_path / "звонок клиенту – ügyfél.wav")
    assert audio.load(path).shape[0] == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"this is a text file, not audio\n" * 20, "not decodable audio")],
)
def test_unusable_files_say_why(tmp_path, content, reason):
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match=reason):
        audio.probe(path)


def test_too_short_audio_is_rejected(tmp_path):
    path = write_tone(tmp_path / "blip.wav", seconds=0.05)
    with pytest.raises(audio.AudioError, match="too short"):
        audio.load(path)


def test_video_without_audio_has_no_audio_stream(tmp_path):
    path = tmp_path / "video.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=32x32:d=0.5", "-an", str(path)], check=True
    )
    with pytest.raises(audio.AudioError, match="no audio stream"):
        audio.probe(path)


def test_content_hash_is_the_bytes_identity(tmp_path):
    a = write_tone(tmp_path / "a.wav")
    b = tmp_path / "copy with another name.wav"
    b.write_bytes(a.read_bytes())
    c = write_tone(tmp_path / "c.wav", frequency=330.0)
    assert audio.content_hash(a) == audio.content_hash(b) != audio.content_hash(c)
    assert len(audio.content_hash(a)) == 64
