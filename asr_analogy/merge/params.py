"""What a merge method declares about itself: its parameters (name, default, allowed values, per model or
global) and the paper it comes from. The kernels in ``merge.kernels`` declare theirs next to their maths;
``merge.config`` checks every ``parameters`` block of a config against the declaration of its method.

A per-model parameter (``weight``, ``density``) takes one value per input model: it is set in a model's
``parameters``, defaulted in the top-level ``parameters`` or set by an override. A global parameter
(``lambda``, ``t``) is set once, in the top-level ``parameters`` or an override.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

NUMBER, FLAG, CHOICE = "number", "flag", "choice"


@dataclass(frozen=True)
class Param:
    """One parameter of a merge method. ``default`` None: required. Numbers must be finite and lie in
    [low, high] (an end that is ``open`` is excluded; None: unbounded); choices are compared by type and
    value (``true`` is not ``1``)."""

    name: str
    default: Any
    doc: str
    kind: str = NUMBER  # NUMBER, FLAG (true/false) or CHOICE (one of ``choices``)
    per_model: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``a number in (0, 1]``."""
        if self.kind == FLAG:
            return "true or false"
        if self.kind == CHOICE:
            return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        if self.low is None and self.high is None:
            return "a finite number"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"a number in {left}{lo}, {hi}{right}"

    def convert(self, value: Any) -> Any:
        """``value`` as this parameter's type (float, bool or the choice); ``ValueError`` saying what is allowed.
        Ranges are not checked here (see ``check``), so a value interpolated along a gradient always passes."""
        if self.kind == NUMBER:
            if not isinstance(value, bool):
                try:
                    return float(value)
                except (TypeError, ValueError):
                    pass
        elif self.kind == FLAG:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
        elif any(type(value) is type(c) and value == c for c in self.choices):
            return value
        raise ValueError(f"must be {self.allowed()}, got {value!r}")

    def check(self, value: Any) -> str | None:
        """Why ``value`` (one scalar as written in a config) is not allowed, or None when it is."""
        try:
            x = self.convert(value)
        except ValueError as exc:
            return str(exc)
        if self.kind != NUMBER:
            return None
        if not math.isfinite(x):
            return f"must be finite, got {value!r}"
        too_low = self.low is not None and (x <= self.low if self.low_open else x < self.low)
        too_high = self.high is not None and (x >= self.high if self.high_open else x > self.high)
        if too_low or too_high:
            return f"must be {self.allowed()}, got {value!r}"
        return None

    def with_default(self, default: Any) -> "Param":
        """The same parameter with another default (methods of one kernel differ only there)."""
        return Param(self.name, default, self.doc, self.kind, self.per_model, self.low, self.high,
                     self.low_open, self.high_open, self.choices)


@dataclass(frozen=True)
class Method:
    """A named merge method: the kernel that computes one output tensor, how its inputs are laid out, its
    parameters and the paper it comes from.

    ``layout``: ``"deltas"`` (task vectors theta_i - base, added to the base), ``"models"`` (the models
    themselves, averaged; a base is one more input) or ``"pair"`` (the base and exactly one other model).
    ``kernel(tensor_plan, streamer)`` yields the output tensor's flat chunks (see ``merge.kernels``).
    """

    name: str
    layout: str
    kernel: Callable
    params: tuple[Param, ...]
    paper: str

    @property
    def needs_base(self) -> bool:
        return self.layout in ("deltas", "pair")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def param_names(self) -> str:
        return ", ".join(p.name for p in self.params)


# Parameters several kernels share (each method may give its own default with ``with_default``).
WEIGHT = Param("weight", 1.0, "multiplies the model's delta (linear: its share of the average); negative negates",
               per_model=True)
NORMALIZE = Param("normalize", False, "divide by the sum of the weights", kind=FLAG)
