"""The lazy checkpoint reader: one tensor at a time from safetensors (single or sharded) or ``pytorch_model.bin``.

Fingerprint
    ``CheckpointReader.fingerprint()`` identifies the weights: SHA-256 over, for every tensor in name order, its
    name, dtype and shape and *every byte* of its raw little-endian data, read in 16 MiB chunks (memory stays
    at one chunk). The string is ``"sha256-full:" + 64 hex digits``; the scheme tag before the colon tells it
    apart from the older head-and-tail scheme (``"sha256:" + 32 hex``, which hashed only the first and last
    4 KiB of each tensor and so missed edits inside a tensor). ``fingerprint_mismatch`` compares two
    fingerprints and says when they come from different schemes. The same weights give the same fingerprint
    whether stored as one file, as shards, or as ``pytorch_model.bin``. Cost: one sequential read of the
    checkpoint plus SHA-256 (which dominates): about 1.5 s per GB on one core of the development machine
    (1.45-1.54 s/GB over three runs on a generated 1.07 GB file, 1.2-1.6 s/GB on Whisper tiny.en's 151 MB
    model.safetensors, both in the page cache; a cold disk adds its read time).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
from pathlib import Path
from typing import Iterator, Mapping

import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint.format import (
    StoredTensor,
    dtype_name,
    natural_key,
    read_safetensors_header,
    read_weight_map,
)

FINGERPRINT_SCHEME = "sha256-full"
FINGERPRINT_SCHEMES = {
    "sha256-full": "SHA-256 of names, dtypes, shapes and every byte of every tensor",
    "sha256": "the older scheme: SHA-256 of names, dtypes, shapes and only the first and last 4 KiB of each tensor",
}
_FINGERPRINT_CHUNK = 16 << 20  # bytes read and hashed at a time


def fingerprint_mismatch(recorded: str, actual: str) -> str | None:
    """None when two fingerprints agree; otherwise one line saying why they differ (other weights, or two
    schemes that cannot be compared, e.g. a vector written before fingerprints covered every byte)."""
    if recorded == actual:
        return None
    old, new = (fp.split(":", 1)[0] if ":" in fp else "?" for fp in (recorded, actual))
    if old != new:
        return (
            f"fingerprint {recorded} was made with scheme '{old}' ({FINGERPRINT_SCHEMES.get(old, 'unknown')}) and "
            f"cannot be compared with {actual} (scheme '{new}'); recompute it with this version"
        )
    return f"fingerprint {recorded} differs from {actual}: the weights are not the same"


class CheckpointReader:
    """Lazy, read-only view of one checkpoint.

    Opens, without loading any tensor data: a directory with ``model.safetensors.index.json`` (sharded) or
    ``model.safetensors`` (single file), or any one ``*.safetensors.index.json`` / ``*.safetensors`` file; a
    path to one ``.safetensors`` file; a directory with ``pytorch_model.bin`` (or ``pytorch_model.bin.index.json``
    shards), read only through ``torch.load(weights_only=True, mmap=True)``. Headers are validated up front, so
    a truncated or corrupt file fails at open time with a ``CheckpointError`` naming the file.

    ``names()`` lists tensor names (natural order), ``shape``/``dtype``/``nbytes`` read the header only,
    ``get(name)`` returns one tensor (a copy-on-write view of the memory-mapped file) and ``read_into`` copies
    a range of elements into a caller's buffer with one ``pread`` (nothing stays mapped, so resident memory does
    not grow with the model). Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._files: list[Path] = []
        self._maps: list[mmap.mmap | None] = []
        self._fhs: list = []
        self._entries: dict[str, tuple[int, StoredTensor]] = {}  # name -> (file index, layout)
        self._torch_state: dict[str, torch.Tensor] | None = None
        self._metadata: dict = {}
        self._fingerprint: str | None = None
        self._open()

    # -- discovery --
    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise CheckpointError(f"{path}: checkpoint does not exist")
        if path.is_file():
            if path.name.endswith(".safetensors.index.json"):
                return self._open_index(path)
            if path.suffix == ".safetensors":
                return self._open_safetensors([path])
            if path.suffix in (".bin", ".pt", ".pth"):
                return self._open_torch([path])
            if path.name.endswith(".bin.index.json"):
                return self._open_torch_index(path)
            raise CheckpointError(f"{path}: not a .safetensors, index.json or pytorch .bin file")
        if (path / "model.safetensors.index.json").is_file():
            return self._open_index(path / "model.safetensors.index.json")
        if (path / "model.safetensors").is_file():
            return self._open_safetensors([path / "model.safetensors"])
        indexes = sorted(path.glob("*.safetensors.index.json"))
        if len(indexes) == 1:
            return self._open_index(indexes[0])
        files = sorted(path.glob("*.safetensors"))
        if len(files) == 1 and not indexes:
            return self._open_safetensors(files)
        if files or indexes:
            listed = ", ".join(p.name for p in (indexes or files))
            raise CheckpointError(f"{path}: several safetensors files and no model.safetensors.index.json ({listed})")
        if (path / "pytorch_model.bin.index.json").is_file():
            return self._open_torch_index(path / "pytorch_model.bin.index.json")
        if (path / "pytorch_model.bin").is_file():
            return self._open_torch([path / "pytorch_model.bin"])
        raise CheckpointError(f"{path}: no model.safetensors, safetensors index or pytorch_model.bin found")

    def _open_index(self, index_path: Path) -> None:
        weight_map = read_weight_map(index_path)
        shards = [index_path.parent / s for s in sorted(set(weight_map.values()), key=natural_key)]
        self._open_safetensors(shards, weight_map=weight_map, index=index_path)

    def _open_safetensors(self, files: list[Path], weight_map=None, index=None) -> None:
        headers = []
        for file in files:
            if not file.is_file():
                where = f" (listed in {index})" if index else ""
                raise CheckpointError(f"{file}: shard file does not exist{where}")
            headers.append(read_safetensors_header(file))
        for i, (file, header) in enumerate(zip(files, headers)):
            self._files.append(file)
            self._maps.append(None)
            self._fhs.append(None)
            if i == 0:
                self._metadata = dict(header.metadata)
            for name, stored in header.tensors.items():
                # Each name is taken from one file only: the one file, or the shard its index lists it in.
                if weight_map is not None and weight_map.get(name) != file.name:
                    continue
                self._entries[name] = (i, stored)
        if weight_map is not None:
            for name, shard in weight_map.items():
                if name not in self._entries:
                    raise CheckpointError(f"{index}: tensor {name!r} is listed in shard {shard} but not stored there")

    def _load_torch(self, file: Path) -> dict[str, torch.Tensor]:
        if not file.is_file():
            raise CheckpointError(f"{file}: file does not exist")
        try:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                # Legacy (non-zip) torch files cannot be memory-mapped.
                state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
            raise CheckpointError(f"{file}: cannot read with torch.load(weights_only=True): {exc}") from None
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{file}: expected a mapping of tensor names to tensors, got {type(state).__name__}")
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{file}: entry {key!r} is a {type(value).__name__}, not a tensor")
        return dict(state)

    def _open_torch(self, files: list[Path]) -> None:
        self._torch_state = {}
        for file in files:
            for key, value in self._load_torch(file).items():
                if key in self._torch_state:
                    raise CheckpointError(f"{file}: tensor {key!r} appears in more than one file")
                self._torch_state[key] = value
        self._files = list(files)

    def _open_torch_index(self, index_path: Path) -> None:
        weight_map = read_weight_map(index_path)
        self._open_torch([index_path.parent / f for f in sorted(set(weight_map.values()), key=natural_key)])
        for name in weight_map:
            if name not in self._torch_state:
                raise CheckpointError(f"{index_path}: tensor {name!r} is listed but not stored")

    # -- queries --
    def _source(self) -> Mapping:
        return self._torch_state if self._torch_state is not None else self._entries

    def names(self) -> list[str]:
        """Tensor names in natural order (``layers.2`` before ``layers.10``)."""
        return sorted(self._source(), key=natural_key)

    def __contains__(self, name: str) -> bool:
        return name in self._source()

    def __len__(self) -> int:
        return len(self._source())

    def _check(self, name: str) -> None:
        if name not in self:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}")

    def shape(self, name: str) -> tuple[int, ...]:
        self._check(name)
        if self._torch_state is not None:
            return tuple(self._torch_state[name].shape)
        return self._entries[name][1].shape

    def dtype(self, name: str) -> torch.dtype:
        self._check(name)
        if self._torch_state is not None:
            return self._torch_state[name].dtype
        return self._entries[name][1].dtype

    def numel(self, name: str) -> int:
        return math.prod(self.shape(name))

    def nbytes(self, name: str) -> int:
        return math.prod(self.shape(name)) * self.dtype(name).itemsize

    def metadata(self) -> dict[str, str]:
        """The ``__metadata__`` block of the (first) safetensors file; empty for torch files."""
        return dict(self._metadata)

    def _map(self, i: int) -> mmap.mmap:
        if self._maps[i] is None:
            # Copy-on-write: tensors handed out are writable and writes never reach the file.
            self._maps[i] = mmap.mmap(self._fd(i), 0, access=mmap.ACCESS_COPY)
        return self._maps[i]

    def flat(self, name: str) -> torch.Tensor:
        """1-D zero-copy view of a tensor's data (``numel`` elements), mapped copy-on-write from the file."""
        self._check(name)
        if self._torch_state is not None:
            return self._torch_state[name].reshape(-1)
        i, t = self._entries[name]
        if t.numel == 0:
            return torch.empty(0, dtype=t.dtype)
        return torch.frombuffer(self._map(i), dtype=t.dtype, count=t.numel, offset=t.offset)

    def get(self, name: str) -> torch.Tensor:
        """One tensor with its stored shape and dtype (a copy-on-write view of the file; no full read)."""
        return self.flat(name).reshape(self.shape(name))

    def prefetch(self, name: str) -> None:
        """Ask the kernel to start reading ``name`` from disk (no-op for torch files)."""
        self._advise(name, getattr(mmap, "MADV_WILLNEED", None))

    def release(self, name: str, start: int = 0, stop: int | None = None) -> None:
        """Drop this process's mapping of elements ``start:stop`` of ``name`` (the page cache keeps them).

        Keeps resident memory flat while streaming. Only for views this caller owns and has not modified: a
        later access re-reads the file.
        """
        self._advise(name, getattr(mmap, "MADV_DONTNEED", None), start, stop)

    def _advise(self, name: str, flag, start: int = 0, stop: int | None = None) -> None:
        if flag is None or self._torch_state is not None:
            return
        i, t = self._entries[name]
        stop = t.numel if stop is None else stop
        begin = t.offset + start * t.dtype.itemsize
        end = t.offset + stop * t.dtype.itemsize
        page = mmap.PAGESIZE
        if flag == getattr(mmap, "MADV_DONTNEED", None):
            begin = -(-begin // page) * page  # only whole pages inside the range are dropped
            end = end // page * page
        else:
            begin = begin // page * page
        if end <= begin:
            return
        with contextlib.suppress(OSError, ValueError):
            self._map(i).madvise(flag, begin, end - begin)

    def read_into(self, name: str, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        """Copy elements ``start:stop`` of the flattened tensor into ``out`` (a contiguous CPU tensor of that
        many elements and the stored dtype) with one ``pread``; no mapping, so resident memory stays flat.
        Returns ``out``."""
        self._check(name)
        n = stop - start
        if out.numel() != n or out.dtype != self.dtype(name) or not out.is_contiguous():
            raise CheckpointError(f"read_into({name!r}): buffer of {out.numel()} {out.dtype}, need {n} {self.dtype(name)}")
        if n == 0:
            return out
        if self._torch_state is not None:
            return out.copy_(self._torch_state[name].reshape(-1)[start:stop])
        i, t = self._entries[name]
        self._pread(i, name, t.offset + start * t.dtype.itemsize, memoryview(out.view(torch.uint8).numpy()).cast("B"))
        return out

    def _pread(self, i: int, name: str, offset: int, view: memoryview) -> None:
        fd = self._fd(i)
        got = 0
        while got < len(view):
            k = os.preadv(fd, [view[got:]], offset + got)
            if k <= 0:
                raise CheckpointError(f"{self._files[i]}: file ended while reading tensor {name!r} (truncated?)")
            got += k

    def _fd(self, i: int) -> int:
        if self._fhs[i] is None:
            self._fhs[i] = open(self._files[i], "rb")
        return self._fhs[i].fileno()

    def raw_chunks(self, name: str, chunk_bytes: int = _FINGERPRINT_CHUNK) -> Iterator[memoryview]:
        """The tensor's raw little-endian bytes, in order, ``chunk_bytes`` at a time (one reused buffer: a
        chunk is valid until the next one is produced)."""
        n = self.nbytes(name)
        if n == 0:
            return
        if self._torch_state is not None:
            data = memoryview(self._torch_state[name].contiguous().reshape(-1).view(torch.uint8).numpy()).cast("B")
            for pos in range(0, n, chunk_bytes):
                yield data[pos : pos + chunk_bytes]
            return
        i, t = self._entries[name]
        buffer = memoryview(bytearray(min(n, chunk_bytes)))
        for pos in range(0, n, chunk_bytes):
            view = buffer[: min(chunk_bytes, n - pos)]
            self._pread(i, name, t.offset + pos, view)
            yield view

    def fingerprint(self) -> str:
        """``"sha256-full:<64 hex>"`` over names, dtypes, shapes and every byte of every tensor (see the module
        docstring for the cost)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for name in sorted(self.names()):
                shape = ",".join(str(s) for s in self.shape(name))
                h.update(f"{name}\0{dtype_name(self.dtype(name))}\0{shape}\0".encode())
                for chunk in self.raw_chunks(name):
                    h.update(chunk)
            self._fingerprint = f"{FINGERPRINT_SCHEME}:{h.hexdigest()}"
        return self._fingerprint

    def close(self) -> None:
        # Mappings are let go, not closed: a tensor from ``get``/``flat`` holds a reference to its mapping but no
        # buffer export, so ``mmap.close()`` would succeed and leave it pointing at unmapped memory. A mapping
        # no tensor views is unmapped at once; the others when their last tensor dies.
        self._maps = [None] * len(self._maps)
        for i, fh in enumerate(self._fhs):
            if fh is not None:
                fh.close()
                self._fhs[i] = None

    def __enter__(self) -> "CheckpointReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointReader({str(self.path)!r}, {len(self)} tensors)"


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a whole checkpoint into memory (for small models and tests): ``{name: tensor}`` (owned copies)."""
    with CheckpointReader(path) as reader:
        return {name: reader.get(name).clone() for name in reader.names()}
