"""Merge configuration: a YAML file validated at load time, compatible with mergekit's ``models:`` format.

A mergekit file runs unchanged::

    merge_method: ties              # linear task_arithmetic ties dare_linear dare_ties magnitude_prune
                                    # breadcrumbs breadcrumbs_ties slerp
    base_model: path/to/base
    models:
      - model: path/to/finetune_a
        parameters: {weight: 1.0, density: 0.5}
      - model: path/to/finetune_b
        parameters: {weight: -0.5, density: 0.5}   # a negative weight negates (unlearns) a task vector
    parameters: {normalize: true, lambda: 1.0, int8_mask: true}
    dtype: float32                  # inputs are cast to this and merged in it; also the output dtype ...
    out_dtype: bfloat16             # ... unless out_dtype is given

Parameter values follow mergekit: a scalar; a gradient list ``[0, 0.5, 1]`` interpolated over the layer
index (t = layer / (layers - 1), 0 for tensors outside numbered layers); or a list of conditions
``[{filter: self_attn, value: 0.3}, {value: 0.5}]`` where the first condition whose ``filter`` is a substring
of the tensor name wins (``*`` or no filter matches everything). A condition may use ``pattern:`` (a regular
expression, ``re.search``) instead of ``filter:``. Per-model parameters are looked up in the model's
``parameters``, then in the top-level ``parameters``, then the method's default. Each method declares the
parameters it takes, with their defaults and ranges (``merge.kernels``; e.g. ``density`` in (0, 1], SLERP
``t`` in [0, 1]); a parameter the method does not take, a global one set per model, or a value that is out of
range or not finite is an error naming the method, the key and the model.

Extensions (not in mergekit)::

    seed: 0                         # DARE masks (per tensor, model and chunk; see merge.kernels.gta)
    include: ['^model\\.encoder\\.']  # regexes (re.search): only matching tensors are merged ...
    exclude: ['layer_norm']         # ... matching ones are not; the rest is copied from the base
    overrides:                      # per-name-pattern parameters; the first matching pattern wins and takes
      - pattern: 'embed_tokens'     # precedence over every other setting (shared and per-model)
        parameters: {lambda: 0.0}
    copy_files_from: path           # where config/tokenizer files come from (default: the base / C model)
    allow_other_base: false         # true: merge task vectors recorded against another base (see below)
    analogy: {a: A, b: B, c: C, lambda: 0.5}        # theta_C + lambda * (theta_B - theta_A)
    analogy: {a: A, b: B, c: C, lambda_groups: {scheme: encdec, values: {encoder: 0.6, decoder: 0.2}}}
                                                    # a lambda per parameter group (asr_analogy.ops.param_groups)
    analogy:                                        # several pairs, combined by a kernel preset
      c: C
      pairs: [{a: A1, b: B1}, {a: A2, b: B2}]
      lambda: 0.5
      method: ties                  # task_arithmetic (mean of the pair vectors) ties dare_linear ...
      density: 0.5

Task vectors as inputs (``vector: PATH`` entries): see ``merge.vector_format``.

Unknown keys are errors that name the key and the file; mergekit features this toolkit does not implement
(``slices``, ``modules``, ``tokenizer``, ``tokenizer_source`` other than ``base``, ``chat_template``, LoRA
``model+lora`` references, other merge methods) are refused with a clear message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Union

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.yaml_file import load_yaml
from asr_analogy.merge.methods import METHODS
from asr_analogy.ops.param_groups import check_group_scale

Scalar = Union[bool, int, float, str]
ScalarOrGradient = Union[Scalar, list[Scalar]]

DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "fp32": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "fp64": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

_UNSUPPORTED_KEYS = {
    "slices": "layer slices (frankenmerges) are not supported; use models:",
    "modules": "per-module definitions are not supported; use models:",
    "tokenizer": "tokenizer merging is not supported; the tokenizer is copied from the base model",
    "chat_template": "chat_template is not supported; the tokenizer files are copied from the base model",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Condition(_Strict):
    """One entry of a conditional parameter list."""

    value: ScalarOrGradient
    filter: str | None = None  # mergekit: substring of the tensor name; "*" matches all
    pattern: str | None = None  # regular expression (re.search)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v):
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


Setting = Union[ScalarOrGradient, Condition, list[Condition]]


class ModelEntry(_Strict):
    """One input: a model (``model:``, merged as model - base) or a task-vector file (``vector:``, used as
    the delta itself)."""

    model: str | None = None
    vector: str | None = None
    parameters: dict[str, Setting] | None = None

    @field_validator("model", "vector", mode="before")
    @classmethod
    def _model_str(cls, v):
        if isinstance(v, dict):
            raise ValueError("model references must be a path or hub id string (LoRA/dict references are not supported)")
        return v

    @model_validator(mode="after")
    def _one_ref(self):
        if (self.model is None) == (self.vector is None):
            raise ValueError("give either model: PATH or vector: PATH (a task-vector file)")
        return self

    @property
    def ref(self) -> str:
        """The path (or hub id) as written: the model's or the vector's."""
        return self.model if self.model is not None else self.vector


class Override(_Strict):
    pattern: str
    parameters: dict[str, Setting]

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v):
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


class Pair(_Strict):
    a: str
    b: str
    weight: float = 1.0


class AnalogySpec(_Strict):
    """theta_C + lambda * combine_i(theta_Bi - theta_Ai)."""

    c: str
    a: str | None = None
    b: str | None = None
    pairs: list[Pair] | None = None
    lambda_: float = Field(1.0, alias="lambda")
    lambda_groups: dict | None = None  # a λ per parameter group instead; `overrides` still win over it
    method: str = "task_arithmetic"
    density: float | None = None
    gamma: float | None = None
    normalize: bool | None = None
    rescale: bool | str | None = None
    consensus: str | None = None

    @field_validator("lambda_groups")
    @classmethod
    def _groups(cls, v):
        try:
            return v if v is None else check_group_scale(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _pairs(self):
        if self.pairs is None:
            if self.a is None or self.b is None:
                raise ValueError("give either a and b, or pairs: [{a, b}, ...]")
            self.pairs = [Pair(a=self.a, b=self.b)]
        elif self.a is not None or self.b is not None:
            raise ValueError("give either a and b, or pairs, not both")
        if not self.pairs:
            raise ValueError("pairs must not be empty")
        return self


class MergeConfig(_Strict):
    """A validated merge configuration (see the module docstring for every key)."""

    merge_method: str | None = None
    base_model: str | None = None
    models: list[ModelEntry] | None = None
    parameters: dict[str, Setting] | None = None
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    seed: int = 0
    include: list[str] | None = None
    exclude: list[str] | None = None
    overrides: list[Override] | None = None
    copy_files_from: str | None = None
    allow_other_base: bool = False
    analogy: AnalogySpec | None = None
    # Set by the loader: where relative model paths are also looked up.
    config_dir: str | None = Field(default=None, exclude=True)

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _listify(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("include", "exclude")
    @classmethod
    def _regexes(cls, v):
        for p in v or []:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {p!r}: {exc}") from None
        return v

    @field_validator("dtype", "out_dtype")
    @classmethod
    def _dtype(cls, v):
        if v is not None and v.removeprefix("torch.") not in DTYPES:
            raise ValueError(f"unknown dtype {v!r} (float32, float64, float16, bfloat16)")
        return v

    @field_validator("tokenizer_source")
    @classmethod
    def _tok(cls, v):
        if v is not None and v != "base":
            raise ValueError("only tokenizer_source: base is supported (the tokenizer is copied from the base model)")
        return v

    @model_validator(mode="after")
    def _shape(self):
        if self.analogy is not None:
            if self.models or self.merge_method or self.base_model:
                raise ValueError("analogy: cannot be combined with models / merge_method / base_model")
            if self.analogy.method not in METHODS or METHODS[self.analogy.method].layout != "deltas":
                ok = ", ".join(m.name for m in METHODS.values() if m.layout == "deltas")
                raise ValueError(f"analogy.method {self.analogy.method!r} is not supported (choose one of {ok})")
            return self
        if not self.models:
            raise ValueError("give models: [...] (with merge_method) or analogy: {...}")
        if not self.merge_method:
            raise ValueError("merge_method is required with models:")
        if self.merge_method not in METHODS:
            raise ValueError(f"merge_method {self.merge_method!r} is not supported (choose one of {', '.join(METHODS)})")
        method = METHODS[self.merge_method]
        vectors = [m.vector for m in self.models if m.vector is not None]
        if vectors and method.layout != "deltas":
            ok = ", ".join(m.name for m in METHODS.values() if m.layout == "deltas")
            raise ValueError(f"vector {vectors[0]!r}: merge_method {method.name} merges models, not task vectors "
                             f"(vectors are combined by {ok})")
        if method.needs_base and not self.base_model and len(vectors) < len(self.models):
            raise ValueError(f"merge_method {self.merge_method} needs base_model (or vector: entries only)")
        for m in self.models:
            if m.model is not None and "+" in m.model and not Path(m.model).exists():
                raise ValueError(f"model {m.model!r}: LoRA references (model+lora) are not supported")
        names = [m.ref for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model {dup[0]!r} is listed more than once")
        return self

    # -- derived --
    @property
    def torch_dtype(self) -> torch.dtype | None:
        return DTYPES[self.dtype.removeprefix("torch.")] if self.dtype else None

    @property
    def torch_out_dtype(self) -> torch.dtype | None:
        return DTYPES[self.out_dtype.removeprefix("torch.")] if self.out_dtype else None

    def to_yaml(self) -> str:
        data = self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")
        return yaml.safe_dump(data, sort_keys=False)


def _leaves(setting: Any) -> list:
    """The scalars written in a parameter setting (a scalar, a gradient list, conditions)."""
    if isinstance(setting, Condition):
        return _leaves(setting.value)
    if isinstance(setting, list):
        return [leaf for item in setting for leaf in _leaves(item)]
    return [setting]


# The analogy: keys that are method parameters, by field name (``lambda`` is a Python keyword).
_ANALOGY_PARAMETERS = {k: k for k in ("density", "gamma", "normalize", "rescale", "consensus")} | {"lambda": "lambda_"}


def _parameter_blocks(cfg: MergeConfig) -> list[tuple[str, dict | None, str | None]]:
    """(where, block, model) for every parameter block: model None for blocks that apply to all models."""
    if cfg.analogy is not None:
        an = cfg.analogy
        shared = {k: getattr(an, a) for k, a in _ANALOGY_PARAMETERS.items() if getattr(an, a) is not None}
        blocks = [("analogy", shared, None)]
        blocks += [(f"analogy.pairs[{i}]", {"weight": p.weight}, f"pair {i + 1}") for i, p in enumerate(an.pairs)]
    else:
        blocks = [("parameters", cfg.parameters, None)]
        blocks += [(f"models[{i}].parameters", m.parameters, m.ref) for i, m in enumerate(cfg.models or [])]
    blocks += [(f"overrides[{i}].parameters", o.parameters, None) for i, o in enumerate(cfg.overrides or [])]
    return blocks


def _check_parameters(cfg: MergeConfig, source: str) -> None:
    """Every parameter is declared by the method, given where it may be (a global one not per model), and
    every value written for it is allowed (finite, in range); errors name the method, the key and the model."""
    method = METHODS[cfg.analogy.method if cfg.analogy is not None else cfg.merge_method]
    blocks = _parameter_blocks(cfg)
    given = {key for _, block, _ in blocks for key in (block or {})}
    for param in method.params:
        if param.default is None and param.name not in given:
            raise ConfigError(f"{source}: method {method.name} needs parameter '{param.name}' ({param.doc})")
    for where, block, model in blocks:
        who = f" (model {model!r})" if model is not None else ""
        for key, value in (block or {}).items():
            param = method.param(key)
            if param is None:
                raise ConfigError(f"{source}: unknown parameter '{where}.{key}'{who} for method {method.name} "
                                  f"(it takes: {method.param_names()})")
            if model is not None and not param.per_model:
                raise ConfigError(f"{source}: parameter '{where}.{key}'{who} of method {method.name} is global, "
                                  "not per model: set it in the top-level parameters")
            for cond in value if isinstance(value, list) else [value]:
                if isinstance(cond, Condition) and cond.filter is not None and cond.pattern is not None:
                    raise ConfigError(f"{source}: '{where}.{key}': a condition takes filter or pattern, not both")
            for leaf in _leaves(value):
                reason = param.check(leaf)
                if reason is not None:
                    raise ConfigError(f"{source}: parameter '{where}.{key}'{who} of method {method.name} {reason}")


def _format_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "union[", "list[", "dict[")))
        # pydantic reports union members separately; keep the first message per location
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            hint = _UNSUPPORTED_KEYS.get(key) if len(err["loc"]) == 1 else None
            lines.append(f"{source}: {hint}" if hint else f"{source}: unknown key '{loc}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {loc + ': ' if loc else ''}{msg}")
    seen = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return "; ".join(seen[:3])


def parse_merge_config(data: Any, source: str = "<config>", config_dir: str | os.PathLike | None = None) -> MergeConfig:
    """Validate a config mapping (as read from YAML). Raises ``ConfigError`` naming the key and ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    for key, hint in _UNSUPPORTED_KEYS.items():
        if key in data:
            raise ConfigError(f"{source}: '{key}': {hint}")
    try:
        cfg = MergeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
    _check_parameters(cfg, source)
    if config_dir is not None:
        cfg.config_dir = str(config_dir)
    return cfg


