"""Reading CTranslate2's ``model.bin`` without the CTranslate2 runtime: tensors as stored, and dequantization.

Layout (binary version 6, little endian)::

    u32 version | string spec name ("WhisperSpec") | u32 revision | u32 variable count
    per variable: string name | u8 rank | u32 per dimension | u8 dtype id | u32 byte count | raw bytes
    u32 alias count | (string alias, string target) pairs

A string is a u16 length that counts a trailing NUL, then the bytes (the NUL included). Dtype ids: 0 float32,
1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Int8/int16-quantized weights carry a ``<name>_scale`` variable
(int8: one float per output row, int16: one scalar) with ``quantized = round(weight * scale)``; ``dequantized``
undoes it (``weight = quantized / scale``), so an imported model is an approximation of the original float
weights to within half a quantization step.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from asr_analogy.errors import CheckpointError

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

