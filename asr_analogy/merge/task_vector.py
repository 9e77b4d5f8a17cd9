"""Task vectors on disk and in memory.

On disk a task vector is a safetensors checkpoint (one ``.safetensors`` file, or a directory of shards)
holding tau = theta_finetuned - theta_base for every floating-point tensor, with this ``__metadata__``:

| key                   | meaning                                                              |
|-----------------------|----------------------------------------------------------------------|
| asr_analogy_kind      | ``task_vector``                                                      |
| method                | ``finetuned - base`` (or how the vector was built, e.g. ``a + b``)   |
| base_fingerprint      | ``CheckpointReader.fingerprint()`` of the base it was computed from  |
| finetuned_fingerprint | fingerprint of the fine-tuned model (empty when not from a model)    |
| tensor_count          | number of tensors in the vector                                      |
| provenance            | JSON object saying how it was made (e.g. ``{"kind": "syn2real",       |
|                       | "A": ..., "B": ...}``); ``{}`` when nothing more is known              |

Every task vector this package writes uses this format: ``vector``, ``TaskVector.save``, ``merge`` of vector
inputs only (provenance ``{"kind": "merge", "method": ..., "inputs": [...]}``), the syn2real recipe's pair and
ensemble vectors. ``apply_vector`` (``asr-analogy apply-vector``), ``TaskVector.load`` and ``merge`` (a
``vector:`` entry) read all of them, and compressed vectors (``merge.compressed``) expanded tensor by tensor. Reading and writing the metadata lives in ``merge.vector_format``.

``apply_vector`` refuses a base whose fingerprint differs unless ``allow_other_base`` is set (the analogy
theta_C + lambda*(theta_B - theta_A) deliberately applies a vector from base A to model C).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping as MappingABC
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, Mapping

import torch

from asr_analogy.errors import ConfigError, MergeError
from asr_analogy.io.atomic import refuse_overlap
from asr_analogy.io.checkpoint import CheckpointReader, TensorSpec, fingerprint_mismatch, save_checkpoint
from asr_analogy.io.model_card import CARD_FILE, derived_card_text
from asr_analogy.merge.compressed import open_reader
from asr_analogy.merge.config import parse_dtype
from asr_analogy.merge.plan import check_compatible
from asr_analogy.merge.stream import Input, Streamer, refuse_existing, resolve_device, stream_to_checkpoint
from asr_analogy.merge.vector_format import (  # noqa: F401 - the format's public names, re-exported
    is_task_vector_file,
    read_vector_metadata,
    vector_metadata,
    vector_provenance,
)
from asr_analogy.ops import vectors as vec_ops

def _vector_dtype(stored: torch.dtype, explicit: torch.dtype | None) -> torch.dtype:
    """Explicit dtype, else float32 for half-precision models (their differences are exact in float32)."""
    if explicit is not None:
        return explicit
    return stored if stored.itemsize >= 4 else torch.float32


def vector(
    finetuned: str | os.PathLike,
    base: str | os.PathLike,
    out: str | os.PathLike,
    *,
    force: bool = False,
    dtype: str | torch.dtype | None = None,
    shard_size: int | str | None = "5GB",
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Save tau = finetuned - base (floating tensors only) to ``out`` (``.safetensors`` file or directory),
    streamed chunk by chunk, with the metadata in the module docstring. Returns ``out``."""
    refuse_overlap(out, [finetuned, base])
    refuse_existing(out, force)
    explicit = parse_dtype(dtype)
    streamer = Streamer(resolve_device(device))
    with ExitStack() as stack:
        ft = Input(str(finetuned), Path(finetuned), stack.enter_context(CheckpointReader(finetuned)))
        bs = Input(str(base), Path(base), stack.enter_context(CheckpointReader(base)))
        check_compatible(bs, [ft], allow_dtype_mismatch=explicit is not None)
        names = [n for n in bs.reader.names() if bs.reader.dtype(n).is_floating_point]
        specs = [TensorSpec(n, _vector_dtype(bs.reader.dtype(n), explicit), bs.reader.shape(n)) for n in names]
        out_dtypes = {s.name: s.dtype for s in specs}

        def produce(name: str) -> Iterator[torch.Tensor]:
            work = torch.promote_types(out_dtypes[name], torch.float32)
            for a, b in streamer.ranges(bs.reader.numel(name)):
                d = (streamer.load(ft, name, a, b, work) - streamer.load(bs, name, a, b, work)).to(out_dtypes[name])
                streamer.check(d, [ft, bs], name, a, b)
                yield d.cpu()

        metadata = vector_metadata("finetuned - base", bs.reader.fingerprint(), len(specs),
                                   finetuned_fingerprint=ft.reader.fingerprint(),
                                   provenance={"finetuned": str(finetuned), "base": str(base)})
        return stream_to_checkpoint(out, specs, produce, force=force, shard_size=shard_size, metadata=metadata, progress=progress, desc="vector")


