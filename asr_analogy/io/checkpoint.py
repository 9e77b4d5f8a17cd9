"""Checkpoints: a lazy reader for Hugging Face model directories and an atomic, streaming, sharded writer.

Reading
    ``CheckpointReader(path)`` opens, without loading any tensor data:

    * a directory with ``model.safetensors.index.json`` (sharded) or ``model.safetensors`` (single file),
      or any one ``*.safetensors.index.json`` / ``*.safetensors`` file;
    * a path to one ``.safetensors`` file;
    * a directory with ``pytorch_model.bin`` (or ``pytorch_model.bin.index.json`` shards), read only through
      ``torch.load(weights_only=True, mmap=True)``.

    Safetensors headers are parsed and checked up front (JSON well-formed, known dtypes, byte ranges that
    match shapes, are contiguous and end exactly at the end of the file), so a truncated or corrupt file
    fails at open time with a ``CheckpointError`` naming the file. ``get(name)`` returns one tensor at a time
    as a copy-on-write view of the memory-mapped file; ``read_into(name, start, stop, buffer)`` copies a range
    of elements into a caller's buffer with one ``pread`` (what the streaming merge uses: nothing stays
    mapped, so resident memory does not grow with the model).

Writing
    ``ShardedWriter`` takes the full list of output tensors (name, dtype, shape) up front, plans the shards
    (greedy in name order, a new shard when the next tensor would pass ``shard_size``), and then accepts each
    tensor's bytes in order, possibly in several chunks. Because every safetensors header is known before the
    first byte of data, nothing is buffered: memory stays at one chunk. ``save_checkpoint`` wraps it in an
    atomic directory (temp dir beside OUT, renamed at the end) and copies config/tokenizer/processor files.

Fingerprint
    ``CheckpointReader.fingerprint()`` is a cheap, stable identity of the weights: SHA-256 over, for every
    tensor in name order, its name, dtype and shape and the first and last 4 KiB of its raw little-endian
    bytes (``"sha256:"`` + 32 hex digits). Reading it costs at most 8 KiB per tensor. Two checkpoints with the
    same fingerprint have the same tensor names, dtypes and shapes and agree at both ends of every tensor, which
    any fine-tuning step that touches a tensor changes. The same weights give the same fingerprint whether
    stored as one file, as shards, or as ``pytorch_model.bin``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import math
import mmap
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.atomic import atomic_dir, atomic_file

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

# Files copied beside the weights so the output loads with ``from_pretrained`` (glob patterns).
MODEL_SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "normalizer.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "chat_template.*",
    "spiece.model",
    "sentencepiece*.model",
)

_FINGERPRINT_EDGE_BYTES = 4096
_MAX_HEADER_BYTES = 100_000_000


def dtype_name(dtype: torch.dtype) -> str:
    """safetensors code of a torch dtype (``torch.float32`` -> ``"F32"``)."""
    try:
        return TORCH_TO_ST[dtype]
    except KeyError:
        raise CheckpointError(f"dtype {dtype} cannot be stored in safetensors") from None


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


def natural_key(name: str) -> tuple:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


# ---- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """Where one tensor lives: file index, byte offset from the file start, dtype, shape."""

    file: int
    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


def read_safetensors_header(path: Path) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...], int]], dict, int]:
    """Parse and validate a safetensors header without reading tensor data.

    Returns ``({name: (dtype, shape, absolute byte offset)}, metadata, file size in bytes)``. Raises
    ``CheckpointError`` naming the file when it is missing, truncated or malformed.
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
    entries = {}
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
        entries[name] = (dtype, shape, data_start + begin)
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
    return entries, metadata, size


