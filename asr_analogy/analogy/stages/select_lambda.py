"""Stage ``select_lambda``: λ per target → ``lambda/<target>.json`` (the value, how it was chosen, the curves).

The curves (WER and CER of θ_C + λ·v over ``lambda.grid``) are decoded once and cached under
``lambda/sweeps/``; the choice itself is ``asr_analogy.analogy.lambdas.select_lambda``.
"""

from __future__ import annotations

from asr_analogy.errors import ConfigError

from asr_analogy.analogy import _deps
from asr_analogy.analogy.access import DataAccess
from asr_analogy.analogy.cache import cached_result, short_hash, write_json
from asr_analogy.analogy.config import EvaluateConfig
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.lambdas import choose_lambda, mean_curve, select_lambda
from asr_analogy.analogy.plan import TargetPlan
from asr_analogy.analogy.stages.base import Stage
from asr_analogy.analogy.systems import has_choice
from asr_analogy.ops.param_groups import describe_scale


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
                      "norm": ev.normalizer, **ev.decoding()})

    def compute() -> dict:
        curve = ctx.decoder.curve(ctx.model_dir(c_key), ctx.vector_path(vector_id), records, lam.grid, ctx.echo)
        return {"label": label, "C": ctx.plan().jobs[c_key].dirname, "vector": vector_id,
                "n_utterances": len(records), "lambdas": lam.grid, "wer": curve["wer"], "cer": curve["cer"]}

    return cached_result(ctx.out / "lambda" / "sweeps" / f"{key}.json", None, compute)


def _pseudo_target_curves(ctx: RecipeContext, pseudo_recs: list[tuple], target: str) -> tuple[list, list]:
    """The curves of every pseudo-target of a target: ``(syn2real curves, ensemble curves)``; ``pseudo_recs``
    from ``_pseudo_records``."""
    curves, ensemble_curves = [], []
    for pseudo, recs in pseudo_recs:
        ids = ctx.suite_vectors(pseudo)
        ctx.echo(f"[select_lambda] {target}: pseudo-target {pseudo.target} ({len(recs)} utterances)")
        curves.append(sweep(ctx, pseudo.C, ids["syn2real"], recs, f"pseudo-target {pseudo.target}"))
        if ids["ensemble"]:
            ctx.echo(f"[select_lambda] {target}: pseudo-target {pseudo.target}, ensemble vector")
            ensemble_curves.append(sweep(ctx, pseudo.C, ids["ensemble"], recs,
                                         f"pseudo-target {pseudo.target} (ensemble)"))
    return curves, ensemble_curves


def _pseudo_records(ctx: RecipeContext, access: DataAccess, target_plan: TargetPlan) -> list[tuple]:
    """``(pseudo suite, its real selection records)`` per pseudo-target of a target."""
    lam = ctx.cfg.lambda_
    out = []
    for pseudo in target_plan.pseudo:
        recs = access.records(ctx.real_manifest, consumer=f"select_lambda/pseudo_target[{pseudo.target}]",
                              purpose="decode", domains=[pseudo.target], splits=lam.select_splits)
        if not recs:
            raise ConfigError(f"pseudo-target '{pseudo.target}' has no real utterances in {lam.select_splits}")
        out.append((pseudo, recs))
    return out


def _grid_choice(ctx: RecipeContext, pseudo_recs: list[tuple], variant: str, vector: str, label: str) -> dict:
    """λ on the grid for C_variant + the pseudo-targets' vector ``vector`` (a key of ``suite_vectors``):
    ``{"scale", "pseudo_wer", "curve"}``, the curve being the mean over the pseudo-targets."""
    curves = [sweep(ctx, p.variants[variant], ctx.suite_vectors(p)[vector], recs,
                    f"pseudo-target {p.target}, C_{variant}{label}") for p, recs in pseudo_recs]
    mean = mean_curve(curves)
    value = choose_lambda(mean["lambdas"], mean["wer"])
    return {"scale": value, "pseudo_wer": mean["wer"][mean["lambdas"].index(value)], "curve": mean}