def apply_vector(
    base: str | os.PathLike,
    vector_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scale: float = 1.0,
    force: bool = False,
    allow_other_base: bool = False,
    out_dtype: str | torch.dtype | None = None,
    shard_size: int | str | None = "5GB",
    device: str = "cpu",
    progress: bool = True,
    card: Mapping[str, object] | None = None,
) -> Path:
    """theta = base + scale * tau, streamed to ``out`` (a checkpoint directory with base's config files and a
    model card, ``README.md``: relation ``merge``, the vector and the scale; ``card`` adds to it: ``note``,
    ``wer`` rows, ``tags``).

    Raises ``MergeError`` when the vector was computed against a different base (fingerprint) unless
    ``allow_other_base``, when a vector tensor is missing from the base or has another shape, or when any
    written value would be NaN/Inf (an input holding one, or ``base + scale * tau`` overflowing the output
    dtype: nothing is written then); ``ConfigError`` for a non-finite ``scale``, ``OutputExistsError`` for an
    ``out`` that is, contains or lies inside an input.
    Tensors the vector lacks are copied from the base. Arithmetic in float32 (float64 for float64).
    """
    if not math.isfinite(float(scale)):
        raise ConfigError(f"scale {scale!r} is not a finite number")
    refuse_overlap(out, [base, vector_path])
    refuse_existing(out, force)
    meta = read_vector_metadata(vector_path)
    odtype = parse_dtype(out_dtype, "out_dtype")
    streamer = Streamer(resolve_device(device))
    with ExitStack() as stack:
        bs = Input(str(base), Path(base), stack.enter_context(CheckpointReader(base)))
        tv = Input(str(vector_path), Path(vector_path), stack.enter_context(open_reader(vector_path)))
        expected = meta.get("base_fingerprint", "")
        why = fingerprint_mismatch(expected, bs.reader.fingerprint()) if expected and not allow_other_base else None
        if why:
            raise MergeError(f"vector {vector_path} does not belong to base {base}: {why}; "
                             "pass --allow-other-base to apply it to a different model anyway")
        for name in tv.reader.names():
            if name not in bs.reader:
                raise MergeError(f"vector {vector_path}: tensor {name!r} does not exist in base {base}")
            if tv.reader.shape(name) != bs.reader.shape(name):
                raise MergeError(
                    f"tensor {name!r}: shape {list(tv.reader.shape(name))} in vector {vector_path} but "
                    f"{list(bs.reader.shape(name))} in base {base}"
                )
        names = bs.reader.names()

        def dt(name):
            stored = bs.reader.dtype(name)
            return (odtype or stored) if stored.is_floating_point else stored

        specs = [TensorSpec(n, dt(n), bs.reader.shape(n)) for n in names]

        def produce(name: str) -> Iterator[torch.Tensor]:
            n = bs.reader.numel(name)
            apply_here = name in tv.reader and bs.reader.dtype(name).is_floating_point
            work = torch.promote_types(bs.reader.dtype(name), torch.float32) if apply_here else None
            if apply_here:
                work = torch.promote_types(work, tv.reader.dtype(name))
            for a, b in streamer.ranges(n):
                if apply_here:
                    x = (streamer.load(bs, name, a, b, work) + scale * streamer.load(tv, name, a, b, work)).to(dt(name))
                    streamer.check(x, [bs, tv], name, a, b)  # NaN/Inf in an input, or the sum overflowing
                    yield x.cpu()
                else:
                    chunk = bs.reader.flat(name)[a:b].to(dt(name))
                    streamer.check(chunk, [bs], name, a, b)
                    yield chunk
                    streamer.release([bs], name, a, b)

        how = (f"The base plus {float(scale):g} × the task vector `{vector_path}` (made by "
               f"`{meta.get('method') or 'unknown'}`), written by `asr-analogy apply-vector`.")
        card_text = derived_card_text(Path(out).name, relation="merge", bases=[str(base), str(vector_path)], how=how,
                                      extra=card)
        return stream_to_checkpoint(
            out, specs, produce, force=force, shard_size=shard_size, copy_files_from=bs.path, progress=progress,
            desc="apply", extra_files={CARD_FILE: card_text},
        )


def _as_state(obj) -> tuple[dict[str, torch.Tensor], str | None]:
    """A state dict and its fingerprint (None for in-memory dicts)."""
    if isinstance(obj, Mapping):
        return dict(obj), None
    with CheckpointReader(obj) as reader:
        return {n: reader.get(n).clone() for n in reader.names()}, reader.fingerprint()