class CheckpointReader:
    """Lazy, read-only view of one checkpoint; see the module docstring for the layouts it opens.

    ``names()`` lists tensor names (natural order), ``shape``/``dtype``/``nbytes`` read the header only, and
    ``get(name)`` returns one tensor (shape as stored). Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._files: list[Path] = []
        self._maps: list[mmap.mmap | None] = []
        self._fhs: list = []
        self._entries: dict[str, _Entry] = {}
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
        for name in ("model.safetensors.index.json",):
            if (path / name).is_file():
                return self._open_index(path / name)
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
        try:
            index = json.loads(index_path.read_text())
            weight_map = index["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise CheckpointError(f"{index_path}: not a valid index (expected JSON with a 'weight_map' object)") from None
        shard_names = sorted(set(weight_map.values()), key=natural_key)
        shards = [index_path.parent / s for s in shard_names]
        self._open_safetensors(shards, weight_map=weight_map, index=index_path)

    def _open_safetensors(self, files: list[Path], weight_map=None, index=None) -> None:
        headers = []
        for file in files:
            if not file.is_file():
                where = f" (listed in {index})" if index else ""
                raise CheckpointError(f"{file}: shard file does not exist{where}")
            headers.append(read_safetensors_header(file))
        for i, (file, (entries, metadata, _size)) in enumerate(zip(files, headers)):
            self._files.append(file)
            self._maps.append(None)
            self._fhs.append(None)
            if i == 0:
                self._metadata = dict(metadata)
            for name, (dtype, shape, offset) in entries.items():
                if weight_map is not None and weight_map.get(name) != file.name:
                    continue
                if name in self._entries:
                    raise CheckpointError(f"{file}: tensor {name!r} also appears in {self._files[self._entries[name].file]}")
                self._entries[name] = _Entry(i, offset, dtype, shape)
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
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise CheckpointError(f"{index_path}: not a valid index (expected JSON with a 'weight_map' object)") from None
        files = [index_path.parent / f for f in sorted(set(weight_map.values()), key=natural_key)]
        self._open_torch(files)
        for name in weight_map:
            if name not in self._torch_state:
                raise CheckpointError(f"{index_path}: tensor {name!r} is listed but not stored")

    # -- queries --
    def names(self) -> list[str]:
        """Tensor names in natural order (``layers.2`` before ``layers.10``)."""
        source = self._torch_state if self._torch_state is not None else self._entries
        return sorted(source, key=natural_key)

    def __contains__(self, name: str) -> bool:
        source = self._torch_state if self._torch_state is not None else self._entries
        return name in source

    def __len__(self) -> int:
        return len(self._torch_state if self._torch_state is not None else self._entries)

    def _check(self, name: str) -> None:
        if name not in self:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}")

    def shape(self, name: str) -> tuple[int, ...]:
        self._check(name)
        if self._torch_state is not None:
            return tuple(self._torch_state[name].shape)
        return self._entries[name].shape

    def dtype(self, name: str) -> torch.dtype:
        self._check(name)
        if self._torch_state is not None:
            return self._torch_state[name].dtype
        return self._entries[name].dtype

    def numel(self, name: str) -> int:
        return math.prod(self.shape(name))

    def nbytes(self, name: str) -> int:
        return math.prod(self.shape(name)) * self.dtype(name).itemsize

    def file_of(self, name: str) -> Path:
        """The file that stores ``name``."""
        self._check(name)
        if self._torch_state is not None:
            return self._files[0]
        return self._files[self._entries[name].file]

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
        e = self._entries[name]
        if e.numel == 0:
            return torch.empty(0, dtype=e.dtype)
        return torch.frombuffer(self._map(e.file), dtype=e.dtype, count=e.numel, offset=e.offset)

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
        e = self._entries[name]
        stop = e.numel if stop is None else stop
        begin = e.offset + start * e.dtype.itemsize
        end = e.offset + stop * e.dtype.itemsize
        page = mmap.PAGESIZE
        if flag == getattr(mmap, "MADV_DONTNEED", None):
            begin = -(-begin // page) * page  # only whole pages inside the range are dropped
            end = end // page * page
        else:
            begin = begin // page * page
        if end <= begin:
            return
        with contextlib.suppress(OSError, ValueError):
            self._map(e.file).madvise(flag, begin, end - begin)

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, tensor)`` one at a time in natural name order."""
        for name in self.names():
            yield name, self.get(name)

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
        e = self._entries[name]
        fd = self._fd(e.file)
        view = memoryview(out.view(torch.uint8).numpy()).cast("B")
        offset = e.offset + start * e.dtype.itemsize
        got = 0
        while got < len(view):
            k = os.preadv(fd, [view[got:]], offset + got)
            if k <= 0:
                raise CheckpointError(f"{self._files[e.file]}: file ended while reading tensor {name!r} (truncated?)")
            got += k
        return out

    def _fd(self, i: int) -> int:
        if self._fhs[i] is None:
            self._fhs[i] = open(self._files[i], "rb")
        return self._fhs[i].fileno()

    def raw_edges(self, name: str) -> bytes:
        """First and last 4 KiB of the tensor's raw bytes (all of them when smaller than 8 KiB)."""
        n = self.nbytes(name)
        edge = _FINGERPRINT_EDGE_BYTES
        if self._torch_state is not None:
            data = self._torch_state[name].contiguous().reshape(-1).view(torch.uint8)
            if n <= 2 * edge:
                return data.numpy().tobytes()
            return data[:edge].numpy().tobytes() + data[-edge:].numpy().tobytes()
        e = self._entries[name]
        with open(self._files[e.file], "rb") as fh:
            if n <= 2 * edge:
                fh.seek(e.offset)
                return fh.read(n)
            fh.seek(e.offset)
            head = fh.read(edge)
            fh.seek(e.offset + n - edge)
            return head + fh.read(edge)

    def fingerprint(self) -> str:
        """``"sha256:<32 hex>"`` over names, dtypes, shapes and the first/last 4 KiB of every tensor."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for name in sorted(self.names()):
                shape = ",".join(str(s) for s in self.shape(name))
                h.update(f"{name}\0{dtype_name(self.dtype(name))}\0{shape}\0".encode())
                h.update(self.raw_edges(name))
            self._fingerprint = "sha256:" + h.hexdigest()[:32]
        return self._fingerprint

    def close(self) -> None:
        for i, m in enumerate(self._maps):
            if m is not None:
                with contextlib.suppress(BufferError):
                    m.close()  # fails while tensors still view it; the mapping then dies with them
                self._maps[i] = None
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


# ---- writing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """An output tensor announced before its data: name, dtype and shape."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


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


