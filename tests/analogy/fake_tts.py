"""A deterministic "TTS" for the recipe tests: each word becomes a short chord whose pitch depends on the word
and on the voice. Registered by path (``tests.analogy.fake_tts:ToneBackend``) in a recipe config."""

from __future__ import annotations

import hashlib

import numpy as np

from asr_analogy.speech.tts.base import TTSBackend

SR = 16_000
WORD_S = 0.12
VOICE_HZ = {"low": 180.0, "high": 320.0}


def word_tone(word: str, base_hz: float, seconds: float = WORD_S, sr: int = SR) -> np.ndarray:
    """(samples,) float32: two partials at base_hz·(1 + k/8) and twice that, k from the word's hash."""
    k = int(hashlib.sha1(word.lower().encode()).hexdigest()[:4], 16) % 8
    t = np.arange(int(seconds * sr)) / sr
    f = base_hz * (1 + k / 8)
    env = np.hanning(t.size)
    return (0.3 * env * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t))).astype(np.float32)


class ToneBackend(TTSBackend):
    name = "tone"
    default_voice = "low"

    def list_voices(self) -> list[str]:
        return sorted(VOICE_HZ)

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        words = [w for w in text.split() if w.strip()]
        gap = np.zeros(int(0.03 * SR), dtype=np.float32)
        parts = [gap]
        for w in words:
            parts += [word_tone(w, VOICE_HZ[voice]), gap]
        return np.concatenate(parts), SR
