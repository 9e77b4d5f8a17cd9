"""Streaming merge engine: tensor by tensor, chunk by chunk, straight from memory-mapped inputs to the
output shards.

For every output tensor the engine reads aligned flat chunks (``chunk_elements`` entries, default 2^20 on
CPU) of the same tensor from every input, computes the merged chunk and appends it to the safetensors shard
whose header was written in advance (``io.checkpoint.ShardedWriter``). Methods that need whole-tensor
statistics (magnitude top-k thresholds, l1 rescaling, SLERP norms and angle) make one or two extra passes over
the chunks first. Input pages are dropped from the process after each chunk, so peak memory is
O(models x chunk), independent of model size; everything is written into a temporary directory beside the
output and renamed at the end, so an interrupted merge leaves no partial output.

Checks before anything is written: every input has the anchor's (base's) tensor names, shapes and dtypes.
While streaming: every input chunk is finite (no NaN/Inf). Errors name the model and the tensor.
"""

from __future__ import annotations

import hashlib
import os
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
from asr_analogy.ops.sparsify import breadcrumbs_ks, dare_mask, magnitude_k, magnitude_keys, top_k_cuts

CPU_CHUNK = 1 << 20
CUDA_CHUNK = 1 << 24


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
    """Reads aligned chunks of one tensor from several inputs, on ``device`` in a compute dtype."""

    def __init__(self, device: torch.device, chunk_elements: int | None = None):
        self.device = device
        self.chunk = chunk_elements or (CUDA_CHUNK if device.type == "cuda" else CPU_CHUNK)

    def ranges(self, n: int) -> list[tuple[int, int]]:
        return [(s, min(n, s + self.chunk)) for s in range(0, n, self.chunk)] or [(0, 0)]

    def load(self, inp: Input, name: str, s: int, e: int, dtype: torch.dtype, check: bool = True) -> torch.Tensor:
        """Elements ``s:e`` of tensor ``name`` (flattened) of ``inp`` as ``dtype`` on the device.

        With ``check``, raises ``MergeError`` when the chunk holds NaN or Inf.
        """
        raw = inp.reader.flat(name)[s:e]
        if check and raw.is_floating_point() and raw.numel():
            total = raw.sum(dtype=torch.float64 if raw.dtype == torch.float64 else torch.float32)
            if not torch.isfinite(total) and not torch.isfinite(raw).all():
                bad = int((~torch.isfinite(raw)).nonzero()[0]) + s
                kind = "NaN" if torch.isnan(raw).any() else "Inf"
                raise MergeError(f"model {inp.describe()}: tensor {name!r} contains {kind} (first at flat index {bad})")
        return raw.to(device=self.device, dtype=dtype)

    @staticmethod
    def release(inputs: Sequence[Input], name: str, s: int, e: int) -> None:
        for inp in inputs:
            inp.reader.release(name, s, e)

    def prefetch(self, inputs: Sequence[Input], name: str) -> None:
        for inp in inputs:
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
        import re

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

    def mask(self, delta: torch.Tensor) -> torch.Tensor:
        i = self.chunk_index
        self.chunk_index += 1
        if self.kind == "random":
            gen = torch.Generator(device=delta.device)
            gen.manual_seed(_seed_for(self.seed, self.name, self.term, i))
            return dare_mask(delta.numel(), self.density, gen, delta.device)
        keys = magnitude_keys(delta)
        if self.kind == "magnitude":
            keep, self.seen[0] = self.cuts[0].mask(keys, self.seen[0])
            return keep
        outer, self.seen[0] = self.cuts[0].mask(keys, self.seen[0])
        top, self.seen[1] = self.cuts[1].mask(keys, self.seen[1])
        return outer & ~top