def _header_bytes(specs: Sequence[TensorSpec], metadata: Mapping[str, str] | None) -> bytes:
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


class _SafetensorsStream:
    """Writes one safetensors file to an open binary handle: header first, then each tensor's bytes in
    ``specs`` order, possibly chunked. Raises ``CheckpointError`` on a size or order mismatch."""

    def __init__(self, fh, specs: Sequence[TensorSpec], metadata: Mapping[str, str] | None = None):
        self.fh = fh
        self.specs = list(specs)
        self.index = 0
        self.written = 0  # bytes of the current tensor
        self._empty = {s.name for s in self.specs if s.nbytes == 0}
        fh.write(_header_bytes(self.specs, metadata))
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
            # Zero-size tensors that follow are complete by definition.
            while not self.done and self.specs[self.index].nbytes == 0:
                self.index += 1

    def skip_empty(self) -> None:
        while not self.done and self.specs[self.index].nbytes == 0:
            self.index += 1


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
        n = len(self.shards)
        if n <= 1:
            self.filenames = [f"{basename}.safetensors"]
        else:
            self.filenames = [f"{basename}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self.order = [s.name for shard in self.shards for s in shard]
        self._shard_of = {s.name: i for i, shard in enumerate(self.shards) for s in shard}
        self.metadata = {"format": "pt", **(metadata or {})}
        self.basename = basename
        self.fsync = fsync
        self._current = -1
        self._fh = None
        self._stream: _SafetensorsStream | None = None
        self._closed = False
        self.bytes_written = 0

    def _open_shard(self, i: int) -> None:
        self._finish_shard()
        self._current = i
        self._fh = open(self.directory / self.filenames[i], "wb")
        _preallocate(self._fh, len(_header_bytes(self.shards[i], self.metadata)) + sum(s.nbytes for s in self.shards[i]))
        self._stream = _SafetensorsStream(self._fh, self.shards[i], self.metadata)

    def _finish_shard(self) -> None:
        if self._fh is None:
            return
        self._stream.skip_empty()
        if not self._stream.done:
            missing = self._stream.specs[self._stream.index].name
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
        self.bytes_written += chunk.numel() * chunk.element_size()

    def write_tensor(self, name: str, tensor: torch.Tensor) -> None:
        self.write(name, tensor)

    def close(self) -> list[str]:
        """Finish the last shard and write the index (when there are several shards). Returns file names."""
        if self._closed:
            return self.filenames
        for j in range(self._current + 1, len(self.shards)):
            self._open_shard(j)
        self._finish_shard()
        if len(self.shards) > 1:
            weight_map = {s.name: self.filenames[i] for i, shard in enumerate(self.shards) for s in shard}
            total = sum(s.nbytes for shard in self.shards for s in shard)
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items(), key=lambda kv: natural_key(kv[0])))}
            with atomic_file(self.directory / f"{self.basename}.safetensors.index.json") as fh:
                json.dump(index, fh, indent=2)
                fh.write("\n")
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
    from asr_analogy.errors import OutputExistsError

    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    (ordered,) = plan_shards(specs, None) or [[]]
    with atomic_file(path, "wb") as fh:
        meta = {"format": "pt", **(metadata or {})}
        _preallocate(fh, len(_header_bytes(ordered, meta)) + sum(s.nbytes for s in ordered))
        stream = _SafetensorsStream(fh, ordered, meta)
        stream.skip_empty()
        for name, chunk in chunks:
            stream.write(name, chunk)
        stream.skip_empty()
        if not stream.done:
            raise CheckpointError(f"{path}: tensor {stream.specs[stream.index].name!r} was never written")
    return path


