import io
import math
import warnings

import numpy as np
import pytest
import soundfile as sf

from asr_analogy.errors import AudioError
from asr_analogy.io.audio import is_silent, load_audio, load_audio_bytes, resample, rms_dbfs, to_mono, write_wav

# One frame of three float channels: in float32 the sum 1 + 2**-24 + 2**-24 rounds to 1 (each half-ulp addend
# rounds to even), so the float32 mean is float32(1/3); decoded as float64 first it would be float32(0.33333337).
THREE_CHANNELS = np.array([[1.0, 2.0**-24, 2.0**-24]], np.float32)


def _float_wav(channels, sr):
    buf = io.BytesIO()
    sf.write(buf, channels, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_files_and_bytes_are_decoded_as_float32_before_the_downmix(tmp_path):
    data = _float_wav(THREE_CHANNELS, 16000)
    path = tmp_path / "three.wav"
    path.write_bytes(data)
    expected = np.array([np.float32(1) / np.float32(3)], np.float32)
    np.testing.assert_array_equal(load_audio(path), expected)
    np.testing.assert_array_equal(load_audio_bytes(data, "three"), expected)


def test_a_file_already_at_the_requested_rate_keeps_its_samples(tmp_path):
    x = np.array([0.5, -0.25, 0.125, 0.0], np.float32)
    data = _float_wav(x, 8000)
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_audio(path, sr=8000), x)  # not resampled to 16 kHz
    np.testing.assert_array_equal(load_audio_bytes(data, "x", sr=8000), x)


def test_bytes_without_frames_name_the_clip():
    buf = io.BytesIO()
    sf.write(buf, np.zeros(0, np.float32), 16000, format="WAV")
    with pytest.raises(AudioError) as info:
        load_audio_bytes(buf.getvalue(), "clip-7")
    assert str(info.value) == "audio of clip-7 holds no samples"


def test_to_mono_refusals_start_with_what():
    with pytest.raises(AudioError) as info:
        to_mono(np.zeros((0, 1), np.float32), 16000)
    assert str(info.value) == "audio holds no samples"
    with pytest.raises(AudioError) as info:
        to_mono(np.zeros((5, 0), np.float32), 16000, what="clip")  # no channels: no samples either
    assert str(info.value) == "clip holds no samples"
    with pytest.raises(AudioError) as info:
        to_mono(np.array([[0.1], [np.nan]], np.float32), 16000, what="clip")
    assert str(info.value) == "clip holds NaN or Inf samples"
    with pytest.raises(AudioError) as info:
        to_mono(np.array([[0.1, np.inf]], np.float32), 16000, what="clip")
    assert str(info.value) == "clip holds NaN or Inf samples"


def test_to_mono_keeps_a_single_frame():
    np.testing.assert_array_equal(to_mono(np.array([[0.5]], np.float32), 16000), np.array([0.5], np.float32))
    np.testing.assert_array_equal(to_mono(np.array([[0.5, -0.25]], np.float32), 16000),
                                  np.array([0.125], np.float32))


def test_resample_at_the_same_rate_returns_float32():
    out = resample(np.array([0.5, 1.0]), 16000, 16000)  # float64 in
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.5, 1.0], np.float32))


def test_write_wav_takes_integer_amplitudes_as_floats(tmp_path):
    path = write_wav(tmp_path / "ints.wav", np.array([0, 1, -1]), 16000)  # int64: full scale both ways
    pcm, sr = sf.read(path, dtype="int16")
    assert sr == 16000 and sf.info(str(path)).subtype == "PCM_16"
    np.testing.assert_array_equal(pcm, np.array([0, 32767, -32768], np.int16))


def test_rms_dbfs_is_computed_in_float64():
    a, b = float(np.float32(0.1)), float(np.float32(0.7))
    expected = 20 * math.log10(math.sqrt((a * a + b * b) / 2))
    assert rms_dbfs(np.array([0.1, 0.7], np.float32)) == pytest.approx(expected, rel=0, abs=1e-9)
    assert rms_dbfs(np.array([0.5])) == pytest.approx(20 * math.log10(0.5), rel=0, abs=1e-12)  # one sample


def test_rms_dbfs_of_nothing_or_silence_is_minus_infinity_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log10(0) would warn "divide by zero"
        assert rms_dbfs(np.array([])) == float("-inf")
        assert rms_dbfs(np.zeros(3)) == float("-inf")


def test_is_silent_is_strictly_below_the_threshold():
    assert rms_dbfs(np.ones(4)) == 0.0
    assert not is_silent(np.ones(4), threshold_dbfs=0.0)
    assert is_silent(np.ones(4), threshold_dbfs=1e-9)


def test_write_wav_quantizes_the_float32_samples(tmp_path):
    # 0.5 - 2**-30 is 0.5 in float32 (half an ulp below 0.5 is 2**-26), and 0.5 is 16384 / 32768 in PCM_16;
    # written as float64, libsndfile would give 16383.
    path = write_wav(tmp_path / "half.wav", np.array([0.5 - 2.0**-30]), 16000)
    pcm, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(pcm, np.array([16384], np.int16))
