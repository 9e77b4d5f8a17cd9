"""Repeating a syn2real run over seeds (``finetune.seeds``) and reporting over them.

With seeds, prep and synthesize run once in ``<exp_dir>/<name>/`` and everything from finetune on runs once per
seed in ``<exp_dir>/<name>/seed<k>/`` (its own models, vectors, λ choices, ``eval/<target>/hyps/<system>.jsonl``
and ``RESULTS.md``), reading the shared data. ``aggregate`` then writes ``<exp_dir>/<name>/results.json`` and
``RESULTS.md``: per target and system the WER of each seed, their mean and standard deviation (n − 1), and per
pair of systems the paired bootstrap of the WER difference with every seed's errors of an utterance summed
(utterances are the resampling unit, seeds are averaged within them), per target and pooled over targets.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from asr_analogy.errors import AsrAnalogyError
from asr_analogy.io.atomic import atomic_file

from asr_analogy.analogy.cache import read_json
from asr_analogy.analogy.config import RecipeConfig
from asr_analogy.analogy.systems import REFERENCES, adds_a_vector

GOAL_REFERENCES = ("C_tts", "C_paper", "C_multi", "C", "base")


def seed_config(cfg: RecipeConfig, seed: int) -> RecipeConfig:
    """The config of one seed's run: ``finetune.seed`` set, outputs in ``<exp_dir>/<name>/seed<k>/``."""
    ft = cfg.finetune.model_copy(update={"seed": seed, "seeds": None})
    sub = cfg.model_copy(update={"finetune": ft, "exp_dir": str(cfg.out_dir), "name": f"seed{seed}"})
    sub.source_path, sub.variant = cfg.source_path, cfg.variant
    return sub


def _errors_by_id(ref_file: Path, sys_file: Path, normalizer: str) -> dict[str, tuple[int, int, int]]:
    from asr_analogy.speech.metrics import _paired_arrays

    recs, err_a, err_b, words = _paired_arrays(ref_file, sys_file, normalizer, None)
    return {str(r.get("id") or r["audio_filepath"]): (int(a), int(b), int(w))
            for r, a, b, w in zip(recs, err_a, err_b, words)}


def paired_over_seeds(files: dict, ref: str, name: str, *, normalizer: str, bootstrap: int, seed: int) -> dict | None:
    """The paired bootstrap of ``name`` − ``ref`` over targets; ``files[target][seed][system]`` are hyps files.

    Per target, every utterance's word errors (and reference words) are summed over the seeds where both
    systems were scored; utterances are resampled within each target. None where no seed has both."""
    from asr_analogy.speech.metrics import paired_difference

    groups, names = [], []
    for target, per_seed in files.items():
        total: dict[str, list[int]] = {}
        for systems in per_seed.values():
            if ref not in systems or name not in systems:
                continue
            for uid, (a, b, w) in _errors_by_id(systems[ref], systems[name], normalizer).items():
                t = total.setdefault(uid, [0, 0, 0])
                t[0] += a
                t[1] += b
                t[2] += w
        if total:
            arr = np.array(list(total.values()), dtype=np.int64)
            groups.append((arr[:, 0], arr[:, 1], arr[:, 2]))
            names.append(target)
    if not groups:
        return None
    return {**paired_difference(groups, bootstrap, seed), "groups": names}