class TensorMerger:
    """Computes one merged output tensor as a stream of flat chunks."""

    def __init__(self, streamer: Streamer, method: Method, resolver: Resolver, *, seed: int = 0, compute_dtype: torch.dtype | None = None):
        self.s = streamer
        self.method = method
        self.res = resolver
        self.seed = seed
        self.explicit_dtype = compute_dtype

    # -- generalized task arithmetic --
    def _delta(self, term: Term, name: str, a: int, b: int, dtype, anchor_chunk=None, anchor: Input | None = None, check=True) -> torch.Tensor:
        plus = self.s.load(term.plus, name, a, b, dtype, check)
        if term.minus is None:
            return plus
        if anchor_chunk is not None and term.minus is anchor:
            return plus - anchor_chunk
        return plus - self.s.load(term.minus, name, a, b, dtype, check)

    def gta(self, name: str, anchor: Input, terms: Sequence[Term], out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """anchor + lambda * normalize?(sum_i w_i sparsify(delta_i)) with optional sign consensus."""
        m, res = self.method, self.res
        n = anchor.reader.flat(name).numel()
        cdtype = compute_dtype_for(anchor.reader.dtype(name), self.explicit_dtype)
        weights = [res.number("weight", name, 1.0, t.key) for t in terms]
        lam = res.number("lambda", name, 1.0)
        normalize = res.flag("normalize", name, m.normalize)
        consensus = res.raw("consensus", name) or m.consensus
        if consensus not in (None, "sum", "count"):
            raise ConfigError(f"{res.source}: consensus must be 'sum' or 'count', got {consensus!r}")
        if m.consensus is None and res.raw("consensus", name):
            consensus = res.raw("consensus", name)
        rescale = rescale_norm(m, res.raw("rescale", name))
        inputs = [anchor] + [x for t in terms for x in (t.plus, t.minus) if x is not None]
        self.s.prefetch(inputs, name)
        ranges = self.s.ranges(n)

        sparsifiers: list[_Sparsifier | None] = []
        factors: list[float] = []
        for i, term in enumerate(terms):
            density = res.number("density", name, 1.0, term.key)
            sp = None
            if m.sparsify is not None and density < 1:
                if m.sparsify == "random":
                    sp = _Sparsifier("random", max(density, 0.0), seed=self.seed, name=name, term=i)
                else:
                    def chunks(term=term):
                        for a, b in ranges:
                            yield self._delta(term, name, a, b, cdtype, check=False)
                            self.s.release(inputs, name, a, b)

                    if m.sparsify == "magnitude":
                        cuts = top_k_cuts(chunks, [magnitude_k(n, density)], n)
                    else:
                        gamma = res.number("gamma", name, 0.01, term.key)
                        cuts = top_k_cuts(chunks, list(breadcrumbs_ks(n, density, gamma)), n)
                    sp = _Sparsifier(m.sparsify, density, cuts)
            factor = 1.0
            if sp is not None and rescale == "inverse" and m.sparsify == "random":
                factor = 1.0 / density if density > 0 else 0.0
            elif sp is not None and rescale in ("l1", "l2", "linf"):
                factor = self._norm_ratio(term, name, anchor, inputs, ranges, cdtype, sp, rescale)
                sp.reset()
            sparsifiers.append(sp)
            factors.append(factor)

        for a, b in ranges:
            base = self.s.load(anchor, name, a, b, cdtype)
            deltas = []
            for i, term in enumerate(terms):
                d = self._delta(term, name, a, b, cdtype, base, anchor)
                sp = sparsifiers[i]
                if sp is not None:
                    d = torch.where(sp.mask(d), d, 0) if sp.density > 0 or sp.kind != "random" else torch.zeros_like(d)
                if factors[i] != 1.0:
                    d = d * factors[i]
                deltas.append(d)
            if deltas:
                out = generalized_task_arithmetic(base, deltas, weights, consensus=consensus, normalize=normalize, lam=lam)
            else:
                out = base
            yield out.to(out_dtype)
            self.s.release(inputs, name, a, b)

    def _norm_ratio(self, term, name, anchor, inputs, ranges, cdtype, sp, norm) -> float:
        """||delta|| / ||masked delta|| for the l1/l2/linf rescale (1 when either is below 1e-7)."""
        before = after = 0.0
        for a, b in ranges:
            d = self._delta(term, name, a, b, cdtype, check=False).double()
            kept = torch.where(sp.mask(d.to(cdtype)), d, 0)
            if norm == "l1":
                before += float(d.abs().sum())
                after += float(kept.abs().sum())
            elif norm == "l2":
                before += float(d.square().sum())
                after += float(kept.square().sum())
            else:
                before = max(before, float(d.abs().max())) if d.numel() else before
                after = max(after, float(kept.abs().max())) if d.numel() else after
            self.s.release(inputs, name, a, b)
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
        n = first.reader.flat(name).numel()
        cdtype = compute_dtype_for(first.reader.dtype(name), self.explicit_dtype)
        wdtype = work_dtype(cdtype)
        weights = torch.tensor([res.number("weight", name, 1.0, k) for k in keys], dtype=wdtype)
        normalize = res.flag("normalize", name, True)
        total = weights.sum()
        if normalize and abs(float(total)) < 1e-8:
            raise ConfigError(f"{res.source}: linear weights sum to zero for tensor {name!r}; set normalize: false")
        self.s.prefetch(inputs, name)
        weights = weights.to(self.s.device)
        for a, b in self.s.ranges(n):
            acc = torch.zeros(b - a, dtype=wdtype, device=self.s.device)
            for i, inp in enumerate(inputs):
                acc.add_(self.s.load(inp, name, a, b, cdtype).to(wdtype) * weights[i])
            if normalize:
                acc /= total.to(acc.device)
            yield acc.to(cdtype).to(out_dtype)
            self.s.release(inputs, name, a, b)

    # -- slerp --
    def slerp(self, name: str, base: Input, other: Input, out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        """Spherical interpolation from base (t=0) to other (t=1) over the flattened tensor (Shoemake 1985)."""
        t = self.res.number("t", name, None)
        n = base.reader.flat(name).numel()
        cdtype = compute_dtype_for(base.reader.dtype(name), self.explicit_dtype)
        wdtype = work_dtype(cdtype)
        inputs = [base, other]
        sq0 = sq1 = dot = 0.0
        ranges = self.s.ranges(n)
        for a, b in ranges:
            x = self.s.load(base, name, a, b, cdtype).to(wdtype)
            y = self.s.load(other, name, a, b, cdtype).to(wdtype)
            sq0 += float(x.double().square().sum())
            sq1 += float(y.double().square().sum())
            dot += float((x.double() * y.double()).sum())
            self.s.release(inputs, name, a, b)
        c0, c1 = slerp_coefficients(t, slerp_cosine(sq0, sq1, dot))
        for a, b in ranges:
            x = self.s.load(base, name, a, b, cdtype, check=False).to(wdtype)
            y = self.s.load(other, name, a, b, cdtype, check=False).to(wdtype)
            yield (c0 * x + c1 * y).to(cdtype).to(out_dtype)
            self.s.release(inputs, name, a, b)

    # -- copy --
    def copy(self, name: str, src: Input, out_dtype: torch.dtype) -> Iterator[torch.Tensor]:
        n = src.reader.flat(name).numel()
        for a, b in self.s.ranges(n):
            chunk = src.reader.flat(name)[a:b]
            yield chunk if chunk.dtype == out_dtype else chunk.to(out_dtype)
            src.reader.release(name, a, b)


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
                for name, chunk in chunks(writer.order):
                    writer.write(name, chunk)
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


def _file_order(specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    from asr_analogy.io.checkpoint import plan_shards

    shards = plan_shards(specs, None)
    return shards[0] if shards else []


# ---- the merge entry point -------------------------------------------------------------------------------


def _selected(name: str, include, exclude) -> bool:
    import re

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
    source: str = "<config>",
) -> Path:
    """Run a validated ``MergeConfig`` into ``out_dir`` (see ``asr_analogy.merge.merge``)."""
    refuse_existing(out_dir, force)
    dev = resolve_device(device)
    cdtype = parse_dtype(dtype) or cfg.torch_dtype
    odtype = parse_dtype(out_dtype, "out_dtype") or cfg.torch_out_dtype
    streamer = Streamer(dev, chunk_elements)
    overrides = [(o.pattern, o.parameters) for o in (cfg.overrides or [])]

    with ExitStack() as stack:
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
