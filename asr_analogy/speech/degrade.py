"""Real-recording conditions for real speech: real hold music or real babble mixed under it at a set SNR, a GSM
06.10 codec round trip, alone or chained with the synthetic steps of ``asr_analogy.speech.tts.channel``.

A condition is written in the channel grammar (steps joined with ``+``, run left to right; a YAML list of
steps is the same), with three more kinds:

| step                          | meaning                                                                        |
|-------------------------------|--------------------------------------------------------------------------------|
| ``music:snr_db=5``            | a segment of real music (``MusicSource``) mixed under the speech at 5 dB SNR    |
| ``babble:snr_db=5,talkers=4`` | the sum of 4 other real utterances (equal RMS each), mixed at 5 dB SNR          |
| ``gsm``                       | GSM 06.10 full-rate round trip through sox at 8 kHz, back to the input rate     |
| ``noise:…``, ``telephone``, ``reverb:…`` | as in ``asr_analogy.speech.tts.channel``                             |

e.g. ``"music:snr_db=5+gsm"``: music at 5 dB, then the codec over the mix.

SNR (dB) = 10·log10(P_speech / P_noise), both mean squares over the *active* frames of the speech: 20 ms frames
whose mean square is within ``ACTIVE_RANGE_DB`` (40 dB) of the loudest frame of the clip, so pauses do not
count. The noise is scaled to hit the asked SNR exactly; when the mix would peak above ``PEAK`` (0.99) the mix,
speech and noise alike, is scaled down, which keeps the SNR. Every random choice (music track and offset, babble
talkers and offsets, white noise) is drawn from the utterance's seed and the step's position, so the same clip
and seed give the same bytes. Audio is float32 mono, shape (samples,), rates in Hz.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from asr_analogy.errors import AudioError, ConfigError
from asr_analogy.speech.tts.channel import STEPS, Step, apply_step, parse_channel, step_seed

ACTIVE_FRAME_S = 0.02  # frame length of the active-speech measure (seconds)
ACTIVE_RANGE_DB = 40.0  # frames quieter than the loudest frame by more than this are pauses
PEAK = 0.99  # largest absolute sample value of a mix
DEFAULT_TALKERS = 4

# the channel's kinds plus the real-recording ones: kind -> (parameter -> type, required parameters)
DEGRADE_STEPS: dict[str, tuple[dict[str, type], tuple[str, ...]]] = {
    **STEPS,
    "music": ({"snr_db": float}, ("snr_db",)),
    "babble": ({"snr_db": float, "talkers": int}, ("snr_db",)),
    "gsm": ({}, ()),
}


def parse_degrade(spec) -> list[Step]:
    """Validate a condition (see the module table) into a list of ``Step``; raises ``ConfigError`` naming the
    step and key for an unknown kind or key, a missing ``snr_db``, or ``talkers`` below 1."""
    steps = parse_channel(spec, DEGRADE_STEPS)
    for s in steps:
        if s.kind == "babble" and s.params.get("talkers", DEFAULT_TALKERS) < 1:
            raise ConfigError(f"channel step {str(s)!r}: key 'talkers' must be at least 1")
    return steps


def utterance_seed(key: str, seed: int = 0) -> int:
    """The 32-bit seed of one utterance: SHA-1 of ``key`` (e.g. ``"<domain>/<id>"``), with ``#seed`` appended
    when ``seed`` is not 0 (seed 0 keeps the key alone, the seeds of earlier white-noise runs)."""
    text = key if not seed else f"{key}#{seed}"
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


# ---- measuring and mixing ----------------------------------------------------------------------------------


def active_mask(speech: np.ndarray, sr: int) -> np.ndarray:
    """Boolean (samples,): the samples of the 20 ms frames within ``ACTIVE_RANGE_DB`` of the loudest frame."""
    x = np.asarray(speech, dtype=np.float64)
    frame = max(1, int(round(ACTIVE_FRAME_S * sr)))
    starts = np.arange(0, x.size, frame)
    energy = np.add.reduceat(x**2, starts) / np.diff(np.append(starts, x.size))
    active = energy >= energy.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return np.repeat(active, np.diff(np.append(starts, x.size)))


def active_snr_db(speech: np.ndarray, noise: np.ndarray, sr: int) -> float:
    """SNR in dB of ``noise`` under ``speech`` (same length) over the active frames of the speech."""
    mask = active_mask(speech, sr)
    ps = float(np.mean(np.asarray(speech, dtype=np.float64)[mask] ** 2))
    pn = float(np.mean(np.asarray(noise, dtype=np.float64)[mask] ** 2))
    return 10.0 * math.log10(ps / pn)


@dataclass(frozen=True)
class Mix:
    """A mix and its two parts as they are in it: ``audio == speech + noise`` (float64 parts, float32 audio)."""

    audio: np.ndarray
    speech: np.ndarray
    noise: np.ndarray


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, sr: int) -> Mix:
    """``speech`` plus ``noise`` (same length) scaled so that ``active_snr_db`` is ``snr_db``; scaled down as a
    whole when the peak would exceed ``PEAK``. Raises ``AudioError`` for silent speech or noise silent under it."""
    s = np.asarray(speech, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)
    if s.shape != n.shape:
        raise AudioError(f"mix: speech and noise differ in length ({s.size} vs {n.size} samples)")
    if not np.any(s):
        raise AudioError("mix: cannot set an SNR on silent speech")
    mask = active_mask(s, sr)
    pn = float(np.mean(n[mask] ** 2))
    if pn == 0.0:
        raise AudioError("mix: the noise is silent under the speech; pick another segment")
    n = n * math.sqrt(float(np.mean(s[mask] ** 2)) / (pn * 10.0 ** (float(snr_db) / 10.0)))
    peak = float(np.max(np.abs(s + n)))
    scale = min(1.0, PEAK / peak)
    s, n = s * scale, n * scale
    return Mix((s + n).astype(np.float32), s, n)


def _looped(audio: np.ndarray, n: int, start: int) -> np.ndarray:
    """``n`` samples of ``audio`` from ``start`` on, wrapping around to its beginning as often as needed."""
    return np.take(np.asarray(audio, dtype=np.float64), np.arange(start, start + n) % audio.size)


# ---- noise sources -----------------------------------------------------------------------------------------


class MusicSource:
    """Music tracks (audio files, loaded on first use at ``sr`` Hz) from which segments are drawn."""

    def __init__(self, files: Iterable[str | Path], sr: int = 16000):
        self.files = sorted(Path(f) for f in files)
        if not self.files:
            raise ConfigError("music: no track given")
        self.sr = sr
        self._tracks: dict[int, np.ndarray] = {}

    def track(self, i: int) -> np.ndarray:
        if i not in self._tracks:
            from asr_analogy.io.audio import load_audio

            self._tracks[i] = load_audio(self.files[i], self.sr)
        return self._tracks[i]

    def segment(self, n: int, rng: np.random.Generator, tries: int = 8) -> tuple[np.ndarray, str]:
        """``n`` samples from a track and offset drawn from ``rng`` (looped when the track is shorter), and a
        label ``"<file name>@<offset s>"``; a draw quieter than -60 dBFS (a pause between pieces) is drawn
        again, up to ``tries`` times."""
        for _ in range(tries):
            i = int(rng.integers(len(self.files)))
            track = self.track(i)
            start = int(rng.integers(max(1, track.size - n + 1)))
            seg = _looped(track, n, start)
            if np.mean(seg**2) > 1e-6:
                break
        return seg, f"{self.files[i].name}@{start / self.sr:.2f}s"


def babble(n: int, donors: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The sum of ``donors`` (each scaled to unit RMS, looped to ``n`` samples from an offset drawn from
    ``rng``), float64 (n,)."""
    out = np.zeros(n, dtype=np.float64)
    for audio in donors:
        a = np.asarray(audio, dtype=np.float64)
        rms = math.sqrt(float(np.mean(a**2)))
        if rms > 0:
            out += _looped(a / rms, n, int(rng.integers(a.size)))
    return out


