"""The safetensors file format, in one place: dtype codes, tensor specs, and the header (parsed and written).

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON (``{name: {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, offsets relative to the end of the
header) and then the tensors' raw little-endian bytes, contiguous, in any order.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asr_analogy.errors import CheckpointError

# safetensors dtype codes <-> torch dtypes.
ST_TO_TORCH: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
    "BOOL": torch.bool,
}
TORCH_TO_ST: dict[torch.dtype, str] = {v: k for k, v in ST_TO_TORCH.items()}

_MAX_HEADER_BYTES = 100_000_000


def dtype_name(dtype: torch.dtype) -> str:
    """safetensors code of a torch dtype (``torch.float32`` -> ``"F32"``)."""
    try:
        return TORCH_TO_ST[dtype]
    except KeyError:
        raise CheckpointError(f"dtype {dtype} cannot be stored in safetensors") from None


def natural_key(name: str) -> tuple:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, dtype and shape (an output announced before its data, or one found in a header)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class StoredTensor(TensorSpec):
    """A tensor as a safetensors header lays it out: its spec and the absolute byte offset of its data."""

    offset: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, validated header: the tensors (by name), ``__metadata__``, and the file size in bytes."""

    tensors: dict[str, StoredTensor]
    metadata: dict[str, str]
    size: int


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Parse and validate a safetensors header without reading tensor data.

    Checks that the JSON is well formed, dtypes are known, byte ranges match shapes, are contiguous and end
    exactly at the end of the file. Raises ``CheckpointError`` naming the file when it is missing, truncated or
    malformed.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: file does not exist")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{path}: corrupt or truncated safetensors file (header claims {n} bytes, file has {size})"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    tensors = {}
    spans = []
    for name, info in header.items():
        try:
            dtype = ST_TO_TORCH[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry {info!r}") from None
        if any(s < 0 for s in shape) or end - begin != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(
                f"{path}: tensor {name!r}: byte range {begin}..{end} does not match shape {list(shape)} "
                f"and dtype {info['dtype']}"
            )
        tensors[name] = StoredTensor(name, dtype, shape, data_start + begin)
        spans.append((begin, end, name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise CheckpointError(f"{path}: tensor {name!r} starts at byte {begin}, expected {pos} (corrupt header)")
        pos = end
    if data_start + pos != size:
        if data_start + pos > size:
            raise CheckpointError(
                f"{path}: truncated safetensors file: header describes {data_start + pos} bytes, "
                f"file has {size}"
            )
        raise CheckpointError(f"{path}: {size - data_start - pos} unexpected bytes after the last tensor")
    return SafetensorsHeader(tensors, dict(metadata), size)


def encode_header(specs: Sequence[TensorSpec], metadata: Mapping[str, str] | None) -> bytes:
    """The 8-byte length plus JSON header of a file holding ``specs`` in that order (data 8-byte aligned)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    pos = 0
    for s in specs:
        header[s.name] = {"dtype": dtype_name(s.dtype), "shape": list(s.shape), "data_offsets": [pos, pos + s.nbytes]}
        pos += s.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


def read_weight_map(index_path: Path) -> dict[str, str]:
    """``weight_map`` ({tensor name: shard file name}) of a ``*.index.json``; ``CheckpointError`` when invalid."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"{index_path}: not a valid index (expected JSON with a 'weight_map' object)") from None
    return weight_map


def index_json(weight_map: Mapping[str, str], total_size: int) -> dict:
    """The ``model.safetensors.index.json`` content for a sharded checkpoint (names in natural order)."""
    ordered = dict(sorted(weight_map.items(), key=lambda kv: natural_key(kv[0])))
    return {"metadata": {"total_size": total_size}, "weight_map": ordered}
