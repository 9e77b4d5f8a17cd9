"""Compressed task vectors: ``compress`` writes one, ``open_reader`` reads any checkpoint and expands a
compressed vector tensor by tensor, so ``apply_vector``, ``merge`` (``vector:`` entries), ``TaskVector.load``,
the store and the recipe read it like the full vector.

Method (``--method``), combinable with commas, e.g. ``topk:0.1,int8`` (encodings in ``ops.compress``):

| part          | effect                                                                                   |
|---------------|------------------------------------------------------------------------------------------|
| topk:FRACTION | keep the FRACTION largest-magnitude entries of each tensor (flat indices + values)        |
| lowrank:RANK  | 2-D tensors as rank-RANK SVD factors; other tensors kept (or top-k'd when topk is given)  |
| int8 / int4   | the stored float arrays (values, factors or the dense tensor) quantized with one scale each |

On disk: one safetensors file; for a vector tensor ``N`` the parts ``N/data`` (dense), ``N/indices`` and
``N/values`` (top-k) or ``N/a`` and ``N/b`` (low rank), quantized arrays stored as int8 codes or uint8 (two int4
codes a byte). ``__metadata__``: the vector's own metadata (``merge.task_vector``) with
``asr_analogy_kind=task_vector_compressed``, ``compression`` (the method) and ``compression_layout``: JSON
``{N: {"shape", "dtype", "encoding", "arrays": {part: {"shape", "bits", "scale"}}}}``. A reader that does not
expand it (an older version) refuses it instead of misreading it, because its kind is not ``task_vector``.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from asr_analogy.errors import CheckpointError, ConfigError, MergeError
from asr_analogy.io.checkpoint import CheckpointReader, TensorSpec, dtype_name, natural_key, plan_shards, write_safetensors_file
from asr_analogy.io.checkpoint.format import ST_TO_TORCH
from asr_analogy.merge.vector_format import COMPRESSED_KIND, KIND, read_vector_metadata
from asr_analogy.ops import compress as codec

_SPILL_CHUNK = 16 << 20  # bytes copied from the spill file at a time


@dataclass(frozen=True)
class Compression:
    """A parsed ``--method``: top-k fraction, low rank, quantization bits (None: not used)."""

    topk: float | None = None
    rank: int | None = None
    bits: int | None = None

    @classmethod
    def parse(cls, method: str) -> "Compression":
        """``"topk:0.1,int8"`` -> Compression(topk=0.1, bits=8); ``ConfigError`` naming the bad part."""
        found: dict = {}
        for part in (p.strip() for p in str(method).split(",")):
            kind, _, arg = part.partition(":")
            key = {"topk": "topk", "lowrank": "rank", "int8": "bits", "int4": "bits"}.get(kind)
            if key is None or key in found:
                why = "given twice" if key in found else "unknown"
                raise ConfigError(f"compression {method!r}: {part!r} {why} (use topk:FRACTION, lowrank:RANK, int8 or int4, "
                                  "combined with commas)")
            try:
                if key == "topk":
                    value = float(arg)
                    ok = 0 < value <= 1
                elif key == "rank":
                    value = int(arg)
                    ok = value >= 1
                else:
                    value, ok = (8 if kind == "int8" else 4), arg == ""
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"compression {method!r}: bad {part!r} (topk:F needs 0 < F <= 1, lowrank:R an integer R >= 1, "
                                  "int8/int4 no argument)")
            found[key] = value
        return cls(**found)


def encode(x: torch.Tensor, how: Compression) -> tuple[dict, dict[str, torch.Tensor]]:
    """One vector tensor compressed: its layout entry and its parts ``{part name: tensor}``."""
    if how.rank is not None and x.dim() == 2:
        encoding, arrays = "lowrank", dict(zip(("a", "b"), codec.lowrank_encode(x, how.rank)))
    elif how.topk is not None:
        encoding, arrays = "topk", dict(zip(("indices", "values"), codec.topk_encode(x, how.topk)))
    else:
        encoding, arrays = "dense", {"data": x.reshape(-1)}
    entry = {"shape": list(x.shape), "dtype": dtype_name(x.dtype), "encoding": encoding, "arrays": {}}
    parts = {}
    for key, arr in arrays.items():
        spec = {"shape": list(arr.shape)}
        if how.bits is not None and arr.is_floating_point():
            arr, scale = codec.quantize(arr, how.bits)
            spec.update(bits=how.bits, scale=scale)
        entry["arrays"][key] = spec
        parts[key] = arr.contiguous()
    return entry, parts


def decode(entry: dict, part) -> torch.Tensor:
    """The tensor of a layout ``entry``; ``part(key)`` returns the stored part ``key``."""
    arrays = {}
    for key, spec in entry["arrays"].items():
        shape = tuple(spec["shape"])
        raw = part(key)
        arrays[key] = codec.dequantize(raw, spec["scale"], spec["bits"], math.prod(shape)).reshape(shape) if spec.get(
            "bits") else raw.reshape(shape)
    shape, encoding = tuple(entry["shape"]), entry["encoding"]
    if encoding == "lowrank":
        work = torch.promote_types(arrays["a"].dtype, torch.float32)
        x = codec.lowrank_decode(arrays["a"].to(work), arrays["b"].to(work))
    elif encoding == "topk":
        x = codec.topk_decode(arrays["indices"], arrays["values"], shape)
    else:
        x = arrays["data"]
    return x.reshape(shape).to(ST_TO_TORCH[entry["dtype"]])


class ExpandingReader:
    """A ``CheckpointReader`` look-alike over a compressed vector: the original tensor names, shapes and dtypes,
    and their values expanded one tensor at a time (the last expanded tensor is kept for the chunked reads that
    follow). Memory: one expanded tensor."""

    def __init__(self, path: str | os.PathLike, raw: CheckpointReader | None = None):
        self.path = Path(path)
        self.raw = raw if raw is not None else CheckpointReader(path)
        meta = self.raw.metadata()
        try:
            self.layout: dict[str, dict] = json.loads(meta["compression_layout"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: compressed vector without a readable compression_layout ({exc})") from None
        self._metadata = {**meta, "asr_analogy_kind": KIND}
        self._fingerprint: str | None = None
        self._cached: tuple[str, torch.Tensor] | None = None

    def names(self) -> list[str]:
        return sorted(self.layout, key=natural_key)

    def __contains__(self, name: str) -> bool:
        return name in self.layout

    def __len__(self) -> int:
        return len(self.layout)

    def _entry(self, name: str) -> dict:
        if name not in self.layout:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}")
        return self.layout[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entry(name)["shape"])

    def dtype(self, name: str) -> torch.dtype:
        return ST_TO_TORCH[self._entry(name)["dtype"]]

    def numel(self, name: str) -> int:
        return math.prod(self.shape(name))

    def nbytes(self, name: str) -> int:
        return self.numel(name) * self.dtype(name).itemsize

    def metadata(self) -> dict[str, str]:
        return dict(self._metadata)

    def flat(self, name: str) -> torch.Tensor:
        """The expanded tensor, flattened (a new tensor: writes never reach the file)."""
        if self._cached is None or self._cached[0] != name:
            self._cached = None  # drop the previous tensor before expanding the next
            x = decode(self._entry(name), lambda key: self.raw.get(f"{name}/{key}"))
            self._cached = (name, x.reshape(-1).contiguous())
        return self._cached[1]

    def get(self, name: str) -> torch.Tensor:
        return self.flat(name).reshape(self.shape(name))

    def read_into(self, name: str, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(self.flat(name)[start:stop])

    def raw_chunks(self, name: str, chunk_bytes: int = 16 << 20) -> Iterator[memoryview]:
        data = memoryview(self.flat(name).view(torch.uint8).numpy()).cast("B")
        for pos in range(0, len(data), chunk_bytes):
            yield data[pos: pos + chunk_bytes]

    fingerprint = CheckpointReader.fingerprint  # the same scheme over the expanded tensors

    def prefetch(self, name: str) -> None:
        """Nothing to prefetch: a tensor is expanded in memory when first read."""

    def release(self, name: str, start: int = 0, stop: int | None = None) -> None:
        """Nothing mapped to release."""

    def close(self) -> None:
        self._cached = None
        self.raw.close()

    def __enter__(self) -> "ExpandingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExpandingReader({str(self.path)!r}, {len(self)} tensors)"


def open_reader(path: str | os.PathLike) -> CheckpointReader | ExpandingReader:
    """A reader of the checkpoint at ``path``: ``CheckpointReader``, or ``ExpandingReader`` for a compressed
    vector (recognised by its metadata)."""
    raw = CheckpointReader(path)
    if raw.metadata().get("asr_analogy_kind") != COMPRESSED_KIND:
        return raw
    try:
        return ExpandingReader(path, raw)
    except BaseException:
        raw.close()
        raise


@dataclass(frozen=True)
class CompressResult:
    """Where the compressed vector went and its size: tensor bytes against the same tensors in float32."""

    path: Path
    nbytes: int
    float32_nbytes: int

    @property
    def share(self) -> float:
        """nbytes / float32_nbytes (0.1 = a tenth of the float32 size)."""
        return self.nbytes / self.float32_nbytes if self.float32_nbytes else 0.0


def compress(vector_path: str | os.PathLike, out: str | os.PathLike, method: str, *, force: bool = False,
             progress: bool = True) -> CompressResult:
    """Write the task vector at ``vector_path`` (full or already compressed) compressed by ``method`` (see the
    module docstring) to ``out`` (a ``.safetensors`` file), atomically. Tensor by tensor: each one's parts go
    to a spill file beside ``out`` and are copied into place once every part's size is known (memory: one
    tensor). Raises ``ConfigError`` for a bad method, ``CheckpointError`` when the input is not a task vector."""
    from tqdm.auto import tqdm

    from asr_analogy.io.atomic import refuse_overlap
    from asr_analogy.merge.stream import refuse_existing

    how = Compression.parse(method)
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: a compressed vector is one .safetensors file (name it *.safetensors)")
    refuse_overlap(out, [vector_path])
    refuse_existing(out, force)
    meta = read_vector_metadata(vector_path)
    meta.pop("compression", None), meta.pop("compression_layout", None)
    layout: dict[str, dict] = {}
    spilled: dict[str, tuple[int, torch.dtype, tuple[int, ...]]] = {}  # part name -> (offset, dtype, shape)
    float32_nbytes = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_reader(vector_path) as src, tempfile.TemporaryFile(dir=out.parent, prefix=f".{out.name}.spill-") as spill:
        for name in tqdm(src.names(), desc="compress", disable=not progress, leave=False):
            tensor = src.get(name)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                kind = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
                raise MergeError(f"vector {vector_path}: tensor {name!r} contains {kind}; a compressed vector must be "
                                 "finite (nothing was written)")
            entry, parts = encode(tensor, how)
            layout[name] = entry
            float32_nbytes += 4 * src.numel(name)
            for key, arr in parts.items():
                spilled[f"{name}/{key}"] = (spill.tell(), arr.dtype, tuple(arr.shape))
                spill.write(memoryview(arr.reshape(-1).view(torch.uint8).numpy()).cast("B") if arr.numel() else b"")
        spill.flush()
        specs = [TensorSpec(part, dtype, shape) for part, (_, dtype, shape) in spilled.items()]
        metadata = {**meta, "asr_analogy_kind": COMPRESSED_KIND, "compression": method,
                    "compression_layout": json.dumps(layout, sort_keys=True)}
        size = spill.tell()
        with mmap.mmap(spill.fileno(), size, access=mmap.ACCESS_READ) if size else contextlib.nullcontext(b"") as view:

            def chunks():
                (ordered,) = plan_shards(specs, None) or [[]]
                for spec in ordered:  # the order write_safetensors_file writes in
                    offset, step = spilled[spec.name][0], _SPILL_CHUNK - _SPILL_CHUNK % spec.dtype.itemsize
                    for pos in range(0, spec.nbytes, step):
                        data = bytearray(view[offset + pos: offset + min(spec.nbytes, pos + step)])
                        yield spec.name, torch.frombuffer(data, dtype=spec.dtype)

            write_safetensors_file(out, specs, chunks(), metadata=metadata, force=force)
    return CompressResult(out, sum(s.nbytes for s in specs), float32_nbytes)
