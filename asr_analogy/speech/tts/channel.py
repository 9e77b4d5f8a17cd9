"""Channel simulation for synthetic speech: telephone band, additive noise at a set SNR, room reverb.

Clean TTS audio differs from the recordings a recognizer meets; the IVR corpus, for one, is 8 kHz telephone
speech. A channel is a list of steps applied in order, written as a small spec:

| spec                                   | meaning                                                        |
|----------------------------------------|----------------------------------------------------------------|
| ``None`` / ``"none"``                  | no change                                                      |
| ``"telephone"``                        | 300–3400 Hz band-pass, then an 8 kHz round trip                |
| ``"noise:snr_db=20"``                  | white noise at 20 dB SNR (``color=pink`` for 1/f noise)         |
| ``"reverb:rt60=0.4"``                  | synthetic room: exponentially decaying noise tail, RT60 0.4 s   |
| ``"telephone+noise:snr_db=25"``        | steps joined with ``+`` run left to right                      |
| ``{"type": "noise", "snr_db": 20}``    | the same as a dict                                             |
| ``["reverb:rt60=0.3", "telephone"]``  | a list of any of the above                                     |

Audio is float32 mono, shape (samples,), rates in Hz. Random steps take a ``seed``; the same seed gives the
same result. ``apply_channel`` keeps the length of its input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from asr_analogy.errors import AudioError, ConfigError
from asr_analogy.io.audio import resample


def telephone(
    audio: np.ndarray,
    sr: int,
    *,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    rate: int = 8000,
    order: int = 4,
    mulaw: bool = False,
) -> np.ndarray:
    """Telephone channel: Butterworth band-pass ``low_hz``–``high_hz`` (order ``order``, applied forward and
    backward, so zero phase and twice the dB attenuation), then resampling to ``rate`` Hz and back to ``sr``.
    With ``mulaw``, the signal at ``rate`` also goes through 8-bit G.711 μ-law companding. Returns (samples,)."""
    from scipy.signal import butter, sosfiltfilt

    audio = _mono(audio)
    nyquist = sr / 2.0
    if not 0 < low_hz < high_hz < nyquist:
        raise ConfigError(f"telephone: need 0 < low_hz < high_hz < {nyquist} Hz (sr/2), got {low_hz}, {high_hz}")
    sos = butter(int(order), [low_hz, high_hz], btype="bandpass", fs=sr, output="sos")
    padlen = min(len(audio) - 1, 3 * (2 * len(sos) + 1))
    y = sosfiltfilt(sos, audio, padlen=max(0, padlen)).astype(np.float32)
    if rate and rate != sr:
        y = resample(y, sr, int(rate))
        if mulaw:
            y = _mulaw_round_trip(y)
        y = resample(y, int(rate), sr)
    elif mulaw:
        y = _mulaw_round_trip(y)
    return _fit_length(y, len(audio))


def _mulaw_round_trip(audio: np.ndarray, mu: int = 255) -> np.ndarray:
    """Compress with μ-law, quantize to 8 bits (256 levels), expand back (G.711 μ-law, continuous form)."""
    x = np.clip(audio, -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)
    quantized = np.round((compressed + 1.0) * 127.5) / 127.5 - 1.0
    return (np.sign(quantized) * np.expm1(np.abs(quantized) * math.log1p(mu)) / mu).astype(np.float32)


def colored_noise(n: int, *, seed: int, color: str = "white") -> np.ndarray:
    """``n`` samples of unit-variance Gaussian noise; ``color="pink"`` shapes its power spectrum as 1/f."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    if color == "pink":
        spectrum = np.fft.rfft(noise)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        freqs[0] = 1.0
        noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    elif color != "white":
        raise ConfigError(f"noise: color must be 'white' or 'pink', got {color!r}")
    noise = noise - noise.mean()
    return (noise / (noise.std() or 1.0)).astype(np.float64)


def add_noise(audio: np.ndarray, snr_db: float, *, seed: int = 0, color: str = "white") -> np.ndarray:
    """Add Gaussian noise so that 10·log10(P_signal / P_noise) equals ``snr_db`` exactly, where P is the mean
    square over the whole clip (pauses included). Raises ``AudioError`` for an all-zero signal (SNR undefined)."""
    audio = _mono(audio)
    power = float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))
    if power == 0.0:
        raise AudioError("noise: cannot set an SNR on silent audio (signal power is 0)")
    noise = colored_noise(len(audio), seed=seed, color=color)
    noise *= math.sqrt(power / (float(np.mean(noise**2)) * 10.0 ** (float(snr_db) / 10.0)))
    return (audio + noise).astype(np.float32)


def room_impulse_response(sr: int, rt60: float, *, seed: int = 0, direct: float = 1.0) -> np.ndarray:
    """A synthetic room impulse response of length ``rt60`` seconds: Gaussian noise under an envelope that falls
    60 dB over ``rt60`` (amplitude 10^(-3 t / rt60)), plus a direct-path impulse of weight ``direct`` relative
    to the tail's peak envelope. Normalized to unit energy. Returns (samples,)."""
    if not 0.01 <= rt60 <= 10.0:
        raise ConfigError(f"reverb: rt60 must be in [0.01, 10] seconds, got {rt60}")
    n = max(2, int(round(rt60 * sr)))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    ir = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)
    ir[0] = float(direct) * max(1.0, float(np.abs(ir).max()))
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float64)


