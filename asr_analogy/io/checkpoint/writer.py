"""The streaming safetensors writer: planned shards, every header known before the first byte of data.

``ShardedWriter`` takes the full list of output tensors (name, dtype, shape) up front, plans the shards (greedy
in name order, a new shard when the next tensor would pass ``shard_size``), and then accepts each tensor's bytes
in order, possibly in several chunks. Nothing is buffered: memory stays at one chunk. ``write_safetensors_file``
does the same for one file, atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from asr_analogy.errors import CheckpointError, OutputExistsError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.checkpoint.format import TensorSpec, encode_header, index_json, natural_key


def parse_size(size: int | str | None) -> int | None:
    """Bytes from ``5GB`` / ``500MB`` / ``1.5GiB`` / ``4096`` (decimal units as in Hugging Face, binary with
    ``i``). ``None`` or ``0`` means no limit."""
    if size is None:
        return None
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        return int(size) or None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?)B?\s*", str(size).upper())
    if not m:
        raise CheckpointError(f"cannot read shard size {size!r}: expected e.g. 5GB, 500MB, 2GiB or a byte count")
    number, unit, binary = float(m.group(1)), m.group(2), m.group(3)
    base = 1024 if binary else 1000
    value = int(number * base ** "_KMGT".index(unit)) if unit else int(number)
    if value <= 0:
        raise CheckpointError(f"shard size {size!r} must be positive")
    return value


def _tensor_bytes(chunk: torch.Tensor) -> memoryview:
    """Raw little-endian bytes of a CPU tensor, without a copy when it is contiguous."""
    flat = chunk.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    if not flat.is_contiguous():
        flat = flat.contiguous()
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


class _SafetensorsStream:
    """Writes one safetensors file to an open binary handle: header first, then each tensor's bytes in
    ``specs`` order, possibly chunked. Raises ``CheckpointError`` on a size or order mismatch."""

    def __init__(self, fh, specs: Sequence[TensorSpec], metadata: Mapping[str, str] | None = None):
        self.fh = fh
        self.specs = list(specs)
        self.index = 0
        self.written = 0  # bytes of the current tensor
        self._empty = {s.name for s in self.specs if s.nbytes == 0}
        header = encode_header(self.specs, metadata)
        _preallocate(fh, len(header) + sum(s.nbytes for s in self.specs))
        fh.write(header)
        self.skip_empty()

    @property
    def done(self) -> bool:
        return self.index == len(self.specs)

    def write(self, name: str, chunk: torch.Tensor) -> None:
        if name in self._empty and chunk.numel() == 0:
            return  # zero-size tensors need no data; they are complete as soon as they are planned
        spec = self.specs[self.index] if not self.done else None
        if spec is None or spec.name != name:
            raise CheckpointError(f"tensor {name!r} written out of order (expected {spec.name if spec else 'nothing'})")
        if chunk.dtype != spec.dtype:
            raise CheckpointError(f"tensor {name!r}: got {chunk.dtype}, planned {spec.dtype}")
        data = _tensor_bytes(chunk)
        if self.written + len(data) > spec.nbytes:
            raise CheckpointError(f"tensor {name!r}: more data than its shape {list(spec.shape)} holds")
        self.fh.write(data)
        self.written += len(data)
        if self.written == spec.nbytes:
            self.index += 1
            self.written = 0
            self.skip_empty()  # zero-size tensors that follow are complete by definition

    def skip_empty(self) -> None:
        while not self.done and self.specs[self.index].nbytes == 0:
            self.index += 1

    def missing(self) -> str | None:
        """Name of the first tensor not completely written, or None when the file is complete."""
        self.skip_empty()
        return None if self.done else self.specs[self.index].name


def _preallocate(fh, size: int) -> None:
    """Reserve ``size`` bytes for a file about to be written sequentially (several times faster writes on
    filesystems with delayed allocation); silently skipped where unsupported."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    with contextlib.suppress(OSError):
        os.posix_fallocate(fh.fileno(), 0, size)


def plan_shards(specs: Sequence[TensorSpec], shard_size: int | str | None) -> list[list[TensorSpec]]:
    """Group specs into shards: natural name order, a new shard when the next tensor would pass the limit
    (a tensor larger than the limit gets a shard of its own). Within a shard, wider dtypes come first so every
    tensor starts at a multiple of its element size."""
    limit = parse_size(shard_size)
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in sorted(specs, key=lambda s: natural_key(s.name)):
        if limit and shards[-1] and size + spec.nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return [sorted(shard, key=lambda s: (-s.dtype.itemsize, natural_key(s.name))) for shard in shards if shard]