def copy_model_files(src: str | os.PathLike, dst: str | os.PathLike, patterns: Sequence[str] = MODEL_SIDE_FILES) -> list[str]:
    """Copy config / tokenizer / processor / generation files from model directory ``src`` into ``dst``.

    Weight files are never copied. Returns the names copied (none when ``src`` is a file).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        return []
    copied = []
    for item in sorted(src.iterdir()):
        if not item.is_file() or item.name.endswith((".safetensors", ".bin", ".index.json", ".pt", ".pth")):
            continue
        if any(fnmatch.fnmatch(item.name, p) for p in patterns):
            shutil.copy2(item, dst / item.name)
            copied.append(item.name)
    return copied


def _set_config_dtype(out_dir: Path, dtype: torch.dtype) -> None:
    """Record the floating dtype of the written weights in a copied ``config.json``."""
    cfg_path = out_dir / "config.json"
    if not cfg_path.is_file():
        return
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    name = str(dtype).removeprefix("torch.")
    changed = False
    for key in ("torch_dtype", "dtype"):
        if key in cfg and cfg[key] != name:
            cfg[key] = name
            changed = True
    if changed:
        with atomic_file(cfg_path) as fh:
            json.dump(cfg, fh, indent=2)
            fh.write("\n")


def save_checkpoint(
    tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    out_dir: str | os.PathLike,
    *,
    copy_files_from: str | os.PathLike | None = None,
    shard_size: int | str | None = "5GB",
    force: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write tensors as a Hugging Face checkpoint directory, atomically (temp dir beside ``out_dir``).

    ``tensors`` is a mapping (streamed shard by shard, nothing copied) or an iterator of ``(name, tensor)``
    (buffered up to one shard, each shard written when full). Config/tokenizer/processor files are copied from
    ``copy_files_from`` when given. Refuses an existing ``out_dir`` unless ``force``.
    """
    limit = parse_size(shard_size)
    with atomic_dir(out_dir, force=force) as tmp:
        if isinstance(tensors, Mapping):
            specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
            writer = ShardedWriter(tmp, specs, shard_size=limit, metadata=metadata)
            for name in writer.order:
                writer.write(name, tensors[name])
            writer.close()
        else:
            _save_buffered(tensors, tmp, limit, metadata)
        if copy_files_from is not None:
            copy_model_files(copy_files_from, tmp)
            floats = {t.dtype for t in (tensors.values() if isinstance(tensors, Mapping) else []) if t.is_floating_point()}
            if len(floats) == 1:
                _set_config_dtype(tmp, floats.pop())
    return Path(out_dir)


def _save_buffered(items: Iterable[tuple[str, torch.Tensor]], tmp: Path, limit: int | None, metadata) -> None:
    """Buffer ``(name, tensor)`` pairs until a shard is full, write it, repeat; then name and index them."""
    written: list[tuple[Path, list[TensorSpec]]] = []
    buffer: dict[str, torch.Tensor] = {}
    size = 0
    seen: set[str] = set()

    def flush() -> None:
        nonlocal buffer, size
        if not buffer:
            return
        part = tmp / f".part-{len(written):05d}.safetensors"
        specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in buffer.items()]
        write_safetensors_file(part, specs, ((s.name, buffer[s.name]) for s in plan_shards(specs, None)[0]), metadata=metadata)
        written.append((part, specs))
        buffer, size = {}, 0

    for name, tensor in items:
        if name in seen:
            raise CheckpointError(f"tensor {name!r} given twice")
        seen.add(name)
        nbytes = tensor.numel() * tensor.element_size()
        if limit and buffer and size + nbytes > limit:
            flush()
        buffer[name] = tensor.detach().cpu()
        size += nbytes
    flush()
    n = max(len(written), 1)
    if not written:
        write_safetensors_file(tmp / "model.safetensors", [], [], metadata=metadata)
        return
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    for (part, _), final in zip(written, names):
        os.replace(part, tmp / final)
    if n > 1:
        weight_map = {s.name: final for (_, specs), final in zip(written, names) for s in specs}
        total = sum(s.nbytes for _, specs in written for s in specs)
        with atomic_file(tmp / "model.safetensors.index.json") as fh:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items(), key=lambda kv: natural_key(kv[0])))}, fh, indent=2)
            fh.write("\n")