def _variant_choices(ctx: RecipeContext, pseudo_recs: list[tuple], variant: str, target: str) -> dict:
    """Per C variant: the single λ, every ``lambda.search`` option and the ensemble vector (with
    ``ensemble.enabled``), each chosen on the pseudo-targets.

    ``{"single": {"scale", "pseudo_wer", "curve"}, "<option>": {"scale", "pseudo_wer", ...},
    "ensemble": {"scale", "pseudo_wer", "curve"}}``; the WER of a choice is the mean over the pseudo-targets of
    their WER (fractions) at that setting.
    """
    from asr_analogy.analogy.options import coordinate_search, parse_option

    lam = ctx.cfg.lambda_
    out = {"single": _grid_choice(ctx, pseudo_recs, variant, "syn2real", "")}
    single, mean = out["single"]["scale"], out["single"]["curve"]
    out["single"]["wer_at_0"] = mean["wer"][mean["lambdas"].index(0.0)] if 0.0 in mean["lambdas"] else None
    for option in lam.search:
        parsed = parse_option(option)
        if parsed[0] == "topk":
            out[option] = _grid_choice(ctx, pseudo_recs, variant, option, f", {option}")
            continue
        # the decoding settings enter the key only where they differ from the defaults: searches cached before
        # the key held them stay valid
        decoding = ctx.cfg.evaluate.decoding()
        changed = {"decoding": decoding} if decoding != EvaluateConfig().decoding() else {}
        key = short_hash({"search": option, "start": single, "grid": lam.grid, "norm": ctx.cfg.evaluate.normalizer,
                          **changed,
                          "points": [[ctx.job_fingerprint(p.variants[variant]), ctx.suite_vectors(p)["syn2real"],
                                      [r.get("id") or r["audio_filepath"] for r in recs]] for p, recs in pseudo_recs]})

        def search(option=option, parsed=parsed) -> dict:
            def score(scale) -> float:
                wers = []
                for p, recs in pseudo_recs:
                    hyps = ctx.decoder.hyps(ctx.model_dir(p.variants[variant]), recs,
                                            ctx.vector_path(ctx.suite_vectors(p)["syn2real"]), scale)
                    wers.append(_deps.score(hyps, normalizer=ctx.cfg.evaluate.normalizer, bootstrap=0)["wer"])
                wer = sum(wers) / len(wers)
                ctx.echo(f"    {describe_scale(scale):<40} WER {100 * wer:.2f} %")
                return wer

            ctx.echo(f"[select_lambda] {target}: C_{variant}, {option} search on the pseudo-target(s)")
            scale, tried = coordinate_search(score, parsed[0], single, lam.grid)
            return {"scale": scale, "pseudo_wer": min(t["wer"] for t in tried if t["scale"] == scale),
                    "tried": tried}

        out[option] = cached_result(ctx.out / "lambda" / "sweeps" / f"search-{key}.json", None, search)
    if all(ctx.suite_vectors(p)["ensemble"] for p, _ in pseudo_recs):
        out["ensemble"] = _grid_choice(ctx, pseudo_recs, variant, "ensemble", ", ensemble")
    return out


def _best(ctx: RecipeContext, variants: dict) -> dict:
    """The (variant, option) of lowest pseudo-target WER; ties go to the earlier one (c_init's C, single λ).
    The option is None (single λ), a ``lambda.search`` entry or ``"ensemble"``."""
    best = None
    for variant, choices in variants.items():
        for option, choice in choices.items():
            if best is None or choice["pseudo_wer"] < best["pseudo_wer"] - 1e-12:
                best = {"variant": variant, "option": None if option == "single" else option,
                        "scale": choice["scale"], "pseudo_wer": choice["pseudo_wer"]}
    return best


def select_for_target(ctx: RecipeContext, access: DataAccess, target_plan: TargetPlan) -> dict:
    """The content of ``lambda/<target>.json``."""
    lam = ctx.cfg.lambda_
    target = target_plan.target
    result: dict = {"target": target, "mode": lam.mode}
    vector_ids = ctx.suite_vectors(target_plan.main)
    curves, ensemble_curves, pseudo_recs = [], [], []
    if lam.mode == "pseudo_target":
        pseudo_recs = _pseudo_records(ctx, access, target_plan)
        curves, ensemble_curves = _pseudo_target_curves(ctx, pseudo_recs, target)
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
    cfg = ctx.cfg
    if lam.mode == "pseudo_target" and has_choice(cfg):
        result["variants"] = {v: _variant_choices(ctx, pseudo_recs, v, target) for v in cfg.finetune.c_variants}
        result["best"] = _best(ctx, result["variants"])
        b = result["best"]
        ctx.echo(f"[select_lambda] {target}: best on the pseudo-target: C_{b['variant']} + syn2real"
                 + (f" ({b['option']})" if b["option"] else "") + f", λ {describe_scale(b['scale'])}, "
                 f"WER {100 * b['pseudo_wer']:.2f} %")
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