def shard_file_names(n: int, basename: str = "model") -> list[str]:
    """``model.safetensors`` for one shard, else ``model-0000i-of-0000n.safetensors``."""
    if n <= 1:
        return [f"{basename}.safetensors"]
    return [f"{basename}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def write_index(directory: Path, shards: Sequence[Sequence[TensorSpec]], filenames: Sequence[str],
                basename: str = "model") -> None:
    """Write ``{basename}.safetensors.index.json`` for ``shards`` stored in ``filenames``, atomically."""
    weight_map = {s.name: filenames[i] for i, shard in enumerate(shards) for s in shard}
    total = sum(s.nbytes for shard in shards for s in shard)
    with atomic_file(directory / f"{basename}.safetensors.index.json") as fh:
        json.dump(index_json(weight_map, total), fh, indent=2)
        fh.write("\n")


class ShardedWriter:
    """Stream a planned set of tensors into ``directory`` as ``model.safetensors`` or
    ``model-0000i-of-0000n.safetensors`` shards plus ``model.safetensors.index.json``.

    Call ``write(name, chunk)`` for every tensor in ``order`` (each tensor's chunks consecutive, flattened
    row-major), then ``close()``. Memory: one chunk. ``fsync`` flushes each finished shard to disk.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        specs: Sequence[TensorSpec],
        *,
        shard_size: int | str | None = "5GB",
        metadata: Mapping[str, str] | None = None,
        basename: str = "model",
        fsync: bool = True,
    ):
        self.directory = Path(directory)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise CheckpointError(f"duplicate tensor names in output: {dup[:5]}")
        self.shards = plan_shards(specs, shard_size)
        self.filenames = shard_file_names(len(self.shards), basename)
        self.order = [s.name for shard in self.shards for s in shard]
        self._shard_of = {s.name: i for i, shard in enumerate(self.shards) for s in shard}
        self.metadata = {"format": "pt", **(metadata or {})}
        self.basename = basename
        self.fsync = fsync
        self._current = -1
        self._fh = None
        self._stream: _SafetensorsStream | None = None
        self._closed = False

    def _open_shard(self, i: int) -> None:
        self._finish_shard()
        self._current = i
        self._fh = open(self.directory / self.filenames[i], "wb")
        self._stream = _SafetensorsStream(self._fh, self.shards[i], self.metadata)

    def _finish_shard(self) -> None:
        if self._fh is None:
            return
        missing = self._stream.missing()
        if missing is not None:
            raise CheckpointError(f"shard {self.filenames[self._current]} closed before tensor {missing!r} was written")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None

    def write(self, name: str, chunk: torch.Tensor) -> None:
        """Append ``chunk`` (any shape; its elements in row-major order) to tensor ``name``."""
        i = self._shard_of.get(name)
        if i is None:
            raise CheckpointError(f"tensor {name!r} was not planned for this output")
        if i != self._current:
            if i < self._current:
                raise CheckpointError(f"tensor {name!r} written out of order")
            for j in range(self._current + 1, i):  # shards holding only empty tensors
                self._open_shard(j)
            self._open_shard(i)
        self._stream.write(name, chunk)

    def close(self) -> list[str]:
        """Finish the last shard and write the index (when there are several shards). Returns file names."""
        if self._closed:
            return self.filenames
        for j in range(self._current + 1, len(self.shards)):
            self._open_shard(j)
        self._finish_shard()
        if len(self.shards) > 1:
            write_index(self.directory, self.shards, self.filenames, self.basename)
        self._closed = True
        return self.filenames

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def write_safetensors_file(
    path: str | os.PathLike,
    specs: Sequence[TensorSpec],
    chunks: Iterable[tuple[str, torch.Tensor]],
    *,
    metadata: Mapping[str, str] | None = None,
    force: bool = False,
) -> Path:
    """Stream ``(name, chunk)`` pairs into one safetensors file, atomically. Order: ``plan_shards(specs, None)``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    (ordered,) = plan_shards(specs, None) or [[]]
    with atomic_file(path, "wb") as fh:
        stream = _SafetensorsStream(fh, ordered, {"format": "pt", **(metadata or {})})
        for name, chunk in chunks:
            stream.write(name, chunk)
        missing = stream.missing()
        if missing is not None:
            raise CheckpointError(f"{path}: tensor {missing!r} was never written")
    return path
