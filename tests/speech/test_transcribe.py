"""Batched transcription equals one-clip-at-a-time decoding, keeps manifest order and fields, survives bad clips."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError
from asr_analogy.io.audio import load_audio
from asr_analogy.io.manifest import read_manifest, write_manifest
from asr_analogy.speech.transcribe import load_asr_model, transcribe


def _one_by_one_whisper(model, processor, records, **gen):
    """Reference decoding: each clip alone through feature extraction, generate and decode."""
    out = []
    for rec in records:
        feats = processor.feature_extractor(load_audio(rec["audio_filepath"]), sampling_rate=16000,
                                            return_tensors="pt").input_features
        with torch.inference_mode():
            ids = model.generate(feats, **gen)
        out.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    return out


def _distinct(hypotheses: list[str]) -> bool:
    """Each clip got its own non-empty text: a result put back on the wrong record after sorting by length shows."""
    return all(hypotheses) and len(set(hypotheses)) == len(hypotheses)


@pytest.fixture(scope="module")
def mixed_manifest(speech_manifest, tmp_path_factory):
    """The synthesized clips in an order that is not sorted by length, plus a missing and a corrupt clip."""
    recs = read_manifest(speech_manifest)
    root = tmp_path_factory.mktemp("mixed")
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    recs = [recs[1], {"audio_filepath": str(root / "missing.wav"), "text": "gone", "domain": "ivr", "speaker": "x"},
            recs[0], {"audio_filepath": str(corrupt), "text": "broken", "domain": "voicemail"}, recs[2]]
    return write_manifest(recs, root / "manifest.jsonl")


def test_cli_round_trip_matches_one_by_one(tiny_whisper_dir, mixed_manifest, tmp_path):
    out = tmp_path / "hyps.jsonl"
    res = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(mixed_manifest), str(out),
                                    "--batch-size", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "5 clips transcribed, 2 unreadable" in res.output
    got = read_manifest(out)
    src = read_manifest(mixed_manifest)
    # Manifest order and fields are kept (audio paths resolve to the same files); 'hypothesis' is added.
    assert [{k: v for k, v in g.items() if k not in ("hypothesis", "error")} for g in got] == src
    assert "does not exist" in got[1]["error"] and got[1]["hypothesis"] == ""
    assert "cannot decode" in got[3]["error"] and got[3]["hypothesis"] == ""
    good = [i for i in range(5) if i not in (1, 3)]
    assert all("error" not in got[i] for i in good)

    model, processor = load_asr_model(tiny_whisper_dir, "cpu")
    expected = _one_by_one_whisper(model, processor, read_manifest(mixed_manifest)[::2])
    assert [got[i]["hypothesis"] for i in good] == expected
    assert _distinct(expected)

    # An existing output is refused; nothing is changed.
    before = out.read_bytes()
    res = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(mixed_manifest), str(out)])
    assert res.exit_code == 2 and "already exists" in res.output and out.read_bytes() == before


def test_beam_search_matches_generate(tiny_whisper_dir, speech_manifest):
    model, processor = load_asr_model(tiny_whisper_dir, "cpu")
    recs = read_manifest(speech_manifest)
    got = transcribe(model, recs, processor=processor, batch_size=3, num_beams=3, progress=False)
    expected = _one_by_one_whisper(model, processor, recs, num_beams=3)
    assert [r["hypothesis"] for r in got] == expected
    assert _distinct(expected)


def test_shorter_encoder_window_is_honoured(tiny_whisper_dir, speech_manifest, tmp_path):
    from asr_analogy.speech.models.whisper import set_audio_context

    model, processor = load_asr_model(tiny_whisper_dir, "cpu")
    full_processor = copy.deepcopy(processor)
    set_audio_context(model, processor, 8)  # 400 encoder positions, 800 mel frames
    model.save_pretrained(tmp_path / "short")
    processor.save_pretrained(tmp_path / "short")
    recs = read_manifest(speech_manifest)
    expected = _one_by_one_whisper(model, processor, recs)
    # From the saved directory (its feature extractor pads to 8 s) ...
    from_dir = transcribe(tmp_path / "short", recs, device="cpu", progress=False)
    # ... and in memory with a 30-s feature extractor: features are padded to the model's window instead.
    in_memory = transcribe(model, recs, processor=full_processor, progress=False)
    assert [r["hypothesis"] for r in from_dir] == expected == [r["hypothesis"] for r in in_memory]
    assert _distinct(expected)


@pytest.fixture(scope="module")
def tiny_ctc_dir(tmp_path_factory):
    """A seeded random 2-layer Wav2Vec2 CTC model (hidden 32) with a character vocabulary."""
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    out = tmp_path_factory.mktemp("tiny-ctc")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (out / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(out / "vocab.json"), word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=True)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0,
                            feat_extract_norm="layer", do_stable_layer_norm=True)
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(out / "model")
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(out / "model")
    return out / "model"


def test_ctc_model_matches_one_by_one_argmax(tiny_ctc_dir, mixed_manifest, tmp_path):
    got = transcribe(tiny_ctc_dir, mixed_manifest, tmp_path / "hyps.jsonl", batch_size=4, device="cpu",
                     progress=False)
    model, processor = load_asr_model(tiny_ctc_dir, "cpu")
    expected = []
    for rec in read_manifest(mixed_manifest)[::2]:
        inputs = processor(load_audio(rec["audio_filepath"]), sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            logits = model(inputs.input_values).logits
        expected.append(processor.batch_decode(logits.argmax(-1))[0].strip())
    assert [got[i]["hypothesis"] for i in (0, 2, 4)] == expected
    assert any(expected)
    assert [r.get("error") is not None for r in got] == [False, True, False, True, False]
    assert len((tmp_path / "hyps.jsonl").read_text().splitlines()) == 5
    with pytest.raises(ConfigError, match="only available for Whisper"):
        transcribe(tiny_ctc_dir, mixed_manifest, num_beams=2, device="cpu")


def test_error_paths(tiny_whisper_dir, speech_manifest, tmp_path):
    out = tmp_path / "hyps.jsonl"
    res = CliRunner().invoke(main, ["transcribe", str(tmp_path / "no-model"), str(speech_manifest), str(out)])
    assert res.exit_code == 2 and "no-model" in res.output and not out.exists()
    res = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(tmp_path / "none.jsonl"), str(out)])
    assert res.exit_code == 2 and "none.jsonl" in res.output and not out.exists()
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(ConfigError, match="empty-dir"):
        transcribe(tmp_path / "empty-dir", speech_manifest)
    with pytest.raises(ConfigError, match="batch_size"):
        transcribe(tiny_whisper_dir, speech_manifest, batch_size=0)
    model, _ = load_asr_model(tiny_whisper_dir, "cpu")
    model.name_or_path = ""
    with pytest.raises(ConfigError, match="needs processor"):
        transcribe(model, speech_manifest)
