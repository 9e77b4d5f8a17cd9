"""The real TTS backends: the ones `make` installs speak for real; coqui and transformers on what is available.

No test downloads anything: piper and hibari use their bundled voices, espeak the Debian program, transformers
a tiny random model built here (it speaks noise, but through the real loading and generation code).
"""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from asr_analogy.io.audio import rms_dbfs
from asr_analogy.speech.tts import BackendUnavailableError, VoiceNotFoundError, get_backend, synthesize
from asr_analogy.speech.tts.espeak_backend import espeak_pitch, espeak_rate

SENTENCES = ["Please leave a message after the tone.", "Press 1 for sales."]
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed (make system-deps installs it)")


def check_corpus(manifest, n_expected):
    recs = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(recs) == n_expected
    for rec in recs:
        audio, sr = sf.read(manifest.parent / rec["audio_filepath"], dtype="float32")
        assert sr == 16_000 and audio.ndim == 1
        assert rec["duration"] > 0.4 and len(audio) == pytest.approx(rec["duration"] * 16_000, abs=1)
        assert rms_dbfs(audio) > -35.0  # speech, not silence
    return recs


@pytest.fixture(scope="module")
def engines():
    """One loaded instance per backend for the whole module (loading a Piper voice takes seconds)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = get_backend(name)
        return cache[name]

    return get


@pytest.mark.parametrize(
    "backend, voices",
    [
        ("piper", None),
        ("hibari", None),
        pytest.param("espeak", ["en-us", "en+m3"], marks=needs_espeak),
    ],
)
def test_installed_backends_speak_two_sentences(tmp_path, engines, backend, voices):
    manifest = synthesize(SENTENCES, tmp_path / "out", backend=engines(backend), voices=voices, workers=1,
                          cache_dir=tmp_path / "cache", progress=False)
    recs = check_corpus(manifest, 2)
    assert recs[1]["tts_text"] == "Press one for sales."
    assert {r["backend"] for r in recs} == {backend}


@needs_espeak
def test_two_workers_and_a_cached_rerun(tmp_path):
    manifest = synthesize(SENTENCES, tmp_path / "out", backend="espeak", voices=["en-us", "en-us+f2"],
                          samples_per_sentence=2, workers=2, channel="telephone", cache_dir=tmp_path / "cache",
                          progress=False)
    check_corpus(manifest, 4)
    again = synthesize(SENTENCES, tmp_path / "out2", backend="espeak", voices=["en-us", "en-us+f2"],
                       samples_per_sentence=2, workers=2, channel="telephone", cache_dir=tmp_path / "cache",
                       progress=False)
    summary = json.loads((again.parent / "synthesized.json").read_text())
    assert (summary["synthesized"], summary["from_cache"]) == (0, 4)


@pytest.mark.parametrize("backend", ["piper", "hibari"])
def test_seeded_backends_are_deterministic(engines, backend):
    engine = engines(backend)
    a, sr = engine.synthesize("Your call is important to us.", seed=3)
    b, _ = engine.synthesize("Your call is important to us.", seed=3)
    c, _ = engine.synthesize("Your call is important to us.", seed=4)
    assert sr in (22_050, 24_000)
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_piper_speed_and_graph_rewrite(engines):
    engine = engines("piper")
    engine.synthesize("Hello.")  # loads the voice
    (_, n_noise), = engine._loaded.values()
    assert n_noise == 2  # RandomNormalLike nodes fed from inputs: the duration predictor's and the prior's
    slow, _ = engine.synthesize("Thank you for calling.", seed=0, speed=1.0)
    fast, _ = engine.synthesize("Thank you for calling.", seed=0, speed=1.5)
    assert len(fast) / len(slow) == pytest.approx(1 / 1.5, rel=0.15)  # length scale 1/1.5


def test_missing_voices_list_the_installed_ones(tmp_path, engines):
    with pytest.raises(VoiceNotFoundError, match=r"piper: voice 'nobody' is not installed; available: joe"):
        engines("piper").check_voice("nobody")
    with pytest.raises(VoiceNotFoundError, match="no file"):
        engines("piper").check_voice(str(tmp_path / "missing.onnx"))
    # hibari voices other than 'heart' would be downloaded: refused unless asked for
    with pytest.raises(VoiceNotFoundError, match=r"available: heart\. 'emma' is a hibari voice that is not downloaded"):
        engines("hibari").check_voice("emma")


@needs_espeak
def test_espeak_voices_and_parameters(engines):
    engine = engines("espeak")
    assert {"en-us", "en-gb-scotland", "en"} <= set(engine.list_voices())
    assert engine.check_voice("en+m3") == "en+m3"
    with pytest.raises(VoiceNotFoundError, match="variant 'zz' is not installed"):
        engine.check_voice("en-us+zz")
    with pytest.raises(VoiceNotFoundError, match="voice 'xx-yy' is not installed; available: .*en-us"):
        engine.check_voice("xx-yy")
    # speed 175 wpm x factor; pitch 50 + 50/12 per semitone (espeak doubles the pitch over 50 units)
    assert [espeak_rate(s) for s in (1.0, 2.0, 0.25, 4.0)] == [175, 350, 80, 450]
    assert [espeak_pitch(p) for p in (0, 1, 12, -12, 24)] == [50, 54, 99, 0, 99]
    normal, _ = engine.synthesize("Please hold.", "en-us")
    fast, _ = engine.synthesize("Please hold.", "en-us", speed=2.0)
    assert len(fast) < 0.7 * len(normal)


def test_coqui_unavailable_is_a_clear_error():
    try:
        import TTS.api  # noqa: F401
    except Exception as exc:
        with pytest.raises(BackendUnavailableError, match="coqui: cannot import Coqui TTS"):
            get_backend("coqui", model_name="tts_models/en/ljspeech/vits")
        pytest.skip(f"coqui-tts cannot be imported here ({type(exc).__name__}: {exc})")
    with pytest.raises(BackendUnavailableError, match="model_path .* does not exist"):
        get_backend("coqui", model_path="/nonexistent/model.pth", config_path="/nonexistent/config.json")


def test_coqui_speaks_a_local_model(tmp_path):
    import os

    try:
        import TTS.api  # noqa: F401
    except Exception as exc:
        pytest.skip(f"coqui-tts cannot be imported here ({type(exc).__name__}: {exc})")
    model, config = os.environ.get("ASR_ANALOGY_COQUI_MODEL"), os.environ.get("ASR_ANALOGY_COQUI_CONFIG")
    if not (model and config):
        pytest.skip("set ASR_ANALOGY_COQUI_MODEL and ASR_ANALOGY_COQUI_CONFIG to a local Coqui model to run this")
    engine = get_backend("coqui", model_path=model, config_path=config)
    audio, sr = engine.synthesize(SENTENCES[0], seed=0)
    assert len(audio) / sr > 0.5 and rms_dbfs(audio) > -40


# ---- transformers on tiny random models -------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_vits(tmp_path_factory):
    import torch
    import transformers

    d = tmp_path_factory.mktemp("tiny_vits")
    chars = list("_ abcdefghijklmnopqrstuvwxyz'.,?!-")
    (d / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tok = transformers.VitsTokenizer(str(d / "vocab.json"), phonemize=False, pad_token="_", unk_token="_")
    cfg = transformers.VitsConfig(
        vocab_size=len(chars), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, ffn_dim=32, flow_size=16,
        spectrogram_bins=17, upsample_initial_channel=16, upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], duration_predictor_filter_channels=16,
        prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1, depth_separable_num_layers=1, sampling_rate=16_000,
    )
    torch.manual_seed(0)
    transformers.VitsModel(cfg).eval().save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_speecht5(tmp_path_factory):
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    d, vocoder = tmp_path_factory.mktemp("tiny_speecht5"), tmp_path_factory.mktemp("tiny_hifigan")
    chars = ["<pad>", "<s>", "</s>", "<unk>"] + list(" abcdefghijklmnopqrstuvwxyz'.,?!")
    tk = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(d)
    cfg = transformers.SpeechT5Config(
        vocab_size=len(chars), hidden_size=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, speech_decoder_prenet_units=16,
        speech_decoder_postnet_units=16, speech_decoder_postnet_layers=2, num_mel_bins=8, speaker_embedding_dim=8,
        max_speech_positions=600, max_text_positions=100,
    )
    torch.manual_seed(0)
    transformers.SpeechT5ForTextToSpeech(cfg).eval().save_pretrained(d)
    voc = transformers.SpeechT5HifiGanConfig(
        model_in_dim=8, upsample_initial_channel=16, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], sampling_rate=16_000, normalize_before=False,
    )
    transformers.SpeechT5HifiGan(voc).eval().save_pretrained(vocoder)
    return d, vocoder


def test_transformers_vits_tiny_random(tiny_vits):
    engine = get_backend("transformers", model=str(tiny_vits))
    assert engine.kind == "vits" and engine.list_voices() == ["default"]
    for text in SENTENCES:
        audio, sr = engine.synthesize(text.lower(), seed=1)
        assert sr == 16_000 and audio.dtype == np.float32 and len(audio) / sr > 0
    a, _ = engine.synthesize("press one", seed=1)
    assert np.array_equal(a, engine.synthesize("press one", seed=1)[0])
    fast, _ = engine.synthesize("press one", seed=1, speed=2.0)  # native: VITS speaking_rate
    assert len(fast) < len(a)


def test_transformers_vits_through_synthesize(tiny_vits, tmp_path):
    manifest = synthesize(["press one for sales"], tmp_path / "out", backend="transformers",
                          backend_options={"model": str(tiny_vits)}, workers=1, cache_dir=tmp_path / "c",
                          progress=False)
    rec = json.loads(manifest.read_text().splitlines()[0])
    assert rec["backend"] == "transformers" and rec["duration"] > 0


def test_transformers_speecht5_tiny_random(tiny_speecht5, tmp_path):
    model, vocoder = tiny_speecht5
    engine = get_backend("transformers", model=str(model), vocoder=str(vocoder))
    assert engine.kind == "speecht5"
    for voice in ("default", "random:3"):
        audio, sr = engine.synthesize("press one for sales", voice, seed=0)
        assert sr == 16_000 and len(audio) > 0
    xvector = tmp_path / "spk.npy"
    np.save(xvector, np.ones(8, np.float32))
    assert engine.check_voice(str(xvector)) == str(xvector)
    np.save(tmp_path / "wrong.npy", np.ones(9, np.float32))
    with pytest.raises(VoiceNotFoundError, match="has 9 values; this model needs 8"):
        engine.check_voice(str(tmp_path / "wrong.npy"))


def test_transformers_needs_a_model(tmp_path):
    with pytest.raises(BackendUnavailableError, match="pass the model"):
        get_backend("transformers")
    with pytest.raises(BackendUnavailableError, match="neither a local directory nor a hub id"):
        get_backend("transformers", model="someone/not-in-the-cache")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(BackendUnavailableError, match="model_type 'bert' is not a supported TTS model"):
        get_backend("transformers", model=str(tmp_path))
