import numpy as np
import pytest
import soundfile as sf

from asr_analogy.errors import AudioError
from asr_analogy.io.audio import duration_seconds, is_silent, load_audio, resample, rms_dbfs, write_wav


def test_load_downmixes_and_resamples(tmp_path):
    sr = 8000
    t = np.arange(sr) / sr  # 1 s
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).astype(np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, sr)
    audio = load_audio(path, sr=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 16000
    # Down-mix is the channel mean: amplitude 0.25, RMS 0.25/sqrt(2) -> -15.05 dBFS
    assert rms_dbfs(audio[1000:-1000]) == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.1)


def test_write_then_load_round_trip(tmp_path):
    x = (0.1 * np.sin(np.linspace(0, 100, 1600))).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", x, 16000)
    y = load_audio(path)
    np.testing.assert_allclose(y, x, atol=1 / 32768 + 1e-6)  # PCM16 quantization
    assert duration_seconds(y) == pytest.approx(0.1)


def test_write_wav_rejects_stereo_and_writes_nothing(tmp_path):
    with pytest.raises(AudioError, match="mono"):
        write_wav(tmp_path / "x.wav", np.zeros((10, 2)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage-not-a-wave"), "cannot decode"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "no samples"),
    ],
)
def test_bad_audio_names_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert "bad.wav" in str(info.value)


def test_levels():
    assert rms_dbfs(np.zeros(100)) == float("-inf")
    assert rms_dbfs(np.ones(100)) == pytest.approx(0.0)
    assert is_silent(np.full(100, 1e-4))  # -80 dBFS
    assert not is_silent(np.full(100, 0.01))  # -40 dBFS
    np.testing.assert_array_equal(resample(np.ones(5), 16000, 16000), np.ones(5, np.float32))


def test_bytes_decode_like_files(tmp_path):
    from asr_analogy.io.audio import load_audio_bytes

    x = (0.2 * np.sin(np.linspace(0, 50, 800))).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", x, 8000)
    np.testing.assert_array_equal(load_audio_bytes(path.read_bytes(), "clip-7"), load_audio(path))
    with pytest.raises(AudioError, match="audio of clip-7 is empty"):
        load_audio_bytes(b"", "clip-7")
    with pytest.raises(AudioError, match="cannot decode audio of clip-7"):
        load_audio_bytes(b"not audio at all", "clip-7")
