import numpy as np
import pytest
import soundfile as sf

from asr_analogy.errors import AudioError
from asr_analogy.io.audio import probe_audio


def test_probe_reads_the_duration_from_the_header(tmp_path):
    path = tmp_path / "half.wav"
    sf.write(path, np.zeros(8000, np.float32), 16000)
    assert probe_audio(path) == 0.5  # 8000 frames / 16000 Hz
    one = tmp_path / "one.wav"
    sf.write(one, np.zeros(1, np.float32), 16000)
    assert probe_audio(one) == 1 / 16000  # a single frame is audio
    slow = tmp_path / "slow.wav"
    sf.write(slow, np.zeros(3, np.float32), 1)
    assert probe_audio(slow) == 3.0  # 3 frames at 1 Hz


def test_probe_refuses_a_header_without_frames(tmp_path):
    path = tmp_path / "none.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError) as info:
        probe_audio(path)
    assert str(info.value) == f"audio file {path} holds no samples"


def test_probe_names_a_missing_empty_or_undecodable_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as info:
        probe_audio(missing)
    assert str(info.value) == f"audio file {missing} does not exist"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError) as info:
        probe_audio(empty)
    assert str(info.value) == f"audio file {empty} is empty (0 bytes)"
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00garbage-not-a-wave")
    with pytest.raises(AudioError) as info:
        probe_audio(garbage)
    assert str(info.value).startswith(f"cannot decode audio file {garbage}: ")
    assert str(garbage) in str(info.value).split(": ", 1)[1]  # libsndfile's own reason names the file
