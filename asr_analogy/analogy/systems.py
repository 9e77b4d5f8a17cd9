"""The systems scored on each target's real test split, in evaluation order; a new system is one entry here.

Each system names the model it decodes (``"base"`` or a job key of the target's analogy) and, for θ_C + λ·v,
the vector id and λ. ``base``: the base model; ``C``: fine-tuned on target synthetic speech; ``syn2real``:
θ_C + λ·(θ_B − θ_A) at the selected λ; ``ensemble``: θ_C + λ·ensemble vector; ``upper_bound``: trained on
target real audio (a reference, not a method); ``syn2real_oracle``: λ picked on target real dev (labelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from asr_analogy.analogy.config import RecipeConfig
from asr_analogy.analogy.plan import Suite


@dataclass(frozen=True)
class System:
    """``decode(cfg, suite, selection, vector_ids)``: ``{"model", ["vector", "lambda"]}`` or None where the
    system does not exist for this run; ``planned(cfg)``: whether the dry run lists it; ``reference``: shown last
    in the tables (not a method)."""

    name: str
    label: str
    decode: Callable[[RecipeConfig, Suite, dict, dict], dict | None]
    planned: Callable[[RecipeConfig], bool] = lambda cfg: True
    reference: bool = False


def _analogy(suite: Suite, vector_id: str | None, lam: float) -> dict | None:
    return None if vector_id is None else {"model": suite.C, "vector": vector_id, "lambda": lam}


SYSTEMS = (
    System("base", "base model", lambda cfg, suite, sel, ids: {"model": "base"}),
    System("C", "C (target synthetic)", lambda cfg, suite, sel, ids: {"model": suite.C}),
    System("syn2real", "C + syn2real", lambda cfg, suite, sel, ids: _analogy(suite, ids["syn2real"], sel["value"])),
    System("ensemble", "C + syn2real ensemble",
           lambda cfg, suite, sel, ids: _analogy(suite, ids["ensemble"], sel.get("value_ensemble", sel["value"])),
           planned=lambda cfg: cfg.ensemble.enabled),
    System("upper_bound", "upper bound (target real)",
           lambda cfg, suite, sel, ids: {"model": suite.UB} if suite.UB else None,
           planned=lambda cfg: cfg.finetune.upper_bound, reference=True),
    System("syn2real_oracle", "C + syn2real, oracle λ",
           lambda cfg, suite, sel, ids: (_analogy(suite, ids["syn2real"], sel["oracle"]["value"])
                                         if "oracle" in sel and cfg.lambda_.mode != "oracle" else None),
           planned=lambda cfg: cfg.lambda_.report_oracle and cfg.lambda_.mode != "oracle"),
)
LABELS = {s.name: s.label for s in SYSTEMS}
TABLE_ORDER = tuple(s.name for s in SYSTEMS if not s.reference) + tuple(s.name for s in SYSTEMS if s.reference)
"""Row order of the result tables: the methods in evaluation order, then the references."""


def systems_for(cfg: RecipeConfig, suite: Suite, selection: dict, vector_ids: dict) -> list[dict]:
    """The systems scored on a target: ``{"system", "model", ["vector", "lambda"]}`` each, in evaluation order.

    ``suite``: the target's main analogy; ``selection``: its ``lambda/<target>.json``; ``vector_ids``: the
    suite's vector ids (``RecipeContext.suite_vectors``).
    """
    out = []
    for system in SYSTEMS:
        entry = system.decode(cfg, suite, selection, vector_ids)
        if entry is not None:
            out.append({"system": system.name, **entry})
    return out