def aggregate(cfg: RecipeConfig, seeds: list[int]) -> dict:
    """``results.json`` of a run over seeds (see the module docstring); raises when a seed has no results."""
    out = cfg.out_dir
    per_seed = {}
    for k in seeds:
        path = out / f"seed{k}" / "results.json"
        if not path.is_file():
            raise AsrAnalogyError(f"{path} is missing: seed {k} has not finished its report stage")
        per_seed[k] = read_json(path)
    first = per_seed[seeds[0]]
    ev = cfg.evaluate
    targets: dict = {}
    files: dict = {}
    labels: dict = {}
    for k, res in per_seed.items():
        for t, entry in res["targets"].items():
            for s in entry["systems"]:
                labels[s["system"]] = s["label"]
                row = targets.setdefault(t, {}).setdefault(s["system"], {"wer": {}, "n_utterances": s.get("n_utterances"),
                                                                            "n_words": s.get("n_words")})
                row["wer"][k] = s["wer"]
                if s.get("lambda") is not None:
                    row.setdefault("lambda", {})[k] = s["lambda"]
                if s["system"] != "upper_bound" or not ev.all_target_utterances:
                    files.setdefault(t, {}).setdefault(k, {})[s["system"]] = out / f"seed{k}" / "eval" / t / s["hyps"]
            if entry.get("best"):
                targets[t].setdefault("_picks", {})[k] = entry["best"]
    for t, systems in targets.items():
        for name, row in systems.items():
            if name.startswith("_"):
                continue
            w = list(row["wer"].values())
            row["mean"] = statistics.fmean(w)
            row["std"] = statistics.stdev(w) if len(w) > 1 else 0.0
    order = first.get("order") or []
    names = [n for n in order if any(n in s for s in targets.values())]
    pooled: dict = {}
    for name in names:
        for ref in GOAL_REFERENCES:
            if ref == name or ref not in names:
                continue
            p = paired_over_seeds(files, ref, name, normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed)
            if p is not None:
                pooled.setdefault(name, {})[f"vs_{ref}"] = p
    per_target = {}
    for t in files:
        for name in ("best", "syn2real"):
            for ref in GOAL_REFERENCES:
                if ref != name and name in names and ref in names:
                    p = paired_over_seeds({t: files[t]}, ref, name, normalizer=ev.normalizer,
                                          bootstrap=ev.bootstrap, seed=ev.seed)
                    if p is not None:
                        per_target.setdefault(t, {}).setdefault(name, {})[f"vs_{ref}"] = p
    for t, systems in targets.items():  # what target real audio would have picked (for reference only)
        analogy = [n for n in names if adds_a_vector(n) and n not in REFERENCES and n in systems]
        if analogy:
            systems["_oracle_picks"] = {k: min(analogy, key=lambda n: systems[n]["wer"].get(k, float("inf")))
                                        for k in seeds}
    return {"name": cfg.name, "base_model": first["base_model"], "condition": first.get("condition"),
            "scored": first.get("scored"), "normalizer": ev.normalizer, "bootstrap": ev.bootstrap,
            "seeds": seeds, "order": names, "labels": labels, "targets": targets, "pooled": pooled,
            "per_target_paired": per_target, "goal": goal_summary(pooled)}


def goal_summary(pooled: dict, system: str = "best") -> dict | None:
    """``system`` (the pseudo-target pick) versus C_tts, and versus the stronger of C_paper and C_multi (the
    one of lower pooled WER), with the pooled paired difference and whether its interval excludes 0."""
    from asr_analogy.analogy.report import significant

    refs = pooled.get(system)
    if not refs or "vs_C_tts" not in refs:
        return None
    strong = [r for r in ("vs_C_paper", "vs_C", "vs_C_multi") if r in refs]
    strongest = min(strong, key=lambda r: refs[r]["wer_a_pct"]) if strong else None
    out = {"system": system}
    for key, ref in (("vs_C_tts", "vs_C_tts"), ("vs_strongest", strongest)):
        if ref is not None:
            p = refs[ref]
            out[key] = {"reference": ref[3:], "rel_change_pct": p["rel_change_pct"], "rel_ci_pct": p["rel_ci_pct"],
                        "diff_pp": p["diff_pp"], "diff_ci_pp": p["diff_ci_pp"], "significant": significant(p)}
    return out


def _delta(p: dict | None) -> str:
    if not p or p.get("diff_pp") is None:
        return "–"
    ci = p.get("diff_ci_pp")
    rel = p.get("rel_change_pct")
    return (f"{p['diff_pp']:+.2f} pp" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
            + (f", {rel:+.1f} %" if rel is not None else ""))


