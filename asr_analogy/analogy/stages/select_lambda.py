"""Stage ``select_lambda``: λ per target → ``lambda/<target>.json`` (the value, how it was chosen, the curves).

The curves (WER and CER of θ_C + λ·v over ``lambda.grid``) are decoded once and cached under
``lambda/sweeps/``; the choice itself is ``asr_analogy.analogy.lambdas.select_lambda``.
"""

from __future__ import annotations

from asr_analogy.errors import ConfigError

from asr_analogy.analogy.access import DataAccess
from asr_analogy.analogy.cache import cached_result, short_hash, write_json
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.lambdas import choose_lambda, mean_curve, select_lambda
from asr_analogy.analogy.plan import TargetPlan
from asr_analogy.analogy.stages.base import Stage


def describe(ctx: RecipeContext) -> list[str]:
    lam = ctx.cfg.lambda_
    grid = ", ".join(f"{x:g}" for x in lam.grid)
    if lam.mode == "fixed":
        lines = [f"fixed λ = {lam.value:g}"]
    elif lam.mode == "oracle":
        lines = [f"ORACLE: λ from grid [{grid}] by WER on target real dev (an upper bound on selection)"]
    else:
        pts = ", ".join(lam.pseudo_targets) if lam.pseudo_targets else "the largest source domain"
        lines = [f"pseudo-target: hold out {pts}; λ from grid [{grid}] by WER on its real "
                 f"{'/'.join(lam.select_splits)} audio"
                 + (" (held out of the sources too)" if lam.holdout_from_sources else "")]
    if lam.report_oracle and lam.mode != "oracle":
        lines.append("also report the oracle λ (target real dev), labelled")
    return lines


def sweep(ctx: RecipeContext, c_key: str, vector_id: str, records: list[dict], label: str) -> dict:
    """WER and CER of θ_C + λ·v on ``records`` for every λ of the grid (cached under lambda/sweeps/)."""
    lam = ctx.cfg.lambda_
    ev = ctx.cfg.evaluate
    ids = [r.get("id") or r["audio_filepath"] for r in records]
    key = short_hash({"C": ctx.job_fingerprint(c_key), "v": vector_id, "ids": ids, "grid": lam.grid,
                      "norm": ev.normalizer, "beams": ev.num_beams, "max_new_tokens": ev.max_new_tokens})

    def compute() -> dict:
        curve = ctx.decoder.curve(ctx.model_dir(c_key), ctx.vector_path(vector_id), records, lam.grid, ctx.echo)
        return {"label": label, "C": ctx.plan().jobs[c_key].dirname, "vector": vector_id,
                "n_utterances": len(records), "lambdas": lam.grid, "wer": curve["wer"], "cer": curve["cer"]}

    return cached_result(ctx.out / "lambda" / "sweeps" / f"{key}.json", None, compute)


def _pseudo_target_curves(ctx: RecipeContext, access: DataAccess, target_plan: TargetPlan) -> tuple[list, list]:
    """The curves of every pseudo-target of a target: ``(syn2real curves, ensemble curves)``."""
    lam = ctx.cfg.lambda_
    curves, ensemble_curves = [], []
    for pseudo in target_plan.pseudo:
        recs = access.records(ctx.real_manifest, consumer=f"select_lambda/pseudo_target[{pseudo.target}]",
                              purpose="decode", domains=[pseudo.target], splits=lam.select_splits)
        if not recs:
            raise ConfigError(f"pseudo-target '{pseudo.target}' has no real utterances in {lam.select_splits}")
        ids = ctx.suite_vectors(pseudo)
        ctx.echo(f"[select_lambda] {target_plan.target}: pseudo-target {pseudo.target} ({len(recs)} utterances)")
        curves.append(sweep(ctx, pseudo.C, ids["syn2real"], recs, f"pseudo-target {pseudo.target}"))
        if ids["ensemble"]:
            ctx.echo(f"[select_lambda] {target_plan.target}: pseudo-target {pseudo.target}, ensemble vector")
            ensemble_curves.append(sweep(ctx, pseudo.C, ids["ensemble"], recs,
                                         f"pseudo-target {pseudo.target} (ensemble)"))
    return curves, ensemble_curves


def select_for_target(ctx: RecipeContext, access: DataAccess, target_plan: TargetPlan) -> dict:
    """The content of ``lambda/<target>.json``."""
    lam = ctx.cfg.lambda_
    target = target_plan.target
    result: dict = {"target": target, "mode": lam.mode}
    vector_ids = ctx.suite_vectors(target_plan.main)
    curves, ensemble_curves = [], []
    if lam.mode == "pseudo_target":
        curves, ensemble_curves = _pseudo_target_curves(ctx, access, target_plan)
        result.update(curves=curves, mean_curve=mean_curve(curves))
        if ensemble_curves:
            result["ensemble_curves"] = ensemble_curves
    oracle = oracle_ensemble = None
    if lam.mode == "oracle" or lam.report_oracle:
        recs = access.records(ctx.real_manifest, consumer="select_lambda/oracle", purpose="decode",
                              domains=[target], splits=["dev"])
        if not recs:
            raise ConfigError(f"target '{target}' has no real dev utterances for the oracle λ")
        ctx.echo(f"[select_lambda] {target}: ORACLE sweep on target real dev ({len(recs)} utterances)")
        oracle = sweep(ctx, target_plan.main.C, vector_ids["syn2real"], recs, f"ORACLE target {target} dev")
        result["oracle"] = {"value": choose_lambda(oracle["lambdas"], oracle["wer"]), "curve": oracle}
        if lam.mode == "oracle" and vector_ids["ensemble"]:
            oracle_ensemble = sweep(ctx, target_plan.main.C, vector_ids["ensemble"], recs,
                                    f"ORACLE target {target} dev (ensemble)")
    how_names = dict(value=lam.value, pseudo_targets=[p.target for p in target_plan.pseudo],
                     select_splits=lam.select_splits, target=target)
    value, how = select_lambda(lam.mode, pseudo_target_curves=curves, oracle_curve=oracle, **how_names)
    value_ensemble = value
    if ensemble_curves or oracle_ensemble:
        value_ensemble, _ = select_lambda(lam.mode, pseudo_target_curves=ensemble_curves,
                                          oracle_curve=oracle_ensemble, **how_names)
    result.update(value=value, value_ensemble=value_ensemble, how=how)
    return result


def run(ctx: RecipeContext) -> dict:
    access = ctx.access.for_stage("select_lambda")
    summary = {}
    for target_plan in ctx.plan().targets:
        result = select_for_target(ctx, access, target_plan)
        write_json(ctx.out / "lambda" / f"{target_plan.target}.json", result)
        summary[target_plan.target] = {"lambda": result["value"], "lambda_ensemble": result.get("value_ensemble"),
                                       "how": result["how"]}
        ctx.echo(f"[select_lambda] {target_plan.target}: λ = {result['value']:g} ({result['how']})")
    return summary


STAGE = Stage("select_lambda", run, inputs=("lambda", "evaluate"),
              outputs=("lambda/<target>.json", "lambda/sweeps/"), describe=describe, doc="λ per target")
