"""Planning a merge: from a validated config to, for every output tensor, its inputs, its terms and the
values of its method's parameters (``plan_merge``), before anything is read or written.

Checks here: every input has the anchor's (base's) tensor names, shapes and dtypes (``check_compatible``),
task-vector inputs (``vector:`` entries) hold the base's floating-point tensors and were recorded against the
same base (``common_base_fingerprint``), and every parameter the method needs has a value for every tensor.
A merge of task vectors only has no base: its anchor is the first vector, and its output is the combined
delta itself (``TensorPlan.delta_only``), written as a task vector. Parameter values are looked up per tensor:
an override whose pattern matches the name, then the model's ``parameters`` (per-model parameters), then the
top-level ``parameters``, then the method's default.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from asr_analogy.errors import ConfigError, MergeError
from asr_analogy.io.checkpoint import TensorSpec, natural_key
from asr_analogy.merge.compressed import open_reader
from asr_analogy.merge.config import MergeConfig, evaluate_setting, layer_positions, resolve_model
from asr_analogy.merge.methods import METHODS
from asr_analogy.merge.params import Method, Param
from asr_analogy.merge.stream import Input
from asr_analogy.merge.vector_format import check_vector_metadata, common_base_fingerprint, vector_metadata
from asr_analogy.ops.param_groups import scales_for


@dataclass
class Term:
    """One task vector: ``plus - minus`` (``minus`` None: ``plus`` is already a delta, e.g. a saved vector)."""

    key: str  # model label used for per-model parameters
    plus: Input
    minus: Input | None


@dataclass
class TensorPlan:
    """How one output tensor is computed. ``method`` None: copied from ``anchor``. ``inputs``: every input
    read (the models averaged, for the "models" layout; base and other for "pair"). ``params``: the method's
    parameters for this tensor, per-model ones as lists in the order of ``terms`` (or of ``inputs``)."""

    name: str
    method: Method | None
    anchor: Input
    inputs: list[Input]
    terms: list[Term]
    params: dict[str, Any]
    compute_dtype: torch.dtype
    out_dtype: torch.dtype
    seed: int = 0
    source: str = "<config>"
    delta_only: bool = False  # the output is the combined delta (a task vector); the anchor is not added


@dataclass
class MergePlan:
    """Every output tensor's plan, in the anchor's order, and what the output directory gets besides."""

    method: Method
    anchor: Input
    tensors: list[TensorPlan]
    copy_files_from: Path | None
    metadata: dict[str, str]

    @property
    def specs(self) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.out_dtype, self.anchor.reader.shape(t.name)) for t in self.tensors]


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
        reader = stack.enter_context(open_reader(path))  # a compressed vector is read expanded
        out[ref] = by_path[key] = Input(ref, path, reader)
    return out


def check_compatible(anchor: Input, others: Sequence[Input], *, allow_dtype_mismatch: bool = False, role: str = "base",
                     vectors: bool = False) -> None:
    """Same tensor names, shapes and dtypes as ``anchor``; raises ``MergeError`` naming model and tensor.
    ``vectors``: the others are task vectors of the model ``anchor``: they hold its floating-point tensors
    only, with its shapes, in any floating dtype."""
    reader = anchor.reader
    order = [n for n in reader.names() if reader.dtype(n).is_floating_point] if vectors else reader.names()
    names, what = set(order), "vector" if vectors else "model"
    for inp in others:
        if inp.reader is anchor.reader:
            continue
        theirs = set(inp.reader.names())
        missing = sorted(names - theirs, key=natural_key)
        if missing:
            raise MergeError(
                f"{what} {inp.describe()} has no tensor {missing[0]!r}, which {role} {anchor.describe()} has "
                f"({len(missing)} tensor(s) missing)"
            )
        extra = sorted(theirs - names, key=natural_key)
        if extra:
            raise MergeError(
                f"{what} {inp.describe()} has tensor {extra[0]!r}, which {role} {anchor.describe()} lacks "
                f"({len(extra)} extra {'floating-point ' if vectors else ''}tensor(s))"
            )
        for name in order:
            a, b = anchor.reader.shape(name), inp.reader.shape(name)
            if a != b:
                raise MergeError(f"tensor {name!r}: shape {list(b)} in {what} {inp.describe()} but {list(a)} in {role} {anchor.describe()}")
            da, db = anchor.reader.dtype(name), inp.reader.dtype(name)
            if da != db and not ((allow_dtype_mismatch or vectors) and da.is_floating_point and db.is_floating_point):
                hint = " (set dtype: to merge models stored in different precisions)" if da.is_floating_point and db.is_floating_point else ""
                raise MergeError(f"tensor {name!r}: dtype {db} in {what} {inp.describe()} but {da} in {role} {anchor.describe()}{hint}")


def compute_dtype_for(stored: torch.dtype, explicit: torch.dtype | None) -> torch.dtype:
    """The explicit dtype when given (mergekit semantics), else float32 for half-precision storage, else
    the stored dtype."""
    if explicit is not None:
        return explicit
    return stored if stored.itemsize >= 4 else torch.float32


@dataclass
class Resolver:
    """Per-tensor parameter lookup: overrides > per-model > global > the method's default."""

    source: str
    method: Method
    global_params: dict = field(default_factory=dict)
    model_params: dict = field(default_factory=dict)  # term key -> settings
    overrides: list = field(default_factory=list)  # [(regex, settings)]
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

    def value(self, param: Param, name: str, term=None) -> Any:
        """``param``'s value for tensor ``name`` (and model ``term``, for per-model parameters)."""
        value = self._lookup(param.name, name, term)
        who = f" for model {term}" if term is not None else ""
        if value is None:
            if param.default is None:
                raise ConfigError(f"{self.source}: {self.method.name}: parameter '{param.name}' is required{who} (tensor {name!r})")
            return param.default
        try:
            return param.convert(value)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {self.method.name}: parameter '{param.name}'{who} for tensor {name!r} {exc}") from None

    def params(self, name: str, keys: Sequence[str]) -> dict[str, Any]:
        """Every parameter of the method for tensor ``name``; per-model ones as a list over ``keys``."""
        return {p.name: [self.value(p, name, k) for k in keys] if p.per_model else self.value(p, name)
                for p in self.method.params}