def load_merge_config(path: str | os.PathLike) -> MergeConfig:
    """Read and validate a merge YAML file (mergekit ``models:`` format or ``analogy:``); duplicate keys and
    non-UTF-8 files are refused (``io.yaml_file.load_yaml``)."""
    data = load_yaml(path, "merge config")
    return parse_merge_config(data, str(path), Path(path).resolve().parent)


def parse_dtype(dtype: str | torch.dtype | None, what: str = "dtype") -> torch.dtype | None:
    """A dtype given by name (``float32``, ``bf16``, ``torch.float16``, ...) or as a ``torch.dtype``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).removeprefix("torch.")
    if key not in DTYPES:
        raise ConfigError(f"unknown {what} {dtype!r} (float32, float64, float16, bfloat16)")
    return DTYPES[key]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def resolve_model(ref: str, config_dir: str | os.PathLike | None = None) -> Path:
    """A model reference as a local path: as given (relative to the working directory, as mergekit does),
    else relative to the config file's directory, else a Hugging Face hub id (``org/name[@revision]``)
    fetched or found in the local hub cache. Raises ``CheckpointError`` when none of these exists."""
    p = Path(os.path.expanduser(ref))
    if p.exists():
        return p
    if config_dir is not None and not p.is_absolute() and (Path(config_dir) / p).exists():
        return Path(config_dir) / p
    if _HUB_ID.match(ref) and not ref.startswith((".", "/")):
        repo, _, revision = ref.partition("@")
        try:
            from huggingface_hub import snapshot_download

            side = ["*.json", "*.txt", "*.model", "tokenizer*", "*.jinja"]
            local = Path(snapshot_download(repo, revision=revision or None, allow_patterns=["*.safetensors", *side]))
            if not any(local.glob("*.safetensors")):  # older repositories: pytorch_model.bin only
                local = Path(snapshot_download(repo, revision=revision or None, allow_patterns=["*.bin", *side]))
            return local
        except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all mean "not available"
            raise CheckpointError(f"model {ref!r}: not a local path, and not available from the hub ({type(exc).__name__}: {exc})") from None
    raise CheckpointError(f"model {ref!r}: path does not exist")


# ---- per-tensor parameter resolution ----------------------------------------------------------------


def _condition_matches(cond: Condition, name: str) -> bool:
    if cond.pattern is not None:
        return re.search(cond.pattern, name) is not None
    return cond.filter is None or cond.filter == "*" or cond.filter in name


def evaluate_setting(setting: Setting, name: str, t: float) -> Any:
    """Value of a parameter setting for tensor ``name`` at layer position ``t`` (None when no condition
    matches). Numeric gradients interpolate linearly; other lists pick the element at ``int(t*(n-1))``."""
    if isinstance(setting, Condition):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, list):
        if not setting:
            return None
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            numeric = all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting)
            if not numeric:
                return setting[int(t * (len(setting) - 1))]
            x = t * (len(setting) - 1)
            i0 = int(x)
            i1 = min(len(setting) - 1, i0 + 1)
            frac = x - i0
            return (1 - frac) * setting[i0] + frac * setting[i1]
        for cond in setting:
            if isinstance(cond, Condition) and _condition_matches(cond, name):
                return evaluate_setting(cond.value, name, t)
        return None
    raise ConfigError(f"unexpected parameter value {setting!r}")


_LAYER = re.compile(r"(?:^|\.)(\d+)(?=\.|$)")


def layer_positions(names: list[str]) -> dict[str, float]:
    """t for every tensor name: layer / (layers - 1) within its stack (the name prefix before the first
    numeric component, e.g. ``model.layers``), 1 for a single-layer stack, 0 outside numbered layers."""
    stacks: dict[str, int] = {}
    found = {}
    for name in names:
        m = _LAYER.search(name)
        if m:
            prefix, idx = name[: m.start(1)], int(m.group(1))
            found[name] = (prefix, idx)
            stacks[prefix] = max(stacks.get(prefix, 0), idx + 1)
    out = {}
    for name in names:
        if name in found:
            prefix, idx = found[name]
            n = stacks[prefix]
            out[name] = idx / (n - 1) if n > 1 else 1.0
        else:
            out[name] = 0.0
    return out
