"""Fixture helpers for the corpus preparers: tiny wav files and directory snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone(path: Path, seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> Path:
    """A sine tone at -12 dBFS, PCM16; ``seconds * sr`` frames exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    tone = (0.25 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    data = tone if channels == 1 else np.stack([tone] * channels, axis=1)
    sf.write(str(path), data, sr, subtype="PCM_16")
    return path


def snapshot(root: Path) -> dict[str, int]:
    """{relative path: size} of every file and folder under ``root`` (folders as -1); {} when absent."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in sorted(root.rglob("*"))}
