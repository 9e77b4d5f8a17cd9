"""Synthetic-to-real task analogy: vectors, lambda selection, ensembles, and the syn2real recipe.

    from asr_analogy.analogy import syn2real_vector, apply_analogy, ensemble_vector, run, demo

``vectors``: θ_B − θ_A, θ_C + λ·v, ensembles; ``lambdas``: λ selection (fixed / pseudo-target / oracle);
``config``: the recipe YAML; ``recipe``: the staged recipe (``run``, ``demo``); ``access``: the leakage guard;
``report``: RESULTS.md and plots. Names are imported on first use, so importing the package loads no torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "syn2real_vector": "vectors",
    "apply_analogy": "vectors",
    "ensemble_vector": "vectors",
    "vector_stats": "vectors",
    "save_vector": "vectors",
    "load_vector": "vectors",
    "save_analogy_model": "vectors",
    "LambdaModel": "vectors",
    "choose_lambda": "lambdas",
    "mean_curve": "lambdas",
    "select_lambda": "lambdas",
    "sweep_lambda": "lambdas",
    "RecipeConfig": "config",
    "load_recipe_config": "config",
    "DataAccess": "access",
    "LeakageError": "access",
    "audit_access_log": "access",
    "Syn2RealRecipe": "recipe",
    "run": "recipe",
    "demo": "recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"asr_analogy.analogy.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'asr_analogy.analogy' has no attribute {name!r}")