def _selected(name: str, include, exclude) -> bool:
    if include and not any(re.search(p, name) for p in include):
        return False
    if exclude and any(re.search(p, name) for p in exclude):
        return False
    return True


@dataclass
class _Layout:
    """What a config merges: its method, the anchor (base, or C of an analogy), the models read besides
    (checked against the anchor), the terms, the parameter settings and the task-vector inputs."""

    method: Method
    anchor: Input
    others: list[Input]
    terms: list[Term]
    global_params: dict
    model_params: dict
    role: str = "base"
    vectors: list[Input] = field(default_factory=list)
    delta_only: bool = False


def _analogy_layout(cfg: MergeConfig, stack: ExitStack) -> _Layout:
    """The layout of an ``analogy:`` config: one term theta_B_i - theta_A_i per pair, anchored at C."""
    an = cfg.analogy
    refs = [an.c] + [r for p in an.pairs for r in (p.a, p.b)]
    inputs = open_inputs(refs, stack, cfg.config_dir)
    terms = [Term(f"pair {i + 1}", inputs[p.b], inputs[p.a]) for i, p in enumerate(an.pairs)]
    global_params = {"lambda": an.lambda_, "normalize": True if an.normalize is None else an.normalize}
    for key in ("density", "gamma", "rescale", "consensus"):
        if getattr(an, key) is not None:
            global_params[key] = getattr(an, key)
    model_params = {f"pair {i + 1}": {"weight": p.weight} for i, p in enumerate(an.pairs)}
    others = [x for t in terms for x in (t.plus, t.minus)]
    return _Layout(METHODS[an.method], inputs[an.c], others, terms, global_params, model_params, "model C")


def _models_layout(cfg: MergeConfig, stack: ExitStack, source: str) -> _Layout:
    """The layout of a ``models:`` config: terms are model - base or a vector file as it is ("deltas"), else
    the models themselves are the inputs."""
    method = METHODS[cfg.merge_method]
    refs = ([cfg.base_model] if cfg.base_model else []) + [m.ref for m in cfg.models]
    inputs = open_inputs(refs, stack, cfg.config_dir)
    base = inputs[cfg.base_model] if cfg.base_model else None
    global_params = dict(cfg.parameters or {})
    model_params = {m.ref: (m.parameters or {}) for m in cfg.models}
    if method.layout == "models":
        order = [m.model for m in cfg.models]
        if cfg.base_model and not any(inputs[r].path.resolve() == base.path.resolve() for r in order):
            order.append(cfg.base_model)  # mergekit averages the base too, with its (global) weight
        others = [inputs[r] for r in order]
        return _Layout(method, base or others[0], others, [], global_params, model_params)
    vectors = [inputs[m.vector] for m in cfg.models if m.vector is not None]
    for v in vectors:
        check_vector_metadata(v.reader.metadata(), v.describe())
    terms = []
    for m in cfg.models:
        if m.vector is not None:
            terms.append(Term(m.ref, inputs[m.ref], None))
        elif inputs[m.ref].path.resolve() != base.path.resolve():
            terms.append(Term(m.ref, inputs[m.ref], base))
    if method.layout == "pair" and len(terms) != 1:
        raise ConfigError(f"{source}: {method.name} needs base_model and exactly one other model, got {len(terms)}")
    models = [t.plus for t in terms if t.minus is not None]
    if base is None:  # vectors only: the output is their combination, itself a task vector
        return _Layout(method, vectors[0], models, terms, global_params, model_params, "vector", vectors, True)
    return _Layout(method, base, models, terms, global_params, model_params, "base", vectors)


