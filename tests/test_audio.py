import subprocess

import numpy as np
import pytest
import soundfile as sf

from salescalls.speech import audio
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


def test_a_cut_off_wav_or_flac_is_refused_but_a_streamed_wav_is_not(tmp_path):
    tone = (0.3 * np.sin(np.arange(16000 * 10) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    sf.write(tmp_path / "whole.wav", tone, 16000, subtype="PCM_16")
    whole = (tmp_path / "whole.wav").read_bytes()
    assert audio.declared_wav_seconds(tmp_path / "whole.wav") == pytest.approx(10.0)
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(audio.AudioError, match=r"truncated: the file declares 10.0 s but holds 5.0 s"):
        audio.load(tmp_path / "cut.wav")
    sf.write(tmp_path / "whole.flac", tone, 16000)
    flac = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 3])
    with pytest.raises(audio.AudioError, match="truncated"):
        audio.load(tmp_path / "cut.flac")
    # A WAV written as a stream has no length in its header (0xFFFFFFFF): nothing to compare with.
    data = whole.index(b"data")
    streamed = whole[: data + 4] + b"\xff\xff\xff\xff" + whole[data + 8 : data + 8 + 16000 * 2 * 4]
    (tmp_path / "streamed.wav").write_bytes(streamed)
    assert audio.declared_wav_seconds(tmp_path / "streamed.wav") == 0.0
    assert audio.load(tmp_path / "streamed.wav").shape[1] == pytest.approx(16000 * 4, abs=200)


def test_digital_silence_is_refused_and_quiet_speech_is_not(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(16000 * 5, dtype=np.float32), 16000)
    with pytest.raises(audio.AudioError, match=r"silent: 5 s with nothing louder than -60 dBFS"):
        audio.load(tmp_path / "silence.wav")
    quiet = (10 ** (-50 / 20) * np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 300)).astype(np.float32)
    sf.write(tmp_path / "quiet.wav", quiet, 16000, subtype="FLOAT")
    assert np.abs(audio.load(tmp_path / "quiet.wav")).max() == pytest.approx(audio.PEAK, abs=0.01)
