"""Real-recording conditions: SNR on active speech, no clipping, deterministic draws, babble donors, GSM."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from asr_analogy.errors import AudioError, ConfigError
from asr_analogy.io.audio import load_audio, write_wav
from asr_analogy.speech.degrade import (
    Degrader,
    MusicSource,
    active_snr_db,
    babble_pools,
    choose_donors,
    describe_condition,
    gsm_round_trip,
    mix_at_snr,
    parse_degrade,
    utterance_seed,
)

SR = 16000
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def _speech_with_pause(seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    """A 300 Hz tone over the first half (the 'speech'), digital silence over the second (a pause)."""
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * 300 * t)
    x[x.size // 2:] = 0.0
    return x.astype(np.float32)


def _snr_first_half(speech: np.ndarray, noise: np.ndarray) -> float:
    """The SNR by hand: mean squares over the first half only, where the tone is."""
    h = speech.size // 2
    return 10 * np.log10(np.mean(np.asarray(speech[:h], np.float64) ** 2) / np.mean(np.asarray(noise[:h], np.float64) ** 2))


def _music_dir(root, n_tracks=3, seconds=3.0):
    """Synthetic stand-in tracks: chords of decaying notes, a different key per track, 8 kHz like the package."""
    rng = np.random.default_rng(7)
    for k in range(n_tracks):
        t = np.arange(int(seconds * 8000)) / 8000
        notes = sum(np.sin(2 * np.pi * f * t) for f in 220 * 2 ** (rng.integers(0, 12, 3) / 12) * (k + 1))
        write_wav(root / f"track{k}.wav", (0.2 * notes * (0.6 + 0.4 * np.cos(2 * np.pi * 2 * t))).astype(np.float32), 8000)
    return sorted(root.glob("*.wav"))


@pytest.mark.parametrize("snr", [5.0, 0.0, 20.0])
def test_mix_hits_the_snr_on_active_speech_not_on_the_whole_clip(snr):
    x = _speech_with_pause()
    noise = np.random.default_rng(0).standard_normal(x.size)
    mix = mix_at_snr(x, noise, snr, SR)
    np.testing.assert_allclose(mix.audio, (mix.speech + mix.noise).astype(np.float32))
    np.testing.assert_allclose(mix.speech, x * (mix.speech[100] / x[100]), atol=1e-12)  # speech only scaled
    assert _snr_first_half(mix.speech, mix.noise) == pytest.approx(snr, abs=0.01)
    assert active_snr_db(mix.speech, mix.noise, SR) == pytest.approx(snr, abs=1e-6)
    whole = 10 * np.log10(np.mean(mix.speech**2) / np.mean(mix.noise**2))
    assert whole == pytest.approx(snr - 10 * np.log10(2), abs=0.1)  # the pause halves the whole-clip power


def test_a_loud_mix_is_scaled_down_as_a_whole_and_keeps_its_snr():
    x = _speech_with_pause(amp=0.95)
    mix = mix_at_snr(x, np.random.default_rng(1).standard_normal(x.size), 0.0, SR)
    assert np.max(np.abs(mix.audio)) == pytest.approx(0.99, abs=1e-6)
    assert _snr_first_half(mix.speech, mix.noise) == pytest.approx(0.0, abs=0.01)
    assert np.max(np.abs(mix.speech)) < 0.95


def test_mix_refuses_silent_speech_and_noise_silent_under_it():
    x = _speech_with_pause()
    with pytest.raises(AudioError, match="silent speech"):
        mix_at_snr(np.zeros_like(x), np.ones_like(x), 5, SR)
    quiet_under_speech = np.r_[np.zeros(x.size // 2), np.ones(x.size - x.size // 2)]
    with pytest.raises(AudioError, match="noise is silent under the speech"):
        mix_at_snr(x, quiet_under_speech, 5, SR)


def test_music_condition_is_deterministic_and_differs_between_utterances(tmp_path):
    music = MusicSource(_music_dir(tmp_path), SR)
    d = Degrader("music:snr_db=5", music=music)
    x = _speech_with_pause()
    a, drawn_a = d.apply(x, utterance_seed("general/activated"))
    b, drawn_b = Degrader("music:snr_db=5", music=MusicSource(_music_dir(tmp_path), SR)).apply(
        x, utterance_seed("general/activated"))
    c, drawn_c = d.apply(x, utterance_seed("general/added"))
    assert a.tobytes() == b.tobytes() and drawn_a == drawn_b
    assert drawn_c != drawn_a and not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32
    other_seed, drawn_s = d.apply(x, utterance_seed("general/activated", seed=1))
    assert drawn_s != drawn_a


def test_utterance_seed_is_the_sha1_of_the_key_and_the_seed():
    import hashlib

    assert utterance_seed("general/added") == int(hashlib.sha1(b"general/added").hexdigest()[:8], 16)
    assert utterance_seed("general/added", 3) == int(hashlib.sha1(b"general/added#3").hexdigest()[:8], 16)


def _music_at_5db_within_half_a_db(files, tmp_path):
    """Mix real or stand-in music at 5 dB under a tone-and-pause clip, write it as 16-bit wav, read it back and
    measure the SNR by hand over the tone (the music drawn again with the same seed)."""
    x = _speech_with_pause(seconds=2.0)
    seed = utterance_seed("voicemail/vm-intro")
    y, drawn = Degrader("music:snr_db=5", music=MusicSource(files, SR)).apply(x, seed)
    back = load_audio(write_wav(tmp_path / "mix.wav", y, SR))
    gain = float(np.dot(back[: x.size // 2], x[: x.size // 2]) / np.dot(x[: x.size // 2], x[: x.size // 2]))
    # speech part exactly proportional to x; music part = the rest (its correlation with a tone is tiny)
    snr = _snr_first_half(gain * x, back - gain * x)
    assert snr == pytest.approx(5.0, abs=0.5), drawn
    return drawn


def test_snr_within_half_a_db_on_stand_in_music(tmp_path):
    _music_at_5db_within_half_a_db(_music_dir(tmp_path), tmp_path)


@pytest.mark.real_corpus
def test_snr_within_half_a_db_on_real_hold_music(tmp_path):
    from data_prep import hold_music
    from data_prep._common import CorpusError

    try:
        files = hold_music.music_files(hold_music.download(echo=None))
    except CorpusError as exc:
        pytest.skip(f"{hold_music.PACKAGE} cannot be fetched here: {exc}")
    drawn = _music_at_5db_within_half_a_db(files, tmp_path)
    assert drawn["music"][0].split("@")[0] in {f.name for f in files}


def _records():
    return [{"id": f"{d}/{s}{i}", "domain": d, "split": s}
            for d in ("alpha", "beta", "gamma", "delta") for s in ("train", "dev", "test") for i in range(3)]


def test_babble_never_takes_target_or_same_split_or_test_utterances():
    recs = _records()
    by_id = {r["id"]: r for r in recs}
    pools = babble_pools(recs, exclude_domains=["alpha", "beta"])
    assert pools["train"] == [f"{d}/dev{i}" for d in ("delta", "gamma") for i in range(3)]
    assert pools["dev"] == [f"{d}/train{i}" for d in ("delta", "gamma") for i in range(3)]
    assert pools["test"] == sorted(f"{d}/{s}{i}" for d in ("gamma", "delta") for s in ("train", "dev") for i in range(3))
    audio = {r["id"]: np.sin(np.arange(SR // 2) * (0.01 + 0.001 * k)).astype(np.float32) for k, r in enumerate(recs)}
    d = Degrader("babble:snr_db=5,talkers=3", donor_audio=audio.__getitem__)
    for r in recs:
        y, drawn = d.apply(_speech_with_pause(), utterance_seed(r["id"]), pools[r["split"]])
        (ids,) = drawn["babble"]
        assert len(ids) == 3 == len(set(ids))
        for uid in ids:
            assert by_id[uid]["domain"] not in ("alpha", "beta")
            assert by_id[uid]["split"] not in (r["split"], "test")


def test_choose_donors_is_deterministic_and_refuses_an_empty_pool():
    pool = [f"u{i}" for i in range(10)]
    assert choose_donors(pool, 4, 3) == choose_donors(list(reversed(pool)), 4, 3)
    assert choose_donors(pool, 4, 3) != choose_donors(pool, 4, 4)
    assert sorted(choose_donors(pool[:2], 4, 3)) == ["u0", "u1"]
    with pytest.raises(AudioError, match="no utterance to take babble from"):
        choose_donors([], 4, 0)


@needs_sox
@pytest.mark.parametrize("sr", [16000, 8000])
def test_gsm_round_trip_changes_the_audio_but_keeps_length_and_rate(sr):
    t = np.arange(int(0.77 * sr)) / sr  # not a whole number of 20 ms GSM frames
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    y = gsm_round_trip(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) > 0.01  # a lossy codec
    assert np.corrcoef(x, y)[0, 1] > 0.8  # ... that keeps the tone
    assert gsm_round_trip(x, sr).tobytes() == y.tobytes()


@needs_sox
def test_chained_condition_runs_left_to_right(tmp_path):
    music = MusicSource(_music_dir(tmp_path), SR)
    x = _speech_with_pause()
    seed = utterance_seed("a/b")
    mixed, _ = Degrader("music:snr_db=5", music=music).apply(x, seed)
    both, drawn = Degrader("music:snr_db=5+gsm", music=music).apply(x, seed)
    np.testing.assert_array_equal(both, gsm_round_trip(mixed, SR))
    assert list(drawn) == ["music"]


def test_white_noise_steps_keep_the_channel_seeds():
    from asr_analogy.speech.tts.channel import apply_channel

    x = _speech_with_pause()
    y, drawn = Degrader("noise:snr_db=10").apply(x, 1234)
    np.testing.assert_array_equal(y, apply_channel(x, SR, "noise:snr_db=10", seed=1234))
    assert drawn == {}


@pytest.mark.parametrize("spec, match", [
    ("musik:snr_db=5", "unknown type 'musik'"),
    ("music", "missing key 'snr_db'"),
    ("music:snr=5", "unknown key 'snr'"),
    ("babble:snr_db=5,talkers=0", "'talkers' must be at least 1"),
    ("gsm:rate=8000", "unknown key 'rate'"),
])
def test_bad_conditions_name_the_step_and_key(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_degrade(spec)


def test_degrader_needs_its_noise():
    with pytest.raises(ConfigError, match="no music tracks"):
        Degrader("music:snr_db=5")
    with pytest.raises(ConfigError, match="no donor utterances"):
        Degrader("babble:snr_db=5")


def test_conditions_are_named_for_what_they_are():
    assert describe_condition("music:snr_db=5") == (
        "real speech and real hold music, mixed by the recipe at 5 dB SNR; TTS audio clean")
    assert describe_condition("music:snr_db=5+gsm") == (
        "real speech and real hold music, mixed by the recipe at 5 dB SNR, then a GSM 06.10 codec round trip "
        "(sox, 8 kHz); TTS audio clean")
    assert describe_condition(None) == "real speech as recorded (no degradation); TTS audio clean"
    assert "synthetic white noise at 10 dB SNR" in describe_condition("noise:snr_db=10")
