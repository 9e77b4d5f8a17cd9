"""Choosing λ in θ_D = θ_C + λ·(θ_B − θ_A) without looking at the target's real audio.

Three modes (``LambdaConfig.mode``):

| mode            | λ from                                                              | valid selection? |
|-----------------|---------------------------------------------------------------------|------------------|
| ``fixed``       | the config (the paper's code hard-codes 0.2)                        | yes              |
| ``pseudo_target`` | the WER-vs-λ curve on the real audio of held-out *source* domains, each treated as a stand-in target with its own A′/B′/C′ built without it | yes |
| ``oracle``      | the WER-vs-λ curve on the *target* real dev audio                   | no: reported and labelled only |

A curve is the WER (fraction) at each λ of a grid; several pseudo-targets are averaged point by point.
``choose_lambda`` takes the λ of minimum WER, and among equal minima the smallest λ (the one closest to θ_C).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from asr_analogy.errors import ConfigError


def choose_lambda(lambdas: Sequence[float], wers: Sequence[float], tol: float = 1e-12) -> float:
    """The λ with the lowest WER; ties (within ``tol``) go to the smallest λ.

    >>> choose_lambda([0.0, 0.2, 0.4], [0.30, 0.25, 0.25])
    0.2
    """
    if len(lambdas) != len(wers) or not lambdas:
        raise ConfigError(f"a λ curve needs as many WERs as λ values (got {len(lambdas)} λ, {len(wers)} WERs)")
    best = min(wers)
    return float(min(l for l, w in zip(lambdas, wers) if w <= best + tol))


def mean_curve(curves: Sequence[dict]) -> dict:
    """Point-by-point mean of several curves ``{"lambdas": [...], "wer": [...], "cer": [...]}`` on one grid."""
    if not curves:
        raise ConfigError("no λ curve to average (no pseudo-target domain?)")
    grid = list(curves[0]["lambdas"])
    for c in curves[1:]:
        if list(c["lambdas"]) != grid:
            raise ConfigError("λ curves to average use different grids")
    n = len(curves)
    out = {"lambdas": grid, "wer": [sum(c["wer"][i] for c in curves) / n for i in range(len(grid))]}
    if all("cer" in c for c in curves):
        out["cer"] = [sum(c["cer"][i] for c in curves) / n for i in range(len(grid))]
    return out


def sweep_lambda(set_lambda: Callable[[float], None], score: Callable[[], float | Mapping], grid: Sequence[float]) -> dict:
    """Score a model at each λ: ``set_lambda(λ)`` puts θ_C + λ·v in place, ``score()`` returns its WER, or a
    mapping with ``wer`` and ``cer`` (fractions).

    Returns ``{"lambdas": grid, "wer": [...]}``, plus ``"cer": [...]`` when ``score`` gives mappings. Used with
    ``vectors.LambdaModel.set`` and a transcription of the selection audio, so no model is written to disk.
    """
    wers, cers = [], []
    for lam in grid:
        set_lambda(float(lam))
        result = score()
        if isinstance(result, Mapping):
            wers.append(float(result["wer"]))
            cers.append(float(result["cer"]))
        else:
            wers.append(float(result))
    curve = {"lambdas": [float(x) for x in grid], "wer": wers}
    if cers:
        curve["cer"] = cers
    return curve


def select_lambda(
    mode: str,
    *,
    value: float | None = None,
    pseudo_target_curves: Sequence[dict] = (),
    oracle_curve: dict | None = None,
    pseudo_targets: Sequence[str] = (),
    select_splits: Sequence[str] = ("dev",),
    target: str = "",
) -> tuple[float, str]:
    """λ and a sentence saying how it was chosen, for ``mode`` fixed / pseudo_target / oracle.

    ``pseudo_targets`` (the held-out domains behind ``pseudo_target_curves``), ``select_splits`` (their splits
    scored) and ``target`` (whose dev audio gave ``oracle_curve``) are named in the sentence.
    """
    if mode == "fixed":
        if value is None:
            raise ConfigError("lambda mode 'fixed' needs lambda.value")
        return float(value), f"fixed λ = {value:g}"
    if mode == "pseudo_target":
        curve = mean_curve(pseudo_target_curves)
        lam = choose_lambda(curve["lambdas"], curve["wer"])
        return lam, (f"pseudo-target: min WER on real {'/'.join(select_splits)} audio of held-out source domain(s) "
                     f"{', '.join(pseudo_targets)}")
    if mode == "oracle":
        if oracle_curve is None:
            raise ConfigError("lambda mode 'oracle' needs the target dev curve")
        lam = choose_lambda(oracle_curve["lambdas"], oracle_curve["wer"])
        return lam, f"ORACLE: min WER on target '{target}' real dev (not a valid selection)"
    raise ConfigError(f"unknown lambda mode {mode!r}; choose fixed, pseudo_target or oracle")
