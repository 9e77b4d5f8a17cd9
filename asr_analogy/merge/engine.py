"""Streaming merge engine: tensor by tensor, chunk by chunk, from the input files to the output shards.

For every output tensor the engine reads aligned flat chunks (``chunk_elements`` entries, default 2^18 on
CPU, 2^24 on CUDA) of the same tensor from every input with ``pread`` into a few reused buffers, computes the
merged chunk and hands it to a writer thread that appends it to the safetensors shard whose header was
written in advance (``io.checkpoint.ShardedWriter``). Methods that need whole-tensor statistics (magnitude
top-k thresholds, l1 rescaling, SLERP norms and angle) make one or two extra passes over the chunks first.
Peak memory is O(models x chunk), independent of model size; everything is written into a temporary
directory beside the output and renamed at the end, so an interrupted merge leaves no partial output.

Checks before anything is written: every input has the anchor's (base's) tensor names, shapes and dtypes.
While streaming: the merged chunk is finite, and so is every delta whose NaN/Inf a mask or sign election
could hide (sparsified or consensus methods); a non-finite result is traced back to the input that holds the
NaN/Inf. Errors name the model and the tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import re
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.atomic import atomic_dir, atomic_file
from asr_analogy.io.checkpoint import (
    CheckpointReader,
    ShardedWriter,
    TensorSpec,
    _set_config_dtype,
    copy_model_files,
    natural_key,
    write_safetensors_file,
)
from asr_analogy.merge.config import DTYPES, MergeConfig, evaluate_setting, layer_positions, resolve_model
from asr_analogy.merge.methods import METHODS, Method, as_bool, as_float, rescale_norm
from asr_analogy.ops.combine import generalized_task_arithmetic
from asr_analogy.ops.interpolate import slerp_coefficients, slerp_cosine, work_dtype
from asr_analogy.ops.sparsify import breadcrumbs_ks, dare_mask, magnitude_k, top_k_cuts_many

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


def open_inputs(refs: Sequence[str], stack: ExitStack, config_dir=None) -> dict[str, Input]:
    """Resolve and open each distinct reference once."""
    out: dict[str, Input] = {}
    by_path: dict[Path, Input] = {}
    for ref in refs:
        if ref in out:
            continue
        path = resolve_model(ref, config_dir)
        key = path.resolve()
        if key in by_path:
            out[ref] = by_path[key]
            continue
        reader = stack.enter_context(CheckpointReader(path))
        out[ref] = by_path[key] = Input(ref, path, reader)
    return out


def check_compatible(anchor: Input, others: Sequence[Input], *, allow_dtype_mismatch: bool = False, role: str = "base") -> None:
    """Same tensor names, shapes and dtypes as ``anchor``; raises ``MergeError`` naming model and tensor."""
    names = set(anchor.reader.names())
    for inp in others:
        if inp.reader is anchor.reader:
            continue
        theirs = set(inp.reader.names())
        missing = sorted(names - theirs, key=natural_key)
        if missing:
            raise MergeError(
                f"model {inp.describe()} has no tensor {missing[0]!r}, which {role} {anchor.describe()} has "
                f"({len(missing)} tensor(s) missing)"
            )
        extra = sorted(theirs - names, key=natural_key)
        if extra:
            raise MergeError(
                f"model {inp.describe()} has tensor {extra[0]!r}, which {role} {anchor.describe()} lacks "
                f"({len(extra)} extra tensor(s))"
            )
        for name in anchor.reader.names():
            a, b = anchor.reader.shape(name), inp.reader.shape(name)
            if a != b:
                raise MergeError(f"tensor {name!r}: shape {list(b)} in model {inp.describe()} but {list(a)} in {role} {anchor.describe()}")
            da, db = anchor.reader.dtype(name), inp.reader.dtype(name)
            if da != db and not (allow_dtype_mismatch and da.is_floating_point and db.is_floating_point):
                hint = " (set dtype: to merge models stored in different precisions)" if da.is_floating_point and db.is_floating_point else ""
                raise MergeError(f"tensor {name!r}: dtype {db} in model {inp.describe()} but {da} in {role} {anchor.describe()}{hint}")


# ---- chunk streaming --------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def parse_dtype(dtype: str | torch.dtype | None, what: str = "dtype") -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).removeprefix("torch.")
    if key not in DTYPES:
        raise ConfigError(f"unknown {what} {dtype!r} (float32, float64, float16, bfloat16)")
    return DTYPES[key]


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


def compute_dtype_for(stored: torch.dtype, explicit: torch.dtype | None) -> torch.dtype:
    """The explicit dtype when given (mergekit semantics), else float32 for half-precision storage, else
    the stored dtype."""
    if explicit is not None:
        return explicit
    return stored if stored.itemsize >= 4 else torch.float32


# ---- parameter resolution ------------------------------------------------------------------------------


@dataclass
class Resolver:
    """Per-tensor parameter lookup: overrides > per-model > global > defaults."""

    source: str
    global_params: dict = field(default_factory=dict)
    model_params: dict = field(default_factory=dict)  # term key -> settings
    overrides: list = field(default_factory=list)  # [(compiled regex, settings)]
    positions: dict = field(default_factory=dict)

    def _lookup(self, key: str, name: str, term=None):
        t = self.positions.get(name, 0.0)
        for pattern, settings in self.overrides:
            if key in settings and re.search(pattern, name):
                value = evaluate_setting(settings[key], name, t)
                if value is not None:
                    return value
        if term is not None:
            settings = self.model_params.get(term) or {}
            if key in settings:
                value = evaluate_setting(settings[key], name, t)
                if value is not None:
                    return value
        if key in self.global_params:
            return evaluate_setting(self.global_params[key], name, t)
        return None

    def number(self, key: str, name: str, default: float | None, term=None) -> float:
        value = self._lookup(key, name, term)
        if value is None:
            if default is None:
                who = f" for model {term}" if term is not None else ""
                raise ConfigError(f"{self.source}: parameter '{key}' is required{who} (tensor {name!r})")
            return default
        return as_float(value, key, name, self.source)

    def flag(self, key: str, name: str, default: bool) -> bool:
        value = self._lookup(key, name)
        return default if value is None else as_bool(value, key, name, self.source)

    def raw(self, key: str, name: str):
        return self._lookup(key, name)


# ---- methods per tensor ----------------------------------------------------------------------------------


@dataclass
class Term:
    """One task vector: ``plus - minus`` (``minus`` None: ``plus`` is already a delta, e.g. a saved vector)."""

    key: str  # model label used for per-model parameters
    plus: Input
    minus: Input | None


def _seed_for(seed: int, name: str, term: int, chunk: int) -> int:
    digest = hashlib.blake2b(f"{seed}\0{name}\0{term}\0{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class _Sparsifier:
    """Keep-mask of one term for one tensor, computed chunk by chunk in flat order."""

    def __init__(self, kind: str, density: float, cuts=None, seed: int = 0, name: str = "", term: int = 0):
        self.kind, self.density, self.cuts = kind, density, cuts
        self.seed, self.name, self.term = seed, name, term
        self.reset()

    def reset(self) -> None:
        self.seen = [0] * len(self.cuts or [])
        self.chunk_index = 0

    def apply(self, delta: torch.Tensor) -> torch.Tensor:
        """The next chunk of the delta (1-D, flat order) with dropped entries zeroed (a new tensor)."""
        i = self.chunk_index
        self.chunk_index += 1
        if self.kind == "random":
            gen = torch.Generator(device=delta.device)
            gen.manual_seed(_seed_for(self.seed, self.name, self.term, i))
            return delta * dare_mask(delta.numel(), self.density, gen, delta.device).to(delta.dtype)
        kept, self.seen[0] = self.cuts[0].keep(delta, self.seen[0])
        if self.kind == "outliers":  # drop the top ``gamma`` too: outer cut minus top cut
            top, self.seen[1] = self.cuts[1].keep(delta, self.seen[1])
            kept -= top
        return kept


class TensorMerger:
    """Computes one merged output tensor as a stream of flat chunks (each chunk is only valid until the
    next one is requested: buffers are reused)."""

    def __init__(self, streamer: Streamer, method: Method, resolver: Resolver, *, seed: int = 0, compute_dtype: torch.dtype | None = None):
        self.s = streamer
        self.method = method
        self.res = resolver
        self.seed = seed
        self.explicit_dtype = compute_dtype

    def _emit(self, x: torch.Tensor, out_dtype: torch.dtype, stable: bool = False) -> torch.Tensor:
        """``x`` as ``out_dtype`` on the CPU in a buffer that stays valid while the writer catches up:
        ``x`` itself when ``stable`` (a ring buffer or a view of an input file) and no cast is needed,
        else a copy in the next ring buffer."""
        if stable and x.dtype == out_dtype and x.device.type == "cpu":
            return x
        ring = self.s.ring(x.numel(), out_dtype)
        if ring.device.type != "cpu":
            return x.to(out_dtype).cpu()
        return ring.copy_(x)

    # -- generalized task arithmetic --
    def _delta(self, term: Term, name: str, a: int, b: int, dtype, i: int, base: torch.Tensor | None = None, anchor: Input | None = None) -> torch.Tensor:
        """plus - minus for chunk a:b, written into the pooled buffer ("delta", i)."""
        out = self.s.buffer(("delta", i), b - a, dtype)
        plus = self.s.load(term.plus, name, a, b, dtype, ("plus", i))
        if term.minus is None:
            return out.copy_(plus)
        minus = base if (base is not None and term.minus is anchor) else self.s.load(term.minus, name, a, b, dtype, ("minus", i))
        return torch.sub(plus, minus, out=out)

    def gta(self, name: str, anchor: Input, terms: Sequence[Term], out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """anchor + lambda * normalize?(sum_i w_i sparsify(delta_i)) with optional sign consensus."""
        m, res = self.method, self.res
        n = anchor.reader.numel(name)
        cdtype = compute_dtype_for(anchor.reader.dtype(name), self.explicit_dtype)
        weights = [res.number("weight", name, 1.0, t.key) for t in terms]
        lam = res.number("lambda", name, 1.0)
        normalize = res.flag("normalize", name, m.normalize)
        consensus = res.raw("consensus", name) or m.consensus
        if consensus not in (None, "sum", "count"):
            raise ConfigError(f"{res.source}: consensus must be 'sum' or 'count', got {consensus!r}")
        rescale = rescale_norm(m, res.raw("rescale", name))
        inputs = [anchor] + [x for t in terms for x in (t.plus, t.minus) if x is not None]
        self.s.prefetch(inputs, name)
        ranges = self.s.ranges(n)

        densities = [res.number("density", name, 1.0, t.key) for t in terms]
        sparsifiers: list[_Sparsifier | None] = [None] * len(terms)
        factors: list[float] = [1.0] * len(terms)
        ranked = []  # terms needing magnitude cuts, found together in one streamed pass
        for i, term in enumerate(terms):
            if m.sparsify is None or densities[i] >= 1:
                continue
            if m.sparsify == "random":
                sparsifiers[i] = _Sparsifier("random", max(densities[i], 0.0), seed=self.seed, name=name, term=i)
            else:
                ranked.append(i)
        if ranked:
            ks = []
            for i in ranked:
                if m.sparsify == "magnitude":
                    ks.append([magnitude_k(n, densities[i])])
                else:
                    ks.append(list(breadcrumbs_ks(n, densities[i], res.number("gamma", name, 0.01, terms[i].key))))
            for i, cuts in zip(ranked, self._cuts(terms, ranked, name, anchor, inputs, ranges, cdtype, ks)):
                sparsifiers[i] = _Sparsifier(m.sparsify, densities[i], cuts)
        for i, term in enumerate(terms):
            sp = sparsifiers[i]
            if sp is not None and rescale == "inverse":
                factors[i] = 1.0 / densities[i] if densities[i] > 0 else 0.0
            elif sp is not None and rescale in ("l1", "l2", "linf"):
                factors[i] = self._norm_ratio(term, i, name, inputs, ranges, cdtype, sp, rescale)
                sp.reset()

        # Deltas that are masked or sign-elected could hide a NaN/Inf from the output check: test them.
        check_deltas = consensus is not None or any(sp is not None and sp.kind == "random" for sp in sparsifiers)
        for a, b in ranges:
            base = self.s.load(anchor, name, a, b, cdtype, "base")
            deltas = []
            for i, term in enumerate(terms):
                d = self._delta(term, name, a, b, cdtype, i, base, anchor)
                if check_deltas and not self.s.is_finite(d):
                    self.s.find_nonfinite(inputs, name, a, b)
                sp = sparsifiers[i]
                if sp is not None:
                    d = sp.apply(d)
                if factors[i] != 1.0:
                    d.mul_(factors[i])
                deltas.append(d)
            direct = cdtype == out_dtype and self.s.device.type == "cpu"
            if deltas:
                target = self.s.ring(b - a, cdtype) if direct else self.s.buffer("out", b - a, cdtype)
                out = generalized_task_arithmetic(
                    base, deltas, weights, consensus=consensus, normalize=normalize, lam=lam, inplace=True, out=target
                )
            else:
                out = base
            self.s.check(out, inputs, name, a, b)
            stable = direct and bool(deltas)  # the result is in a ring buffer
            yield self._emit(out, out_dtype, stable=stable)

    def _cuts(self, terms, ranked, name, anchor, inputs, ranges, cdtype, ks):
        """Magnitude cuts of the ``ranked`` terms' deltas over the whole tensor (two streamed passes; the
        anchor chunk is read once per position for all terms)."""

        def chunks():
            for a, b in ranges:
                base = self.s.load(anchor, name, a, b, cdtype, "base")
                yield [self._delta(terms[i], name, a, b, cdtype, i, base, anchor) for i in ranked]

        try:
            return top_k_cuts_many(chunks, ks, ranges[-1][1])
        except ValueError:  # non-finite magnitudes
            for a, b in ranges:
                self.s.find_nonfinite(inputs, name, a, b)
            raise

    def _norm_ratio(self, term, i, name, inputs, ranges, cdtype, sp, norm) -> float:
        """||delta|| / ||masked delta|| for the l1/l2/linf rescale (1 when either is below 1e-7)."""
        before = after = 0.0
        for a, b in ranges:
            d = self._delta(term, name, a, b, cdtype, i)
            kept = sp.apply(d).double()
            d = d.double()
            if norm == "l1":
                before += float(d.abs().sum())
                after += float(kept.abs().sum())
            elif norm == "l2":
                before += float(d.square().sum())
                after += float(kept.square().sum())
            elif d.numel():
                before = max(before, float(d.abs().max()))
                after = max(after, float(kept.abs().max()))
        if norm == "l2":
            before, after = before**0.5, after**0.5
        if before < 1e-7 or after < 1e-7:
            return 1.0
        return before / after

    # -- linear --
    def linear(self, name: str, inputs: Sequence[Input], keys: Sequence[str], out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """sum_i w_i theta_i (/ sum_i w_i): float32 arithmetic (float64 for float64), inputs in listed order."""
        res = self.res
        first = inputs[0]
        n = first.reader.numel(name)
        cdtype = compute_dtype_for(first.reader.dtype(name), self.explicit_dtype)
        wdtype = work_dtype(cdtype)
        weights = torch.tensor([res.number("weight", name, 1.0, k) for k in keys], dtype=wdtype, device=self.s.device)
        normalize = res.flag("normalize", name, True)
        total = weights.sum()
        if normalize and abs(float(total)) < 1e-8:
            raise ConfigError(f"{res.source}: linear weights sum to zero for tensor {name!r}; set normalize: false")
        self.s.prefetch(inputs, name)
        for a, b in self.s.ranges(n):
            acc = self.s.buffer("acc", b - a, wdtype).zero_()
            for i, inp in enumerate(inputs):
                x = self.s.load(inp, name, a, b, cdtype, ("in", 0))
                acc.addcmul_(x if x.dtype == wdtype else x.to(wdtype), weights[i])
            if normalize:
                acc /= total
            out = acc if cdtype == wdtype else self.s.buffer("out", b - a, cdtype).copy_(acc)
            self.s.check(out, inputs, name, a, b)
            yield self._emit(out, out_dtype)

    # -- slerp --
    def slerp(self, name: str, base: Input, other: Input, out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """Spherical interpolation from base (t=0) to other (t=1) over the flattened tensor (Shoemake 1985)."""
        t = self.res.number("t", name, None)
        n = base.reader.numel(name)
        cdtype = compute_dtype_for(base.reader.dtype(name), self.explicit_dtype)
        wdtype = work_dtype(cdtype)
        inputs = [base, other]
        sq0 = sq1 = dot = 0.0
        ranges = self.s.ranges(n)
        for a, b in ranges:
            x = self.s.load(base, name, a, b, cdtype, "x").to(wdtype)
            y = self.s.load(other, name, a, b, cdtype, "y").to(wdtype)
            sq0 += float(torch.dot(x, x))
            sq1 += float(torch.dot(y, y))
            dot += float(torch.dot(x, y))
        if not all(map(lambda v: v == v and abs(v) != float("inf"), (sq0, sq1, dot))):
            for a, b in ranges:
                self.s.find_nonfinite(inputs, name, a, b)
        c0, c1 = slerp_coefficients(t, slerp_cosine(sq0, sq1, dot))
        for a, b in ranges:
            x = self.s.load(base, name, a, b, cdtype, "x").to(wdtype)
            y = self.s.load(other, name, a, b, cdtype, "y").to(wdtype)
            out = (c0 * x + c1 * y).to(cdtype)
            self.s.check(out, inputs, name, a, b)
            yield self._emit(out, out_dtype)

    # -- copy --
    def copy(self, name: str, src: Input, out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """The anchor's tensor unchanged (cast to ``out_dtype``), checked for NaN/Inf."""
        n = src.reader.numel(name)
        for a, b in self.s.ranges(n):
            chunk = src.reader.flat(name)[a:b]
            if chunk.is_floating_point() and not self.s.is_finite(chunk):
                self.s.find_nonfinite([src], name, a, b)
            yield chunk if chunk.dtype == out_dtype else self.s.ring(b - a, out_dtype).copy_(chunk)
            self.s.release([src], name, a, b)


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
                    _set_config_dtype(tmp, floats.pop())
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