def _check_vectors(cfg: MergeConfig, layout: _Layout) -> str:
    """Vector inputs hold the anchor's floating-point tensors and were recorded against one base (and the
    base, when there is one). Returns the base fingerprint they share ("" when unknown)."""
    anchor, vectors = layout.anchor, layout.vectors
    check_compatible(anchor, vectors, role=layout.role, vectors=True)
    recorded = [(v.describe(), v.reader.metadata().get("base_fingerprint", "")) for v in vectors]
    base = None
    if not layout.delta_only and not cfg.allow_other_base and any(fp for _, fp in recorded):
        base = (anchor.describe(), anchor.reader.fingerprint())
    return common_base_fingerprint(recorded, base, allow_other_base=cfg.allow_other_base)


def plan_merge(cfg: MergeConfig, stack: ExitStack, *, compute_dtype: torch.dtype | None = None,
               out_dtype: torch.dtype | None = None, source: str = "<config>",
               provenance: Mapping[str, Any] | None = None) -> MergePlan:
    """Open the inputs of ``cfg`` (closed with ``stack``), check them against the anchor (the base, or C of an
    analogy) and plan every output tensor. ``compute_dtype``/``out_dtype``: explicit dtypes (None: from the
    inputs). ``provenance``: entries added to a task-vector output's provenance. Raises ``MergeError``/``ConfigError`` before anything is computed."""
    layout = _analogy_layout(cfg, stack) if cfg.analogy is not None else _models_layout(cfg, stack, source)
    method, anchor, terms = layout.method, layout.anchor, layout.terms
    check_compatible(anchor, layout.others, allow_dtype_mismatch=compute_dtype is not None, role=layout.role)
    base_fingerprint = _check_vectors(cfg, layout) if layout.vectors else ""

    names = anchor.reader.names()
    overrides = [(o.pattern, o.parameters) for o in (cfg.overrides or [])]
    if cfg.analogy is not None and cfg.analogy.lambda_groups is not None:
        floating = [n for n in names if anchor.reader.dtype(n).is_floating_point]
        overrides += [("^" + re.escape(n) + "$", {"lambda": lam})
                      for n, lam in scales_for(floating, cfg.analogy.lambda_groups).items()]
    resolver = Resolver(source, method, layout.global_params, layout.model_params, overrides, layer_positions(names))
    if method.layout == "deltas":
        inputs = [anchor] + [x for t in terms for x in (t.plus, t.minus) if x is not None]
        keys = [t.key for t in terms]
    elif method.layout == "pair":
        inputs, keys = [anchor, layout.others[0]], []
    else:
        inputs, keys = layout.others, [i.label for i in layout.others]

    tensors = []
    for name in names:
        stored = anchor.reader.dtype(name)
        odt = (out_dtype or compute_dtype or stored) if stored.is_floating_point else stored
        merged = stored.is_floating_point and _selected(name, cfg.include, cfg.exclude)
        tensors.append(TensorPlan(
            name, method if merged else None, anchor, inputs if merged else [anchor], terms if merged else [],
            resolver.params(name, keys) if merged else {}, compute_dtype_for(stored, compute_dtype), odt,
            seed=cfg.seed, source=source, delta_only=layout.delta_only))
    copy_from = resolve_model(cfg.copy_files_from, cfg.config_dir) if cfg.copy_files_from else anchor.path
    if layout.delta_only:
        made = {"kind": "merge", "method": method.name, "inputs": [t.key for t in terms], **(provenance or {})}
        metadata = vector_metadata(f"merge:{method.name}", base_fingerprint, len(tensors), provenance=made)
        copy_from = copy_from if cfg.copy_files_from else None
    else:
        metadata = {"merge_method": f"analogy/{cfg.analogy.method}" if cfg.analogy else method.name}
    return MergePlan(method, anchor, tensors, copy_from, metadata)