class TaskVector(MappingABC):
    """A task vector tau = theta_ft - theta_base in memory (Ilharco et al. 2023): a read-only mapping
    ``{name: tensor}`` over floating-point tensors, with the base fingerprint, how it was made (``method``) and a
    free-form ``provenance`` dict.

    ``tv = TaskVector.from_models(ft_dir, base_dir)``; ``tv_a + tv_b``, ``tv_a - tv_b``, ``0.5 * tv``, ``-tv``;
    ``tv.apply_to(base_dir_or_state_dict, scale)`` returns a state dict; ``tv.save(path)`` /
    ``TaskVector.load(path)`` use the on-disk format of this module. Holds the whole vector in memory: use
    ``vector`` / ``apply_vector`` (or ``merge``) to stream large models.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], base_fingerprint: str | None = None,
                 method: str = "finetuned - base", provenance: Mapping[str, object] | None = None):
        self.tensors = dict(tensors)
        self.base_fingerprint = base_fingerprint
        self.method = method
        self.provenance = dict(provenance or {})

    @classmethod
    def from_models(cls, finetuned, base, *, method: str = "finetuned - base",
                    provenance: Mapping[str, object] | None = None) -> "TaskVector":
        """finetuned, base: checkpoint paths or state dicts with the same names and shapes."""
        ft, _ = _as_state(finetuned)
        bs, fp = _as_state(base)
        return cls(vec_ops.task_vector(ft, bs), fp, method, provenance)

    def _combine(self, other: "TaskVector", sign: float, op: str) -> "TaskVector":
        if not isinstance(other, TaskVector):
            return NotImplemented
        if self.base_fingerprint and other.base_fingerprint and self.base_fingerprint != other.base_fingerprint:
            raise MergeError(
                f"task vectors come from different bases ({self.base_fingerprint} vs {other.base_fingerprint})"
            )
        summed = vec_ops.add(self.tensors, vec_ops.scale(other.tensors, sign))
        return TaskVector(summed, self.base_fingerprint or other.base_fingerprint, f"({self.method}) {op} ({other.method})")

    def __add__(self, other: "TaskVector") -> "TaskVector":
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: "TaskVector") -> "TaskVector":
        return self._combine(other, -1.0, "-")

    def __mul__(self, factor: float) -> "TaskVector":
        if not isinstance(factor, (int, float)):
            return NotImplemented
        return TaskVector(vec_ops.scale(self.tensors, float(factor)), self.base_fingerprint,
                          f"{factor} * ({self.method})", self.provenance)

    __rmul__ = __mul__

    def __neg__(self) -> "TaskVector":
        return self * -1.0

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    __hash__ = object.__hash__  # identity, as for any mutable container of tensors

    def __eq__(self, other: object) -> bool:
        return self is other

    def apply_to(self, base, scale: float = 1.0, *, check_base: bool = True) -> dict[str, torch.Tensor]:
        """base + scale * tau as a state dict. ``base``: checkpoint path or state dict. With ``check_base``,
        a path whose fingerprint differs from the vector's base raises ``MergeError``."""
        state, fp = _as_state(base)
        why = fingerprint_mismatch(self.base_fingerprint, fp) if check_base and fp and self.base_fingerprint else None
        if why:
            raise MergeError(f"this task vector does not belong to base {base}: {why}; "
                             "pass check_base=False to apply it anyway")
        return vec_ops.apply(state, self.tensors, scale)

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write as ``.safetensors`` (one file) or a checkpoint directory, atomically, with task-vector
        metadata. ``force`` replaces an existing output (only once the new one is complete)."""
        from asr_analogy.io.checkpoint import plan_shards, write_safetensors_file

        meta = vector_metadata(self.method, self.base_fingerprint, len(self.tensors), provenance=self.provenance)
        path = Path(path)
        tensors = {n: t.detach().cpu().contiguous() for n, t in self.tensors.items()}
        if path.suffix == ".safetensors":
            specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
            order = plan_shards(specs, None)
            items = ((s.name, tensors[s.name]) for s in (order[0] if order else []))
            return write_safetensors_file(path, specs, items, metadata=meta, force=force)
        return save_checkpoint(tensors, path, force=force, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TaskVector":
        """Read a task vector written by ``save``, ``vector`` or the recipe; ``CheckpointError`` otherwise."""
        meta = read_vector_metadata(path)
        with open_reader(path) as reader:
            tensors = {n: reader.get(n).clone() for n in reader.names()}
        return cls(tensors, meta.get("base_fingerprint") or None, meta.get("method", "finetuned - base"),
                   vector_provenance(meta))

    def __repr__(self) -> str:
        return f"TaskVector({len(self.tensors)} tensors, base={self.base_fingerprint}, {self.method!r})"