# ---- the merge entry point -------------------------------------------------------------------------------


def _selected(name: str, include, exclude) -> bool:
    if include and not any(re.search(p, name) for p in include):
        return False
    if exclude and any(re.search(p, name) for p in exclude):
        return False
    return True


def run_merge(
    cfg: MergeConfig,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    shard_size: int | str | None = "5GB",
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
    out_dtype: str | torch.dtype | None = None,
    progress: bool = True,
    chunk_elements: int | None = None,
    threads: int | None = 1,
    source: str = "<config>",
) -> Path:
    """Run a validated ``MergeConfig`` into ``out_dir`` (see ``asr_analogy.merge.merge``)."""
    refuse_existing(out_dir, force)
    tune_malloc()
    dev = resolve_device(device)
    cdtype = parse_dtype(dtype) or cfg.torch_dtype
    odtype = parse_dtype(out_dtype, "out_dtype") or cfg.torch_out_dtype
    streamer = Streamer(dev, chunk_elements)
    overrides = [(o.pattern, o.parameters) for o in (cfg.overrides or [])]

    with torch_threads(threads if dev.type == "cpu" else None), ExitStack() as stack:
        if cfg.analogy is not None:
            an = cfg.analogy
            method = METHODS[an.method]
            refs = [an.c] + [r for p in an.pairs for r in (p.a, p.b)]
            inputs = open_inputs(refs, stack, cfg.config_dir)
            anchor = inputs[an.c]
            terms = [Term(f"pair {i + 1}", inputs[p.b], inputs[p.a]) for i, p in enumerate(an.pairs)]
            global_params = {"lambda": an.lambda_, "normalize": True if an.normalize is None else an.normalize}
            for key in ("density", "gamma", "rescale", "consensus"):
                if getattr(an, key) is not None:
                    global_params[key] = getattr(an, key)
            model_params = {f"pair {i + 1}": {"weight": p.weight} for i, p in enumerate(an.pairs)}
            others = [x for t in terms for x in (t.plus, t.minus)]
            role = "model C"
        else:
            method = METHODS[cfg.merge_method]
            refs = ([cfg.base_model] if cfg.base_model else []) + [m.model for m in cfg.models]
            inputs = open_inputs(refs, stack, cfg.config_dir)
            base = inputs[cfg.base_model] if cfg.base_model else None
            global_params = dict(cfg.parameters or {})
            model_params = {m.model: (m.parameters or {}) for m in cfg.models}
            role = "base"
            if method.kind == "linear":
                order = [m.model for m in cfg.models]
                if cfg.base_model and not any(inputs[r].path.resolve() == base.path.resolve() for r in order):
                    order.append(cfg.base_model)  # mergekit averages the base too, with its (global) weight
                lin_inputs = [inputs[r] for r in order]
                anchor = base or lin_inputs[0]
                others = lin_inputs
                terms = []
            else:
                anchor = base
                non_base = [m.model for m in cfg.models if inputs[m.model].path.resolve() != base.path.resolve()]
                terms = [Term(r, inputs[r], base) for r in non_base]
                others = [inputs[r] for r in non_base]
                if method.kind == "slerp" and len(non_base) != 1:
                    raise ConfigError(f"{source}: slerp needs base_model and exactly one other model, got {len(non_base)}")
        check_compatible(anchor, others, allow_dtype_mismatch=cdtype is not None, role=role)

        names = anchor.reader.names()
        resolver = Resolver(source, global_params, model_params, overrides, layer_positions(names))
        merger = TensorMerger(streamer, method, resolver, seed=cfg.seed, compute_dtype=cdtype)

        def out_dtype_for(name: str) -> torch.dtype:
            stored = anchor.reader.dtype(name)
            if not stored.is_floating_point:
                return stored
            return odtype or cdtype or stored

        specs = [TensorSpec(n, out_dtype_for(n), anchor.reader.shape(n)) for n in names]

        def produce(name: str) -> Iterator[torch.Tensor]:
            odt = out_dtype_for(name)
            if not anchor.reader.dtype(name).is_floating_point or not _selected(name, cfg.include, cfg.exclude):
                return merger.copy(name, anchor, odt)
            if method.kind == "linear":
                return merger.linear(name, others, [i.label for i in others], odt)
            if method.kind == "slerp":
                return merger.slerp(name, anchor, others[0], odt)
            return merger.gta(name, anchor, terms, odt)

        copy_from = cfg.copy_files_from or anchor.path
        if cfg.copy_files_from:
            copy_from = resolve_model(cfg.copy_files_from, cfg.config_dir)
        metadata = {"merge_method": (f"analogy/{cfg.analogy.method}" if cfg.analogy else method.name)}
        return stream_to_checkpoint(
            out_dir,
            specs,
            produce,
            force=force,
            shard_size=shard_size,
            metadata=metadata,
            copy_files_from=copy_from,
            extra_files={"merge_config.yaml": cfg.to_yaml()},
            progress=progress,
        )
