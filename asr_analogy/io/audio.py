"""Audio I/O with soundfile and librosa (torchaudio is not needed).

Arrays are float32, mono, shape (samples,), values in [-1, 1]; rates in Hz; durations in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr_analogy.errors import AudioError
from asr_analogy.io.atomic import atomic_file

TARGET_SR = 16_000
"""Sampling rate of every model input, Hz."""


def load_audio(path: str | os.PathLike, sr: int = TARGET_SR) -> np.ndarray:
    """Read an audio file, down-mix to mono and resample to ``sr`` Hz. Returns float32, shape (samples,).

    Raises ``AudioError`` naming the file when it is missing, unreadable or holds no samples.
    """
    import soundfile as sf

    path = _existing_file(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"cannot decode audio file {path}: {exc}") from None
    return to_mono(data, file_sr, sr, what=f"audio file {path}")


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes)")
    return path


def probe_audio(path: str | os.PathLike) -> float:
    """Duration in seconds of a readable, non-empty audio file, from its header (no decoding).

    Raises ``AudioError`` naming the file when it is missing, empty or not decodable.
    """
    import soundfile as sf

    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types
        raise AudioError(f"cannot decode audio file {path}: {exc}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"audio file {path} holds no samples")
    return float(info.frames) / float(info.samplerate)


def load_audio_bytes(data: bytes, name: str, sr: int = TARGET_SR) -> np.ndarray:
    """Decode an in-memory audio file (wav, flac, ogg, ...) like ``load_audio``; ``name`` is used in errors."""
    import io

    import soundfile as sf

    if not data:
        raise AudioError(f"audio of {name} is empty (0 bytes)")
    try:
        frames, file_sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"cannot decode audio of {name}: {exc}") from None
    return to_mono(frames, file_sr, sr, what=f"audio of {name}")


def to_mono(frames: np.ndarray, file_sr: int, sr: int = TARGET_SR, what: str = "audio") -> np.ndarray:
    """Frames of shape (samples, channels) at ``file_sr`` Hz -> float32 mono at ``sr`` Hz, shape (samples,).

    The down-mix is the channel mean. Raises ``AudioError`` (starting with ``what``) for no samples or NaN/Inf.
    """
    if frames.size == 0:  # no frames, or no channels
        raise AudioError(f"{what} holds no samples")
    mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{what} holds NaN or Inf samples")
    return resample(mono, file_sr, sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float array from ``orig_sr`` to ``target_sr`` Hz (librosa, soxr_hq)."""
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = TARGET_SR) -> Path:
    """Write mono float audio as 16-bit PCM WAV, atomically. Clips to [-1, 1]. Returns the path."""
    import soundfile as sf

    path = Path(path)
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if audio.ndim != 1:
        raise AudioError(f"write_wav expects mono audio of shape (samples,), got shape {audio.shape}")
    with atomic_file(path, "wb") as fh:
        sf.write(fh, audio, sr, format="WAV", subtype="PCM_16")
    return path


def duration_seconds(audio: np.ndarray, sr: int = TARGET_SR) -> float:
    """Length of ``audio`` in seconds."""
    return float(len(audio)) / float(sr)


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale; -inf for all-zero audio."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(audio**2)))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def is_silent(audio: np.ndarray, threshold_dbfs: float = -60.0) -> bool:
    """True when the RMS level is below ``threshold_dbfs`` (default -60 dBFS)."""
    return rms_dbfs(audio) < threshold_dbfs