def reverb(audio: np.ndarray, sr: int, *, rt60: float = 0.3, seed: int = 0, direct: float = 1.0) -> np.ndarray:
    """Convolve with ``room_impulse_response(sr, rt60, seed=seed, direct=direct)``, cut to the input length and
    rescale to the input's RMS level. Returns (samples,)."""
    from scipy.signal import fftconvolve

    audio = _mono(audio)
    ir = room_impulse_response(sr, rt60, seed=seed, direct=direct)
    wet = fftconvolve(audio.astype(np.float64), ir)[: len(audio)]
    rms_in, rms_out = np.sqrt(np.mean(audio.astype(np.float64) ** 2)), np.sqrt(np.mean(wet**2))
    if rms_out > 0:
        wet *= rms_in / rms_out
    return wet.astype(np.float32)


# ---- specs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One channel step: ``kind`` in STEPS and its keyword parameters."""

    kind: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}:{args}" if args else self.kind


# kind -> (parameter -> type, required parameters)
STEPS: dict[str, tuple[dict[str, type], tuple[str, ...]]] = {
    "telephone": ({"low_hz": float, "high_hz": float, "rate": int, "order": int, "mulaw": bool}, ()),
    "noise": ({"snr_db": float, "color": str}, ("snr_db",)),
    "reverb": ({"rt60": float, "direct": float}, ()),
}


def parse_channel(spec, steps: dict = STEPS) -> list[Step]:
    """Validate a channel spec (see the module table) into a list of ``Step``. Raises ``ConfigError`` naming
    the step and the key for an unknown step, an unknown or missing parameter, or a value of the wrong type.
    ``steps``: the table of known kinds (``STEPS``; a caller with more kinds passes its own)."""
    if spec is None:
        return []
    if isinstance(spec, Step):
        return [spec]
    if isinstance(spec, str):
        out = []
        for part in (p.strip() for p in spec.split("+")):
            if not part or part == "none":
                continue
            kind, _, args = part.partition(":")
            params = {}
            for item in (a.strip() for a in args.split(",") if a.strip()):
                key, eq, value = item.partition("=")
                if not eq:
                    raise ConfigError(f"channel step {part!r}: expected key=value, got {item!r}")
                params[key.strip()] = value.strip()
            out.append(_make_step(kind.strip(), params, part, steps))
        return out
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind is None:
            raise ConfigError(f"channel step {spec!r}: missing key 'type' (one of {', '.join(steps)})")
        return [_make_step(str(kind), spec, str(kind), steps)]
    if isinstance(spec, (list, tuple)):
        return [step for item in spec for step in parse_channel(item, steps)]
    raise ConfigError(f"channel spec must be a string, dict or list, got {type(spec).__name__}")


def _make_step(kind: str, params: dict, where: str, steps: dict) -> Step:
    if kind not in steps:
        raise ConfigError(f"channel step {where!r}: unknown type {kind!r}; known: {', '.join(steps)}")
    types, required = steps[kind]
    out = {}
    for key, value in params.items():
        if key not in types:
            raise ConfigError(f"channel step {where!r}: unknown key {key!r}; known: {', '.join(types)}")
        out[key] = _convert(value, types[key], f"channel step {where!r}: key {key!r}")
    for key in required:
        if key not in out:
            raise ConfigError(f"channel step {where!r}: missing key {key!r}")
    return Step(kind, out)


def _convert(value, typ: type, where: str):
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None


def channel_to_string(spec) -> str:
    """Canonical one-line form of a spec ("" for none): ``"telephone+noise:snr_db=20.0"``."""
    return "+".join(str(step) for step in parse_channel(spec))


def apply_channel(audio: np.ndarray, sr: int, spec, *, seed: int = 0) -> np.ndarray:
    """Run ``audio`` (float32, (samples,), ``sr`` Hz) through the channel ``spec``; same length out.

    Step i of a random kind draws from ``seed`` combined with i, so the same seed reproduces the result."""
    out = _mono(audio)
    for i, step in enumerate(parse_channel(spec)):
        out = apply_step(out, sr, step, seed=step_seed(seed, i))
    return out


def step_seed(seed: int, index: int) -> int:
    """The seed of step ``index`` of a channel run with ``seed``: a 32-bit draw of SeedSequence([seed, index])."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0])


def apply_step(audio: np.ndarray, sr: int, step: Step, *, seed: int) -> np.ndarray:
    """One step of ``STEPS`` on ``audio`` (float32, (samples,), ``sr`` Hz); random kinds draw from ``seed``."""
    if step.kind == "telephone":
        return telephone(audio, sr, **step.params)
    if step.kind == "noise":
        return add_noise(audio, seed=seed, **step.params)
    if step.kind == "reverb":
        return reverb(audio, sr, seed=seed, **step.params)
    raise ConfigError(f"channel step {str(step)!r}: unknown type {step.kind!r}; known: {', '.join(STEPS)}")


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"channel: expected mono audio of shape (samples,), got shape {audio.shape}")
    if audio.size == 0:
        raise AudioError("channel: audio is empty")
    return audio


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))
