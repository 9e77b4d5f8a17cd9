"""CTranslate2 Whisper → transformers ``WhisperForConditionalGeneration``: the architecture and the weights.

Name mapping (CTranslate2 → transformers, N = layer index):

| CTranslate2                                         | transformers ``model.``                          |
|-----------------------------------------------------|--------------------------------------------------|
| encoder/conv1, encoder/conv2 (weight, bias)         | encoder.conv1, encoder.conv2                     |
| {enc,dec}oder/position_encodings/encodings          | {enc,dec}oder.embed_positions.weight             |
| {enc,dec}oder/layer_norm/{gamma,beta}               | {enc,dec}oder.layer_norm.{weight,bias}           |
| */layer_N/self_attention/linear_0 (q, k, v stacked) | layers.N.self_attn.{q,k,v}_proj (k has no bias)  |
| */layer_N/self_attention/linear_1                   | layers.N.self_attn.out_proj                      |
| */layer_N/self_attention/layer_norm                 | layers.N.self_attn_layer_norm                    |
| decoder/layer_N/attention/linear_0                  | layers.N.encoder_attn.q_proj                     |
| decoder/layer_N/attention/linear_1 (k, v stacked)   | layers.N.encoder_attn.{k,v}_proj                 |
| decoder/layer_N/attention/linear_2                  | layers.N.encoder_attn.out_proj                   |
| decoder/layer_N/attention/layer_norm                | layers.N.encoder_attn_layer_norm                 |
| */layer_N/ffn/linear_0, linear_1                    | layers.N.fc1, fc2                                |
| */layer_N/ffn/layer_norm                            | layers.N.final_layer_norm                        |
| decoder/embeddings/weight                           | decoder.embed_tokens.weight                      |
| decoder/projection/weight (alias when tied)         | proj_out.weight (tied to the embeddings)         |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.speech.models.ct2_format import Ct2Model, dequantized

_GELU = 3  # CTranslate2's ops::ActivationType::GELU (the exact erf GELU Whisper uses)


@dataclass
class WhisperDims:
    """Architecture read off the tensor shapes (and the stored head counts)."""

    vocab_size: int
    num_mel_bins: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_source_positions: int
    max_target_positions: int
    tied: bool

    def architecture(self) -> dict[str, int]:
        """The ``WhisperConfig`` keys of the architecture (every field but ``tied``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tied"}


def _scalar(model: Ct2Model, name: str) -> int | None:
    if not model.has(name):
        return None
    t = model.get(name)
    if t.numel() != 1:
        raise CheckpointError(f"{model.path}: attribute '{name}' should be a scalar, has shape {list(t.shape)}")
    return int(t.reshape(()).item())


def _num_layers(model: Ct2Model, side: str) -> int:
    pat = re.compile(rf"^{side}/layer_(\d+)/")
    idx = {int(m.group(1)) for n in model.variables for m in [pat.match(n)] if m}
    if not idx:
        raise CheckpointError(f"{model.path}: no '{side}/layer_N/' variables; is this a Whisper model?")
    if idx != set(range(len(idx))):
        raise CheckpointError(f"{model.path}: {side} layer indices are not contiguous: {sorted(idx)}")
    return len(idx)


def _heads(model: Ct2Model, side: str, d_model: int) -> int:
    heads = _scalar(model, f"{side}/num_heads")
    if heads is None:
        # Every Whisper size uses 64-dimensional heads (tiny 384/6 ... large 1280/20).
        if d_model % 64:
            raise CheckpointError(
                f"{model.path}: '{side}/num_heads' is missing and d_model {d_model} is not a multiple of 64"
            )
        heads = d_model // 64
    if heads <= 0 or d_model % heads:
        raise CheckpointError(f"{model.path}: {side} has {heads} heads, which does not divide d_model {d_model}")
    return heads


def whisper_dims(model: Ct2Model) -> WhisperDims:
    """Read the Whisper architecture from a parsed ``model.bin``; ``CheckpointError`` when it is not Whisper."""
    if model.spec != "WhisperSpec":
        raise CheckpointError(f"{model.path}: spec is '{model.spec}', expected 'WhisperSpec'")
    emb = model.get("decoder/embeddings/weight")
    vocab_size, d_model = emb.shape
    activation = _scalar(model, "decoder/activation")
    if activation is not None and activation != _GELU:
        raise CheckpointError(f"{model.path}: decoder activation id {activation} is not GELU ({_GELU})")
    for attr, want in (("decoder/pre_norm", 1), ("decoder/scale_embeddings", 0), ("decoder/alibi", 0)):
        have = _scalar(model, attr)
        if have is not None and have != want:
            raise CheckpointError(f"{model.path}: '{attr}' is {have}; Whisper needs {want}")
    tied = True
    if model.has("decoder/projection/weight"):
        proj = model.get("decoder/projection/weight")
        tied = model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight" or (
            proj.shape == emb.shape and torch.equal(proj, emb)
        )
    return WhisperDims(
        vocab_size=vocab_size,
        num_mel_bins=model.get("encoder/conv1/weight").shape[1],
        d_model=d_model,
        encoder_layers=_num_layers(model, "encoder"),
        decoder_layers=_num_layers(model, "decoder"),
        encoder_attention_heads=_heads(model, "encoder", d_model),
        decoder_attention_heads=_heads(model, "decoder", d_model),
        encoder_ffn_dim=model.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=model.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=model.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=model.get("decoder/position_encodings/encodings").shape[0],
        tied=tied,
    )


