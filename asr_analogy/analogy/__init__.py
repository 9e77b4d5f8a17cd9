"""Synthetic-to-real task analogy: Synthetic2Real vectors, λ selection, ensembles, and the staged syn2real recipe.

``vectors``, ``lambdas``: the maths; ``config``, ``plan``, ``access``, ``context``: the recipe's config, jobs, leakage
guard and shared state; ``stages/``: one module per stage; ``systems``, ``report``: the result table. Names load lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "syn2real_vector": "vectors",
    "apply_analogy": "vectors",
    "ensemble_vector": "vectors",
    "ensemble_vector_file": "vectors",
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
    "RecipeContext": "context",
    "STAGES": "stages",
    "STAGE_NAMES": "stages",
    "systems_for": "systems",
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
