"""Channel simulation: measured attenuation, SNR, RT60, and the spec parser."""

import numpy as np
import pytest

from asr_analogy.errors import AudioError, ConfigError
from asr_analogy.io.audio import rms_dbfs
from asr_analogy.speech.tts.channel import (
    Step,
    add_noise,
    apply_channel,
    channel_to_string,
    parse_channel,
    reverb,
    room_impulse_response,
    telephone,
)

SR = 16_000


def tone(freq_hz, seconds=1.0, amp=0.5):
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def gain_db(freq_hz, **kw):
    """Level change of a steady tone through the telephone channel, edges (filter start-up) left out."""
    x = tone(freq_hz)
    y = telephone(x, SR, **kw)
    middle = slice(2000, -2000)
    return rms_dbfs(y[middle]) - rms_dbfs(x[middle])


def test_telephone_band_pass_numbers():
    # Order-4 Butterworth run forward and backward: at 100 Hz, (300/100)^8 -> 2 x 38 dB; 6 kHz is also above
    # the 4 kHz Nyquist of the 8 kHz round trip, so the resampler's anti-alias filter removes it.
    assert gain_db(100) < -60
    assert gain_db(6000) < -60
    assert abs(gain_db(1000)) < 0.5
    # -3 dB per pass at the corner frequencies, so -6 dB after forward + backward
    assert gain_db(300) == pytest.approx(-6.0, abs=0.5)
    assert gain_db(3400) == pytest.approx(-6.0, abs=0.5)


def test_telephone_keeps_length_and_mulaw_is_a_small_error():
    x = tone(1000, seconds=0.5)
    y = telephone(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    z = telephone(x, SR, mulaw=True)
    err = z[2000:-2000] - y[2000:-2000]
    snr = 10 * np.log10(np.mean(y[2000:-2000].astype(float) ** 2) / np.mean(err.astype(float) ** 2))
    assert 25 < snr < 50  # 8-bit G.711 mu-law quantization: about 38 dB for a loud sine


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 35.0])
@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_hits_the_requested_snr(snr_db, color):
    speechlike = tone(220) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(SR) / SR)).astype(np.float32)
    noisy = add_noise(speechlike, snr_db, seed=7, color=color)
    noise = noisy.astype(np.float64) - speechlike
    measured = 10 * np.log10(np.mean(speechlike.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(measured - snr_db) < 0.5


def test_noise_is_seeded_and_pink_has_more_low_frequency_power():
    x = tone(440)
    assert np.array_equal(add_noise(x, 10, seed=1), add_noise(x, 10, seed=1))
    assert not np.array_equal(add_noise(x, 10, seed=1), add_noise(x, 10, seed=2))
    for color, low_over_high in (("white", (0.8, 1.25)), ("pink", (10.0, None))):
        n = add_noise(np.full(SR, 0.1, np.float32), 0, seed=3, color=color) - 0.1
        spec = np.abs(np.fft.rfft(n)) ** 2
        ratio = spec[50:500].mean() / spec[5000:7000].mean()  # 50-500 Hz vs 5-7 kHz (1 Hz bins)
        assert ratio > low_over_high[0]
        if low_over_high[1] is not None:
            assert ratio < low_over_high[1]


def test_noise_on_silence_is_an_error():
    with pytest.raises(AudioError, match="silent"):
        add_noise(np.zeros(100, np.float32), 10)


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_room_impulse_response_decays_60_db_in_rt60(rt60):
    ir = room_impulse_response(SR, rt60, seed=0)
    assert len(ir) == int(round(rt60 * SR))
    assert np.sum(ir**2) == pytest.approx(1.0)
    # Schroeder backward integration; the slope between -5 and -25 dB extrapolated to 60 dB (T20 method)
    energy = np.cumsum((ir**2)[::-1])[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    t5, t25 = np.argmax(decay_db <= -5) / SR, np.argmax(decay_db <= -25) / SR
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)


def test_reverb_keeps_length_and_level_and_smears_an_impulse():
    x = np.zeros(SR, np.float32)
    x[100] = 1.0
    y = reverb(x, SR, rt60=0.4, seed=0)
    assert y.shape == x.shape
    assert rms_dbfs(y) == pytest.approx(rms_dbfs(x), abs=0.01)
    # energy after the direct sound: 100 ms later the tail is still there, 0.6 s later it is 60+ dB down
    assert np.abs(y[100 + 1600 : 100 + 1700]).max() > 1e-3
    assert np.abs(y[100 + 9600 :]).max() < np.abs(y).max() * 1e-3


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, []),
        ("none", []),
        ("telephone", [Step("telephone", {})]),
        ("noise:snr_db=20", [Step("noise", {"snr_db": 20.0})]),
        ("telephone+noise:snr_db=20,color=pink", [Step("telephone", {}), Step("noise", {"snr_db": 20.0, "color": "pink"})]),
        ({"type": "reverb", "rt60": 0.3}, [Step("reverb", {"rt60": 0.3})]),
        (["reverb:rt60=0.3", {"type": "telephone", "mulaw": "true"}], [Step("reverb", {"rt60": 0.3}), Step("telephone", {"mulaw": True})]),
    ],
)
def test_parse_channel(spec, expected):
    assert parse_channel(spec) == expected


def test_channel_to_string_is_canonical():
    assert channel_to_string(["telephone", {"type": "noise", "snr_db": 20}]) == "telephone+noise:snr_db=20.0"
    assert channel_to_string(None) == ""


@pytest.mark.parametrize(
    "spec, message",
    [
        ("radio", "unknown type 'radio'"),
        ("noise", "missing key 'snr_db'"),
        ("noise:snr_db=loud", "key 'snr_db': expected float"),
        ("reverb:size=3", "unknown key 'size'"),
        ("telephone:mulaw=maybe", "expected true/false"),
        ({"snr_db": 3}, "missing key 'type'"),
        (42, "must be a string, dict or list"),
    ],
)
def test_bad_channel_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_channel(spec)


def test_apply_channel_chain_is_seeded():
    x = tone(500, seconds=0.5)
    spec = "telephone+noise:snr_db=15+reverb:rt60=0.2"
    a = apply_channel(x, SR, spec, seed=3)
    assert a.shape == x.shape
    assert np.array_equal(a, apply_channel(x, SR, spec, seed=3))
    assert not np.array_equal(a, apply_channel(x, SR, spec, seed=4))
    assert np.array_equal(apply_channel(x, SR, None), x)
