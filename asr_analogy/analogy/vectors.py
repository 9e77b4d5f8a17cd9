"""The Synthetic2Real vector and the analogy θ_D = θ_C + λ·(θ_B − θ_A).

Su et al. 2024, "Task Arithmetic can Mitigate Synthetic-to-Real Gap in Automatic Speech Recognition"
(arXiv 2406.02925): fine-tune one base model on source-domain synthetic speech (θ_A), on source-domain real
speech (θ_B) and on target-domain synthetic speech (θ_C). The difference τ_B − τ_A = θ_B − θ_A (the base
cancels) moves a model from "trained on TTS audio" towards "trained on real audio"; added to θ_C it should
carry the target model across the same synthetic-to-real gap.

An *ensemble* combines several pair vectors v_i = θ_B_i − θ_A_i (one per TTS voice or per source domain) with
a merge preset of ``asr_analogy.merge`` run by the merge kernel on the vector files (``ensemble_vector_file``):
``task_arithmetic`` is their mean, ``ties`` trims each to its ``density`` largest entries and keeps the
sign-agreeing mean (Yadav et al. 2023), ``dare_linear`` / ``dare_ties`` drop entries at random with rescaling
first (Yu et al. 2024). The mean gives the same numbers as this module's earlier in-memory ensembles, bit for
bit (TIES too, except where several entries tie at the magnitude cut); DARE masks are now seeded per tensor, member and chunk by the kernel, so DARE ensembles differ
from those of earlier versions (the recipe recomputes ensembles written by them).

Vectors are ``TaskVector`` objects (``asr_analogy.merge.task_vector``): read-only ``{name: tensor}`` mappings over
the floating-point tensors of a checkpoint, saved in the one task-vector file format, so
``asr-analogy apply-vector`` applies every vector the recipe writes. Plain ``{name: tensor}`` dicts are accepted
wherever a vector is read. All arithmetic is float32 (or the checkpoint's wider dtype).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asr_analogy.errors import CheckpointError, ConfigError, MergeError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.checkpoint import load_state_dict, save_checkpoint
from asr_analogy.merge.methods import METHODS
from asr_analogy.merge.params import Method
from asr_analogy.merge.task_vector import TaskVector, apply_vector
from asr_analogy.ops import apply
from asr_analogy.ops.param_groups import canonical, scales_for

Vector = Mapping[str, torch.Tensor]


def _state(model: str | os.PathLike | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(model, Mapping):
        return model
    return load_state_dict(model)


def syn2real_vector(
    source_synthetic: str | os.PathLike | Mapping[str, torch.Tensor],
    source_real: str | os.PathLike | Mapping[str, torch.Tensor],
    provenance: Mapping[str, object] | None = None,
) -> TaskVector:
    """v = θ_B − θ_A = τ_B − τ_A: from the source-synthetic fine-tune (A) to the source-real one (B).

    Both are model directories (or state dicts) fine-tuned from the same base; every floating tensor must
    have the same shape in both (``MergeError`` names the first that does not). Returns a ``TaskVector`` whose
    base fingerprint is A's (for a directory), method ``B - A`` and provenance ``{"kind": "syn2real", ...}``.
    """
    return TaskVector.from_models(source_real, source_synthetic, method="B - A",
                                  provenance={"kind": "syn2real", **dict(provenance or {})})


def apply_analogy(
    target_synthetic: str | os.PathLike | Mapping[str, torch.Tensor], vector: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """θ_D = θ_C + λ·v: the target-synthetic model moved along the Synthetic2Real vector.

    λ = 0 returns θ_C; non-floating tensors are copied from θ_C. Returns a full state dict.
    """
    return apply(_state(target_synthetic), vector, float(lam))


def ensemble_method(method: str) -> Method:
    """The merge method ``method``, which must combine task vectors (``ConfigError`` otherwise)."""
    m = METHODS.get(method)
    if m is None or m.layout != "deltas":
        ok = ", ".join(x.name for x in METHODS.values() if x.layout == "deltas")
        raise ConfigError(f"unknown ensemble method {method!r}: not a merge method that combines task vectors "
                          f"(choose one of {ok})")
    return m


def ensemble_parameters(method: str, density: float | None = None) -> dict:
    """The merge ``parameters`` of an ensemble by ``method``, checked against what the merge method declares
    (``merge.kernels``): the method combines task vectors, it takes ``density`` exactly when it sparsifies
    (then it is required, and in the method's range). ``ConfigError`` says which. Every ensemble is
    normalized by the sum of the weights (1 each): ``task_arithmetic`` is the mean."""
    m = ensemble_method(method)
    param = m.param("density")
    if param is None and density is not None:
        raise ConfigError(f"method {method} takes no density (it keeps every entry; its parameters: {m.param_names()})")
    if param is not None and density is None:
        raise ConfigError(f"method {method} needs a density ({param.allowed()}): the fraction of entries kept")
    reason = param.check(density) if param is not None else None
    if reason is not None:
        raise ConfigError(f"density of method {method} {reason}")
    return {"normalize": True} | ({"density": density} if density is not None else {})


def ensemble_vector_file(
    members: Sequence[str | os.PathLike], out: str | os.PathLike, method: str = "task_arithmetic",
    density: float | None = None, seed: int = 0,
) -> Path:
    """Combine the task-vector files ``members`` (pair vectors v_1..v_M, same names and shapes) into the
    task-vector file ``out`` with the merge preset ``method`` (``merge()`` of ``vector:`` entries, streamed;
    an existing ``out`` is replaced). Parameters: ``ensemble_parameters``; DARE masks are seeded from
    ``seed``, the tensor name, the member's position and the chunk. The members may come from different bases
    (each pair has its own θ_A): the ensemble records a base fingerprint only when they all agree. Provenance:
    ``{"kind": "ensemble", "method": ..., "inputs": [member paths], "density": ..., "seed": ...}``."""
    from asr_analogy.merge import merge

    config = {
        "merge_method": method,
        "models": [{"vector": str(p)} for p in members],
        "parameters": ensemble_parameters(method, density),
        "seed": seed,
        "allow_other_base": True,
    }
    made = {"kind": "ensemble"} | ({"density": density, "seed": seed} if density is not None else {})
    return merge(config, out, force=True, progress=False, provenance=made)


def ensemble_vector(
    vectors: Sequence[Mapping[str, torch.Tensor]],
    method: str = "task_arithmetic",
    density: float | None = None,
    seed: int = 0,
) -> TaskVector:
    """Combine in-memory pair vectors v_1..v_M (same names and shapes) into one, through the merge kernel
    (``ensemble_vector_file`` on copies written to a temporary directory).

    ``task_arithmetic``: (1/M)·Σ v_i. ``ties``: each v_i trimmed to its ``density`` largest-magnitude entries,
    then per entry the elected sign (sum of mass) and the mean of the agreeing entries. ``dare_linear``: each
    entry of v_i kept with probability ``density`` and divided by it, then the mean. ``dare_ties``: DARE drop,
    then TIES sign consensus. Any other merge preset that combines deltas works too (``ensemble_parameters``).
    """
    if not vectors:
        raise MergeError("an ensemble needs at least one vector")
    ensemble_parameters(method, density)
    with tempfile.TemporaryDirectory(prefix="ensemble-") as tmp:
        paths = []
        for i, v in enumerate(vectors):
            tv = v if isinstance(v, TaskVector) else TaskVector(v, None, "tensors")
            paths.append(tv.save(Path(tmp) / f"member-{i}.safetensors"))
        merged = TaskVector.load(ensemble_vector_file(paths, Path(tmp) / "ensemble.safetensors", method, density, seed))
    params = {"method": method, "members": len(vectors)} | ({"density": density, "seed": seed} if density else {})
    return TaskVector(merged.tensors, merged.base_fingerprint, f"ensemble:{method}", {"kind": "ensemble", **params})


def vector_stats(vector: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Norms of a vector: total L2, encoder / decoder / other parts, number of tensors and entries; with
    ``other``, the cosine similarity between the two vectors (flattened over common names)."""
    groups = {"encoder": 0.0, "decoder": 0.0, "other": 0.0}
    total = 0.0
    numel = 0
    for name, t in vector.items():
        sq = float(t.double().pow(2).sum())
        total += sq
        numel += t.numel()
        g = "encoder" if ".encoder." in f".{name}" else "decoder" if ".decoder." in f".{name}" else "other"
        groups[g] += sq
    out = {
        "l2": math.sqrt(total),
        "l2_by_part": {k: math.sqrt(v) for k, v in groups.items()},
        "tensors": len(vector),
        "entries": numel,
    }
    if other is not None:
        dot = a2 = b2 = 0.0
        for name in vector.keys() & other.keys():
            a, b = vector[name].double().reshape(-1), other[name].double().reshape(-1)
            dot += float(a @ b)
            a2 += float(a @ a)
            b2 += float(b @ b)
        out["cosine"] = dot / math.sqrt(a2 * b2) if a2 > 0 and b2 > 0 else 0.0
    return out


def save_vector(vector: Vector, path: str | os.PathLike, provenance: Mapping[str, object] | None = None) -> Path:
    """Write ``vector`` (a ``TaskVector`` or ``{name: tensor}``) as one task-vector ``.safetensors`` file,
    atomically, replacing an existing file; ``provenance`` is merged into the vector's own."""
    if not isinstance(vector, TaskVector):
        vector = TaskVector(vector, None, "tensors")
    merged = TaskVector(vector.tensors, vector.base_fingerprint, vector.method,
                        {**vector.provenance, **dict(provenance or {})})
    return merged.save(path, force=True)


def load_vector(path: str | os.PathLike) -> TaskVector:
    """Read a task-vector file (``CheckpointError`` for a missing, damaged or non-vector file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"vector file {path} does not exist")
    return TaskVector.load(path)


def save_analogy_model(
    target_synthetic_dir: str | os.PathLike, vector: str | os.PathLike | Vector, lam: float,
    out_dir: str | os.PathLike, *, force: bool = False, card: Mapping | None = None,
) -> Path:
    """Write θ_C + λ·v as a model directory (weights, plus config / processor files copied from θ_C's), with
    ``analogy.json`` beside them. ``vector`` is a task-vector file (applied streaming, exactly as
    ``asr-analogy apply-vector C VECTOR OUT --scale λ --allow-other-base`` does, model card included; ``card``
    adds to it) or an in-memory vector."""
    if isinstance(vector, (str, os.PathLike)):
        out = apply_vector(target_synthetic_dir, vector, out_dir, scale=float(lam), force=force,
                           allow_other_base=True, progress=False, card=card)
        source = {"vector": str(vector)}
    else:
        state = apply_analogy(target_synthetic_dir, vector, lam)
        out = save_checkpoint(state, out_dir, copy_files_from=target_synthetic_dir, force=force)
        source = {}
    with atomic_file(Path(out) / "analogy.json") as fh:
        json.dump({"target_synthetic": str(target_synthetic_dir), "lambda": float(lam), **source}, fh, indent=1)
    return out


class LambdaModel:
    """A loaded θ_C whose weights are set to θ_C + λ·v in place, for λ sweeps without writing models.

    ``model`` is a loaded transformers model holding θ_C; ``c_state`` the state dict θ_C as saved (names as
    in the checkpoint); ``vector`` the default Synthetic2Real vector. ``set(λ, vector)`` writes θ_C + λ·v into
    every floating parameter named in ``c_state`` (θ_C where the vector has no entry), so consecutive calls
    with different vectors never accumulate; ``reset()`` restores θ_C. Tied parameters share storage.
    """

    def __init__(self, model, c_state: Mapping[str, torch.Tensor], vector: Mapping[str, torch.Tensor] | None = None):
        self.model = model
        params = model.state_dict(keep_vars=True)
        self._params = {n: params[n] for n, t in c_state.items() if n in params and t.is_floating_point()}
        self.c_state = {n: c_state[n] for n in self._params}
        for n, p in self._params.items():
            if tuple(p.shape) != tuple(self.c_state[n].shape):
                raise MergeError(f"tensor {n!r}: shape {list(p.shape)} in the model but {list(self.c_state[n].shape)} in θ_C")
        self.vector = vector
        if vector is not None:
            self._check(vector)
        self.lam: float | None = None

    def _check(self, vector: Mapping[str, torch.Tensor]) -> None:
        missing = [n for n in vector if n not in self._params]
        if missing:
            raise MergeError(f"vector tensor {missing[0]!r} is not a parameter of the loaded model ({len(missing)} such names)")
        for n, v in vector.items():
            if tuple(v.shape) != tuple(self._params[n].shape):
                raise MergeError(f"tensor {n!r}: shape {list(self._params[n].shape)} in the model but {list(v.shape)} in the vector")

    @torch.no_grad()
    def set(self, lam, vector: Mapping[str, torch.Tensor] | None = None) -> None:
        """Set the model's weights to θ_C + λ·v (``vector`` or the default one); ``lam`` is a number or a
        per-group scale (``asr_analogy.ops.param_groups``: each tensor gets its group's λ)."""
        vector = self.vector if vector is None else vector
        if vector is None:
            raise MergeError("LambdaModel.set needs a vector")
        if vector is not self.vector:
            self._check(vector)
        lam = canonical(lam)
        scales = scales_for(self.c_state, lam)
        for n, p in self._params.items():
            c = self.c_state[n]
            p.data.copy_(apply(c, vector[n], scales[n]) if n in vector and scales[n] != 0 else c)
        self.lam = lam

    @torch.no_grad()
    def reset(self) -> None:
        """Restore θ_C."""
        for n, p in self._params.items():
            p.data.copy_(self.c_state[n])
        self.lam = 0.0
