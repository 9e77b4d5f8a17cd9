"""Streaming: inputs read chunk by chunk into reused buffers, and outputs written by a background thread.

For every output tensor the kernels read aligned flat chunks (``chunk_elements`` entries, default 2^18 on
CPU, 2^24 on CUDA) of the same tensor from every input with ``pread`` into a few reused buffers
(``Streamer``), and hand each merged chunk to a writer thread that appends it to the safetensors shard whose
header was written in advance (``stream_to_checkpoint``, ``io.checkpoint.ShardedWriter``). Peak memory is
O(models x chunk), independent of model size; everything is written into a temporary directory beside the
output and renamed at the end, so an interrupted merge leaves no partial output. ``Streamer.check`` refuses a
non-finite chunk, naming the input that holds the NaN/Inf and the tensor.

``tune_malloc`` (glibc allocator thresholds for the whole process) is an opt-in for programs that stream
large models; the library never calls it, the ``asr-analogy`` command does.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.atomic import atomic_dir, atomic_file
from asr_analogy.io.checkpoint import (
    CheckpointReader,
    ShardedWriter,
    TensorSpec,
    set_config_dtype,
    copy_model_files,
    write_safetensors_file,
)

CPU_CHUNK = 1 << 18  # 1 MiB of float32: a few such buffers stay in cache
CUDA_CHUNK = 1 << 24
RELEASE_SPAN = 1 << 22  # elements per madvise(DONTNEED) call
RING = 4  # output buffers in rotation; the writer queue holds at most RING - 2 chunks


# ---- inputs ---------------------------------------------------------------------------------------------


@dataclass
class Input:
    """One input checkpoint: ``label`` as the user wrote it, its resolved path, and a lazy reader."""

    label: str
    path: Path
    reader: CheckpointReader

    def describe(self) -> str:
        return self.label if str(self.path) == self.label else f"{self.label} ({self.path})"



# ---- chunk streaming --------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


class Streamer:
    """Reads aligned chunks of one tensor from several inputs, on ``device`` in a compute dtype, reusing a
    small pool of chunk-sized buffers so streaming allocates nothing per chunk."""

    def __init__(self, device: torch.device, chunk_elements: int | None = None):
        self.device = device
        self.chunk = chunk_elements or (CUDA_CHUNK if device.type == "cuda" else CPU_CHUNK)
        self._pool: dict[tuple, torch.Tensor] = {}
        self._released: dict[str, int] = {}

    def ranges(self, n: int) -> list[tuple[int, int]]:
        return [(s, min(n, s + self.chunk)) for s in range(0, n, self.chunk)] or [(0, 0)]

    def buffer(self, key, n: int, dtype: torch.dtype) -> torch.Tensor:
        """A reusable 1-D scratch tensor of ``n`` elements (contents undefined), distinct per ``key``."""
        buf = self._pool.get((key, dtype))
        if buf is None or buf.numel() < n:
            buf = torch.empty(max(n, self.chunk), dtype=dtype, device=self.device)
            self._pool[(key, dtype)] = buf
        return buf[:n]

    def ring(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """The next of ``RING`` rotating output buffers: a chunk handed to the (background) writer stays
        intact while the next ``RING - 1`` chunks are produced."""
        self._ring_pos = (getattr(self, "_ring_pos", -1) + 1) % RING
        return self.buffer(("ring", self._ring_pos), n, dtype)

    def load(self, inp: Input, name: str, s: int, e: int, dtype: torch.dtype, key=None) -> torch.Tensor:
        """Elements ``s:e`` of tensor ``name`` (flattened) of ``inp`` as ``dtype`` on the device, read with
        one ``pread`` into the pooled buffer ``key`` (converted through a staging buffer when the stored
        dtype differs). Valid until the same key is loaded again."""
        stored = inp.reader.dtype(name)
        key = key if key is not None else ("load", id(inp))
        if stored == dtype and self.device.type == "cpu":
            return inp.reader.read_into(name, s, e, self.buffer(key, e - s, dtype))
        staged = inp.reader.read_into(name, s, e, self.buffer(("stage", key), e - s, stored))
        return self.buffer(key, e - s, dtype).copy_(staged)

    @staticmethod
    def is_finite(x: torch.Tensor) -> bool:
        """Cheap test that every entry is finite (a sum overflows only if some entry is huge; then exact)."""
        if not x.is_floating_point() or x.numel() == 0:
            return True
        total = x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
        return bool(torch.isfinite(total)) or bool(torch.isfinite(x).all())

    def find_nonfinite(self, inputs: Sequence[Input], name: str, s: int, e: int) -> None:
        """Raise ``MergeError`` naming the first input whose chunk ``s:e`` of ``name`` holds NaN or Inf."""
        for inp in inputs:
            raw = inp.reader.flat(name)[s:e]
            if raw.is_floating_point() and not self.is_finite(raw):
                bad = ~torch.isfinite(raw)
                first = int(bad.nonzero()[0]) + s
                kind = "NaN" if bool(torch.isnan(raw).any()) else "Inf"
                raise MergeError(f"model {inp.describe()}: tensor {name!r} contains {kind} (first at flat index {first})")

    def check(self, x: torch.Tensor, inputs: Sequence[Input], name: str, s: int, e: int) -> None:
        """Raise ``MergeError`` when ``x`` (computed from ``inputs``' chunk s:e) is not finite: naming the input
        that holds NaN/Inf, or saying the result overflowed."""
        self._checked = name  # the tensor ``emit`` names if its cast to a narrower dtype overflows
        if self.is_finite(x):
            return
        self.find_nonfinite(inputs, name, s, e)
        raise MergeError(f"tensor {name!r}: merged values overflow {x.dtype} (inputs are finite)")

    def release(self, inputs: Sequence[Input], name: str, s: int, e: int) -> None:
        """Done with chunk s:e of ``name`` in ``inputs``: drop their pages from this process, in spans of at
        least ``RELEASE_SPAN`` elements (and at the end of the tensor) to keep system calls few."""
        start = self._released.get(name)
        if start is None or start > s:  # a new pass over the tensor
            start = s
        numel = math.prod(inputs[0].reader.shape(name)) if inputs else e
        if e - start < RELEASE_SPAN and e < numel:
            self._released[name] = start
            return
        self._released.pop(name, None)
        seen = set()
        for inp in inputs:
            if id(inp.reader) not in seen:
                seen.add(id(inp.reader))
                inp.reader.release(name, start, e)

    @staticmethod
    def prefetch(inputs: Sequence[Input], name: str) -> None:
        seen = set()
        for inp in inputs:
            if id(inp.reader) not in seen:
                seen.add(id(inp.reader))
                inp.reader.prefetch(name)


    def emit(self, x: torch.Tensor, out_dtype: torch.dtype, stable: bool = False) -> torch.Tensor:
        """``x`` as ``out_dtype`` on the CPU in a buffer that stays valid while the writer catches up:
        ``x`` itself when ``stable`` (a ring buffer or a view of an input file) and no cast is needed,
        else a copy in the next ring buffer. ``x`` has passed ``check``; a cast to a narrower floating dtype
        (float32 sums of float16 models, bfloat16 to float16) can still overflow it, and is refused
        (``MergeError`` naming the tensor last checked) rather than written as Inf."""
        if stable and x.dtype == out_dtype and x.device.type == "cpu":
            return x
        ring = self.ring(x.numel(), out_dtype)
        y = x.to(out_dtype).cpu() if ring.device.type != "cpu" else ring.copy_(x)
        narrower = out_dtype.itemsize < x.dtype.itemsize or (out_dtype.itemsize == x.dtype.itemsize and out_dtype != x.dtype)
        if out_dtype.is_floating_point and narrower and not self.is_finite(y):  # bfloat16 -> float16 narrows too
            name = getattr(self, "_checked", None)
            raise MergeError(f"tensor {name!r}: merged values overflow {out_dtype} (inputs are finite)")
        return y

    def copy(self, name: str, src: Input, out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """``src``'s tensor unchanged (cast to ``out_dtype``), checked for NaN/Inf."""
        n = src.reader.numel(name)
        for a, b in self.ranges(n):
            chunk = src.reader.flat(name)[a:b]
            if chunk.is_floating_point() and not self.is_finite(chunk):
                self.find_nonfinite([src], name, a, b)
            yield chunk if chunk.dtype == out_dtype else self.ring(b - a, out_dtype).copy_(chunk)
            self.release([src], name, a, b)


# ---- writing ---------------------------------------------------------------------------------------------


def refuse_existing(out: str | os.PathLike, force: bool) -> None:
    if Path(out).exists() and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")


def stream_to_checkpoint(
    out: str | os.PathLike,
    specs: Sequence[TensorSpec],
    produce: Callable[[str], Iterator[torch.Tensor]],
    *,
    force: bool = False,
    shard_size: int | str | None = "5GB",
    metadata: dict | None = None,
    copy_files_from: str | os.PathLike | None = None,
    extra_files: dict[str, str] | None = None,
    progress: bool = True,
    desc: str = "merge",
) -> Path:
    """Write every spec's chunks from ``produce(name)`` to ``out`` atomically.

    ``out`` ending in ``.safetensors`` is written as one file; anything else as a checkpoint directory
    (shards + index, files copied from ``copy_files_from``, ``extra_files`` as ``{name: text}``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    refuse_existing(out, force)
    total = sum(s.nbytes for s in specs)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False)

    def chunks(order):
        for name in order:
            for chunk in produce(name):
                bar.update(chunk.numel() * chunk.element_size())
                yield name, chunk

    try:
        if out.suffix == ".safetensors":
            write_safetensors_file(out, specs, chunks([s.name for s in _file_order(specs)]), metadata=metadata, force=force)
            return out
        with atomic_dir(out, force=force) as tmp:
            writer = ShardedWriter(tmp, specs, shard_size=shard_size, metadata=metadata)
            try:
                write_in_background(chunks(writer.order), writer.write)
                writer.close()
            finally:
                writer.abort()
            if copy_files_from is not None:
                copy_model_files(copy_files_from, tmp)
                floats = {s.dtype for s in specs if s.dtype.is_floating_point}
                if len(floats) == 1:
                    set_config_dtype(tmp, floats.pop())
            for fname, text in (extra_files or {}).items():
                with atomic_file(tmp / fname) as fh:
                    fh.write(text)
        return out
    finally:
        bar.close()


def write_in_background(items: Iterator[tuple[str, torch.Tensor]], write: Callable[[str, torch.Tensor], None]) -> None:
    """Call ``write(name, chunk)`` for every item on a writer thread while the caller's thread produces the
    next chunks (file writes release the GIL). At most ``RING - 2`` chunks wait in the queue, so producers
    that rotate ``RING`` output buffers never overwrite a chunk before it is written. Errors on either side
    stop both and are re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=RING - 2)
    failed: list[BaseException] = []

    def worker() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            if failed:
                continue
            try:
                write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                failed.append(exc)

    thread = threading.Thread(target=worker, name="asr-analogy-writer", daemon=True)
    thread.start()
    try:
        for item in items:
            if failed:
                break
            q.put(item)
    finally:
        q.put(None)
        thread.join()
    if failed:
        raise failed[0]


_MALLOC_TUNED = False


def tune_malloc() -> None:
    """Keep chunk-sized (MiB) temporaries on the heap instead of a fresh ``mmap`` per allocation.

    glibc serves allocations above a (dynamic) threshold with ``mmap`` and trims freed heap memory eagerly;
    streaming then pays page faults for every temporary of every chunk (measured: ~10x more minor faults on a
    TIES merge). Raise both thresholds once per process (glibc only; a no-op elsewhere). The heap then keeps
    up to 256 MiB of freed memory for reuse.

    This changes the whole process, so it is an opt-in: library functions (``merge``, ``vector``,
    ``apply_vector``) never call it; the ``asr-analogy`` merge commands do, and so may a program of yours.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 256 << 20)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op torch threads (None: leave as is), restoring the setting after."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _file_order(specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    from asr_analogy.io.checkpoint import plan_shards

    shards = plan_shards(specs, None)
    return shards[0] if shards else []