def markdown(res: dict) -> str:
    from asr_analogy.analogy.report import significant
    from asr_analogy.ops.param_groups import describe_scale

    seeds = res["seeds"]
    md = [f"# Results: {res['name']} over seeds {', '.join(map(str, seeds))}", "",
          f"Base model `{res['base_model']}`; WER in percent on the audio of {res.get('scored') or 'target real test'}, "
          f"normalized with `{res['normalizer']}`. Each cell: mean ± standard deviation over the seeds, then each "
          f"seed's WER. Paired differences: every seed's word errors of an utterance summed, utterances resampled "
          f"within each target ({res['bootstrap']} resamples); “significant” only where the 95 % interval excludes 0.",
          ""]
    if res.get("condition"):
        md += [f"Acoustic condition: {res['condition']}.", ""]
    for t, systems in res["targets"].items():
        md += [f"## Target `{t}`", "", "| system | WER % mean ± sd | per seed | λ per seed | utterances | words |",
               "|---|---:|---|---|---:|---:|"]
        for name in res["order"]:
            row = systems.get(name)
            if row is None:
                continue
            per = ", ".join(f"{100 * row['wer'][k]:.2f}" for k in row["wer"])
            lam = "; ".join(describe_scale(v) for v in row.get("lambda", {}).values())
            md.append(f"| {res['labels'].get(name, name)} | {100 * row['mean']:.2f} ± {100 * row['std']:.2f} | {per} "
                      f"| {lam} | {row.get('n_utterances') or ''} | {row.get('n_words') or ''} |")
        oracle = systems.get("_oracle_picks", {})
        if oracle:
            md.append("")
            md.append("What target real audio would have picked among the syn2real systems (ORACLE, reference only): "
                      + "; ".join(f"seed {k}: {res['labels'].get(n, n)}" for k, n in oracle.items()) + ".")
        picks = systems.get("_picks", {})
        if picks:
            md.append("")
            md.append("Pseudo-target picks: " + "; ".join(
                f"seed {k}: C_{p['variant']} + syn2real" + (f" ({p['option']})" if p.get("option") else "")
                for k, p in picks.items()) + ".")
        md.append("")
    goal = res.get("goal")
    if goal:
        md += ["## The method's pick against the baselines", ""]
        for key, what in (("vs_C_tts", "C_tts"), ("vs_strongest", "the stronger of C_paper and C_multi")):
            g = goal.get(key)
            if g:
                ci = g["rel_ci_pct"]
                md.append(f"- best syn2real (pseudo-target pick) versus {what} ({g['reference']}): "
                          f"**{g['rel_change_pct']:+.1f} %** relative WER"
                          + (f" [95 % CI {ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
                          + f", {g['diff_pp']:+.2f} points; "
                          + ("significant" if g["significant"] else "the interval includes 0") + ".")
        md.append("")
    md += ["## Paired differences pooled over targets and seeds", "",
           "| system − reference | targets | WER ref % | WER system % | Δ [95 % CI], relative | share Δ ≤ 0 | verdict |",
           "|---|---|---:|---:|---|---:|---|"]
    for name, refs in res["pooled"].items():
        for vs, p in refs.items():
            md.append(f"| {res['labels'].get(name, name)} − {res['labels'].get(vs[3:], vs[3:])} | {', '.join(p['groups'])} "
                      f"| {p['wer_a_pct']:.2f} | {p['wer_b_pct']:.2f} | {_delta(p)} | {p['share_diff_le_0']:.3f} "
                      f"| {'significant' if significant(p) else 'interval includes 0'} |")
    md.append("")
    return "\n".join(md)


def write_aggregate(cfg: RecipeConfig, seeds: list[int]) -> Path:
    """``results.json`` and ``RESULTS.md`` of a run over seeds, in ``<exp_dir>/<name>/``."""
    res = aggregate(cfg, seeds)
    out = cfg.out_dir
    with atomic_file(out / "results.json") as fh:
        json.dump(res, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")
    with atomic_file(out / "RESULTS.md") as fh:
        fh.write(markdown(res))
    return out / "RESULTS.md"