def babble_pools(records: Iterable[dict], exclude_domains: Iterable[str]) -> dict[str, list[str]]:
    """For each split, the ids of the utterances a clip of that split may take babble from: not from the
    ``exclude_domains`` (the targets and stand-in targets, whose text must not leak), not from the clip's own
    split, never from the test split. ``records`` need ``id``, ``domain`` and ``split``."""
    excluded = set(exclude_domains)
    usable = [(r["split"], str(r["id"])) for r in records if r["domain"] not in excluded and r["split"] != "test"]
    return {split: sorted(uid for s, uid in usable if s != split) for split in ("train", "dev", "test")}


def gsm_round_trip(audio: np.ndarray, sr: int) -> np.ndarray:
    """GSM 06.10 full-rate encode and decode through sox at 8 kHz (repeatable mode, no dither), back at ``sr``;
    same length as the input. Raises ``AudioError`` when sox is missing or fails."""
    import soundfile as sf

    if shutil.which("sox") is None:
        raise AudioError("gsm: sox not found (install the Debian package sox)")
    x = np.asarray(audio, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="gsm-") as tmp:
        src, mid, dst = Path(tmp) / "in.wav", Path(tmp) / "mid.gsm", Path(tmp) / "out.wav"
        sf.write(src, np.clip(x, -1.0, 1.0), sr, subtype="FLOAT")
        for cmd in (["sox", "-R", "-D", str(src), "-r", "8000", "-c", "1", "-t", "gsm", str(mid)],
                    ["sox", "-R", "-D", "-t", "gsm", "-r", "8000", "-c", "1", str(mid), "-e", "floating-point",
                     "-b", "32", "-r", str(sr), str(dst)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise AudioError(f"gsm: {' '.join(cmd[:3])} failed: {res.stderr.strip()[-200:]}")
        y, _ = sf.read(dst, dtype="float32")
    return np.pad(y, (0, max(0, x.size - y.size)))[: x.size].astype(np.float32)


# ---- a whole condition -------------------------------------------------------------------------------------


@dataclass
class Degrader:
    """A condition ready to run: its steps and the real noise it draws from.

    ``music``: tracks for ``music`` steps; ``donor_audio(id)``: the clean audio of a babble donor."""

    spec: object
    sr: int = 16000
    music: MusicSource | None = None
    donor_audio: Callable[[str], np.ndarray] | None = None
    steps: list[Step] = field(init=False)

    def __post_init__(self):
        self.steps = parse_degrade(self.spec)
        kinds = {s.kind for s in self.steps}
        if "music" in kinds and self.music is None:
            raise ConfigError("music step: no music tracks given")
        if "babble" in kinds and self.donor_audio is None:
            raise ConfigError("babble step: no donor utterances given")

    def apply(self, audio: np.ndarray, seed: int, donors: Sequence[str] = ()) -> tuple[np.ndarray, dict]:
        """Run the condition on one clip (``seed``: ``utterance_seed``; ``donors``: the ids a babble step may
        draw from, sorted). Returns the audio (float32, same length) and what was drawn: ``{"music": [label],
        "babble": [[id, ...]]}`` per step of that kind."""
        out = np.asarray(audio, dtype=np.float32)
        drawn: dict[str, list] = {}
        for i, step in enumerate(self.steps):
            s_seed = step_seed(seed, i)
            if step.kind == "music":
                noise, label = self.music.segment(out.size, np.random.default_rng(s_seed))
                out = mix_at_snr(out, noise, step.params["snr_db"], self.sr).audio
                drawn.setdefault("music", []).append(label)
            elif step.kind == "babble":
                ids = choose_donors(donors, step.params.get("talkers", DEFAULT_TALKERS), s_seed)
                rng = np.random.default_rng([s_seed, 1])
                noise = babble(out.size, [self.donor_audio(d) for d in ids], rng)
                out = mix_at_snr(out, noise, step.params["snr_db"], self.sr).audio
                drawn.setdefault("babble", []).append(ids)
            elif step.kind == "gsm":
                out = gsm_round_trip(out, self.sr)
            else:
                out = apply_step(out, self.sr, step, seed=s_seed)
        return out, drawn


def choose_donors(pool: Sequence[str], talkers: int, seed: int) -> list[str]:
    """``talkers`` distinct ids of ``pool`` drawn with ``seed`` (all of them when the pool is smaller), in
    drawn order. Raises ``AudioError`` for an empty pool."""
    if not pool:
        raise AudioError("babble: no utterance to take babble from (every candidate is a target domain or in "
                         "the clip's own split)")
    pool = sorted(pool)
    picks = np.random.default_rng(seed).permutation(len(pool))[: min(talkers, len(pool))]
    return [pool[int(k)] for k in picks]


def describe_condition(spec) -> str:
    """What a condition is, in words for RESULTS.md: ``"real speech and real hold music, mixed by the recipe at
    5 dB SNR, then a GSM 06.10 codec round trip (sox, 8 kHz); TTS audio clean"``."""
    steps = parse_degrade(spec)
    if not steps:
        return "real speech as recorded (no degradation); TTS audio clean"
    words = {
        "music": lambda p: f"real hold music, mixed by the recipe at {p['snr_db']:g} dB SNR",
        "babble": lambda p: (f"real babble ({p.get('talkers', DEFAULT_TALKERS)} other real utterances of source "
                             f"domains), mixed by the recipe at {p['snr_db']:g} dB SNR"),
        "gsm": lambda p: "a GSM 06.10 codec round trip (sox, 8 kHz)",
        "noise": lambda p: f"synthetic {p.get('color', 'white')} noise at {p['snr_db']:g} dB SNR",
        "telephone": lambda p: "a simulated telephone band (300-3400 Hz, 8 kHz)",
        "reverb": lambda p: f"synthetic reverberation (RT60 {p.get('rt60', 0.3):g} s)",
    }
    parts = [words[s.kind](s.params) for s in steps]
    return "real speech and " + ", then ".join(parts) + "; TTS audio clean"