def _split_rows(model: Ct2Model, name: str, parts: int, d_model: int) -> list[torch.Tensor]:
    t = dequantized(model, name)
    if t.shape[0] != parts * d_model:
        raise CheckpointError(
            f"{model.path}: '{name}' has {t.shape[0]} rows, expected {parts} x d_model = {parts * d_model}"
        )
    return list(t.split(d_model, dim=0))


def _zero_k_bias(model: Ct2Model, name: str, k_bias: torch.Tensor) -> None:
    if torch.count_nonzero(k_bias):
        raise CheckpointError(
            f"{model.path}: the key slice of '{name}' is not zero (max |b| = {k_bias.abs().max().item():.3g}); "
            "transformers Whisper has no key bias, so this model cannot be imported exactly"
        )


def ct2_to_hf_state_dict(model: Ct2Model) -> tuple[dict[str, torch.Tensor], WhisperDims]:
    """Map a parsed CTranslate2 Whisper to a ``WhisperForConditionalGeneration`` state dict (float32).

    Returns (state_dict, dims). Weights are (out_features, in_features) in both formats, convolutions
    (out_channels, in_channels, kernel), so no transposes are needed. Raises ``CheckpointError`` when a
    variable is missing, has an unexpected shape, or a key-bias slice is non-zero.
    """
    dims = whisper_dims(model)
    d = dims.d_model
    sd: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def f32(name: str) -> torch.Tensor:
        used.add(model.aliases.get(name, name))
        used.add(name + "_scale")
        return dequantized(model, name)

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = f32(f"{src}/weight")
        sd[f"{dst}.bias"] = f32(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = f32(f"{src}/gamma")
        sd[f"{dst}.bias"] = f32(f"{src}/beta")

    def self_attention(dst: str, src: str) -> None:
        used.update({f"{src}/linear_0/weight", f"{src}/linear_0/bias"})
        wq, wk, wv = _split_rows(model, f"{src}/linear_0/weight", 3, d)
        bq, bk, bv = _split_rows(model, f"{src}/linear_0/bias", 3, d)
        _zero_k_bias(model, f"{src}/linear_0/bias", bk)
        sd[f"{dst}.q_proj.weight"], sd[f"{dst}.q_proj.bias"] = wq, bq
        sd[f"{dst}.k_proj.weight"] = wk
        sd[f"{dst}.v_proj.weight"], sd[f"{dst}.v_proj.bias"] = wv, bv
        linear(f"{dst}.out_proj", f"{src}/linear_1")

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        sd[f"{hf}.embed_positions.weight"] = f32(f"{side}/position_encodings/encodings")
        norm(f"{hf}.layer_norm", f"{side}/layer_norm")
        n_layers = dims.encoder_layers if side == "encoder" else dims.decoder_layers
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            self_attention(f"{dst}.self_attn", f"{src}/self_attention")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            if side == "decoder":
                cross = f"{src}/attention"
                linear(f"{dst}.encoder_attn.q_proj", f"{cross}/linear_0")
                used.update({f"{cross}/linear_1/weight", f"{cross}/linear_1/bias"})
                wk, wv = _split_rows(model, f"{cross}/linear_1/weight", 2, d)
                bk, bv = _split_rows(model, f"{cross}/linear_1/bias", 2, d)
                _zero_k_bias(model, f"{cross}/linear_1/bias", bk)
                sd[f"{dst}.encoder_attn.k_proj.weight"] = wk
                sd[f"{dst}.encoder_attn.v_proj.weight"], sd[f"{dst}.encoder_attn.v_proj.bias"] = wv, bv
                linear(f"{dst}.encoder_attn.out_proj", f"{cross}/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{cross}/layer_norm")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    sd["model.decoder.embed_tokens.weight"] = f32("decoder/embeddings/weight")
    if model.has("decoder/projection/weight"):
        proj = f32("decoder/projection/weight")
        used.add("decoder/projection/weight")
        if not dims.tied:
            sd["proj_out.weight"] = proj
    if model.has("decoder/projection/bias"):
        bias = f32("decoder/projection/bias")
        if torch.count_nonzero(bias):
            raise CheckpointError(f"{model.path}: 'decoder/projection/bias' is non-zero; Whisper has no output bias")
    if not dims.tied:
        # transformers keeps proj_out tied by default; an untied projection must be stored explicitly.
        sd.setdefault("proj_out.weight", sd["model.decoder.embed_tokens.weight"].clone())
    # Every tensor variable must have been used: an unknown one means a layout this importer does not know.
    scalars = {n for n, t in model.variables.items() if t.ndim == 0}
    unused = sorted(set(model.variables) - used - scalars)
    if unused:
        raise CheckpointError(f"{model.path}: variables not understood by the Whisper importer: {unused[:5]}")
    return sd, dims

