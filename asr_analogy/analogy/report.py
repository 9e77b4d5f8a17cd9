"""RESULTS.md, results.json and PNG plots of a syn2real run.

Per target: a table of every system (WER and CER in percent, the 95 % bootstrap interval of the WER, the
relative WER change versus C: (WER − WER_C) / WER_C, negative is better, and the paired difference versus C and
versus the base model in percentage points with its 95 % paired-bootstrap interval), the λ chosen and how, the
normalizer applied to references and hypotheses; the same paired differences pooled over targets, "significant"
only where the pooled interval excludes 0; a plot of WER versus λ (target test curve for reference, the selection
curve that chose λ, the oracle curve when computed) with the chosen λ marked; and one bar chart of all systems.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr_analogy.io.atomic import atomic_file

from asr_analogy.speech.degrade import describe_condition

from asr_analogy.analogy.cache import read_json
from asr_analogy.ops.param_groups import describe_scale

from asr_analogy.analogy.systems import REFERENCES, adds_a_vector, systems_for, table_order


PAIRED_REFERENCES = ("C", "base", "C_tts", "C_paper", "C_multi")
"""Every system's WER is compared with each of these systems' (those the run has) on the same utterances
(paired bootstrap)."""

_FALLBACK_ORDER = ("base", "C", "syn2real", "ensemble", "best", "upper_bound", "syn2real_oracle")


def paired_versus(hyps_files: dict, *, normalizer: str, bootstrap: int, seed: int, skip=()) -> dict:
    """``{system: {"vs_C": paired, "vs_base": paired}}`` from ``hyps_files`` = {target: {system: hyps JSONL}}.

    Each entry is ``asr_analogy.speech.metrics.paired_bootstrap_pooled`` of (reference, system) over the targets
    where both were scored (one target: the plain paired bootstrap), in percent and percentage points, system
    minus reference (negative: the system makes fewer errors).
    """
    from asr_analogy.speech.metrics import paired_bootstrap_pooled

    names = [n for n in dict.fromkeys(name for files in hyps_files.values() for name in files) if n not in skip]
    out: dict = {}
    for name in names:
        for ref in PAIRED_REFERENCES:
            pairs = {t: (files[ref], files[name]) for t, files in hyps_files.items() if ref in files and name in files}
            if name != ref and pairs:
                out.setdefault(name, {})[f"vs_{ref}"] = paired_bootstrap_pooled(
                    pairs, normalizer=normalizer, n_resamples=bootstrap, seed=seed)
    return out


def hyps_path(out: Path, target: str, system: str) -> Path:
    """``eval/<target>/hyps/<system>.jsonl``: one line per scored utterance with ``id``, ``text``, ``hypothesis``."""
    return Path(out) / "eval" / target / "hyps" / f"{system}.jsonl"


def target_results(ctx, target_plan) -> dict:
    """``eval/<target>/results.json``: every system's row of the target's table (WER and CER as fractions, 95 %
    interval, relative change versus C as a fraction) with its paired differences versus C and base."""
    cfg, t = ctx.cfg, target_plan.target
    ev = cfg.evaluate
    systems = []
    for sysd in systems_for(cfg, target_plan.main, ctx.selection(t), ctx.suite_vectors(target_plan.main)):
        m = read_json(ctx.out / "eval" / t / "metrics" / f"{sysd['system']}.json")
        systems.append({
            "system": sysd["system"], "label": m.get("label", sysd["system"]), "lambda": sysd.get("lambda"),
            "wer": m["wer"], "cer": m["cer"], "wer_ci95": m.get("wer_ci95"), "n_utterances": m.get("n_utterances"),
            "n_words": m.get("n_ref_words"), "n_word_errors": m.get("n_word_errors"),
            "hyps": f"hyps/{sysd['system']}.jsonl",
        })
    for name in ("syn2real", "ensemble"):  # the exported systems decoded as deployed (evaluate.deployed)
        key = f"{name}_ct2_{ev.deployed}"
        path = ctx.out / "eval" / t / "metrics" / f"{key}.json"
        if ev.deployed and path.is_file():
            m = read_json(path)
            systems.append({"system": key, "label": m["label"], "lambda": None, "wer": m["wer"], "cer": m["cer"],
                            "wer_ci95": m.get("wer_ci95"), "n_utterances": m.get("n_utterances"),
                            "n_words": m.get("n_ref_words"), "n_word_errors": m.get("n_word_errors"),
                            "hyps": f"hyps/{key}.jsonl"})
    wc = next((s["wer"] for s in systems if s["system"] == "C"), None)
    paired = paired_versus({t: {s["system"]: hyps_path(ctx.out, t, s["system"]) for s in systems}},
                           normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed, skip=_other_utterances(cfg))
    apart = _other_utterances(cfg)
    for s in systems:
        s["rel_vs_C"] = (s["wer"] - wc) / wc if wc and s["system"] not in apart else None
        s["paired"] = paired.get(s["system"], {})
    return {"target": t, "normalizer": ev.normalizer, "bootstrap": ev.bootstrap, "seed": ev.seed, "systems": systems}


def _other_utterances(cfg) -> tuple[str, ...]:
    """Systems scored on other utterances than the rest (the upper bound, on test only), left out of pairs."""
    return ("upper_bound",) if cfg.evaluate.all_target_utterances else ()


def collect_results(ctx, stage_seconds: dict | None = None) -> dict:
    """Gather the metrics, paired differences, λ choices and curves of a finished evaluate stage into one dict.

    ``ctx``: the run's ``RecipeContext``; ``stage_seconds``: wall time per finished stage, reported as is. The
    systems of each target are its ``eval/<target>/results.json``; ``pooled`` holds every system's paired
    difference versus C and base pooled over the targets (utterances resampled within each target).
    """
    cfg = ctx.cfg
    out = cfg.out_dir
    ev = cfg.evaluate
    res: dict = {
        "name": cfg.name,
        "config": cfg.source_path,
        "variant": cfg.variant,
        "base_model": cfg.base_model,
        "normalizer": ev.normalizer,
        "bootstrap": ev.bootstrap,
        "seed": ev.seed,
        "lambda_mode": cfg.lambda_.mode,
        "audio_context_s": cfg.finetune.audio_context_s,
        "condition": describe_condition(cfg.corpus.degrade),
        "scored": ("all target real utterances (train, dev, test; the upper bound on the "
                   f"{ev.test_split} split only)" if ev.all_target_utterances else f"target real {ev.test_split}"),
        "order": table_order(cfg),
        "targets": {},
    }
    hyps_files = {}
    for tp in ctx.plan().targets:
        t = tp.target
        sel = ctx.selection(t)
        systems = read_json(out / "eval" / t / "results.json")["systems"]
        hyps_files[t] = {s["system"]: hyps_path(out, t, s["system"]) for s in systems}
        entry = {"lambda": {"value": sel["value"], "value_ensemble": sel.get("value_ensemble"), "how": sel["how"],
                            "mode": sel["mode"]},
                 "systems": systems,
                 "sources": list(tp.main.sources),
                 "pseudo_targets": [p.target for p in tp.pseudo]}
        if "variants" in sel:
            entry["choices"] = {v: {o: {"scale": c["scale"], "pseudo_wer": c["pseudo_wer"]} for o, c in ch.items()}
                                for v, ch in sel["variants"].items()}
            entry["best"] = sel["best"]
        if "mean_curve" in sel:
            entry["selection_curve"] = sel["mean_curve"]
        if "oracle" in sel:
            entry["lambda"]["oracle"] = sel["oracle"]["value"]
            entry["oracle_curve"] = {"lambdas": sel["oracle"]["curve"]["lambdas"], "wer": sel["oracle"]["curve"]["wer"]}
        cpath = out / "eval" / t / "lambda_curve.json"
        if cpath.is_file():
            c = read_json(cpath)
            entry["test_curve"] = {"lambdas": c["lambdas"], "wer": c["wer"]}
        res["targets"][t] = entry
    for name in ("syn2real", "ensemble"):
        rel = [next(s["rel_vs_C"] for s in e["systems"] if s["system"] == name)
               for e in res["targets"].values() if any(s["system"] == name for s in e["systems"])]
        rel = [r for r in rel if r is not None]  # undefined where C makes no error
        if rel:
            res.setdefault("mean_relative_wer_change_vs_C", {})[name] = sum(rel) / len(rel)
            res.setdefault("mean_relative_over_targets", {})[name] = len(rel)
    res["pooled"] = paired_versus(hyps_files, normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed,
                                  skip=_other_utterances(cfg))
    res["stage_seconds"] = dict(stage_seconds or {})
    res["exported"] = sorted(str(p.parent.relative_to(out)) for p in (out / "final").glob("*/*/analogy.json"))
    return res


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _rank(order, name: str) -> int:
    order = list(order or _FALLBACK_ORDER)
    return order.index(name) if name in order else len(order)


def _rows(entry: dict, order=None) -> list[tuple[dict, str, str, str]]:
    """A target's systems in table order, each with its λ, 95 % interval and change versus C as text."""
    rows = []
    for s in sorted(entry["systems"], key=lambda s: _rank(order, s["system"])):
        ci = s.get("wer_ci95")
        ci_s = f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else "–"
        lam = describe_scale(s["lambda"]) if s.get("lambda") is not None else ""
        rel = f"{100 * s['rel_vs_C']:+.1f} %" if s.get("rel_vs_C") is not None and s["system"] != "C" else ""
        rows.append((s, lam, ci_s, rel))
    return rows


def delta_text(p: dict | None) -> str:
    """A paired difference as text: ``+1.23 [-0.50, +3.00]`` (percentage points, 95 % interval); "" without one."""
    if not p or p.get("diff_pp") is None:
        return ""
    ci = p.get("diff_ci_pp")
    return f"{p['diff_pp']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def significant(p: dict) -> bool:
    """Whether the interval of a paired difference excludes 0."""
    ci = p.get("diff_ci_pp")
    return bool(ci) and (ci[0] > 0 or ci[1] < 0)


def _num(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _ordered(names, order=None) -> list[str]:
    return sorted(names, key=lambda n: _rank(order, n))


def _pooled_markdown(results: dict) -> list[str]:
    """The table of every system's paired difference versus C and base pooled over the targets."""
    labels = {s["system"]: s["label"] for e in results["targets"].values() for s in e["systems"]}
    md = ["## Paired differences pooled over targets", "",
          "| system − reference | targets | WER reference % | WER system % | Δ pp | 95 % CI (pp) | relative % "
          "| 95 % CI (rel. %) | share Δ ≤ 0 | verdict |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in _ordered(results.get("pooled", {}), results.get("order")):
        for vs, p in results["pooled"][name].items():
            ci, rel_ci = p.get("diff_ci_pp"), p.get("rel_ci_pct")
            verdict = "significant" if significant(p) else "interval includes 0"
            md.append(f"| {labels.get(name, name)} − {labels.get(vs[3:], vs[3:])} | {', '.join(p['groups'])} | {_num(p['wer_a_pct'], '.2f')} "
                      f"| {_num(p['wer_b_pct'], '.2f')} | {_num(p['diff_pp'], '+.2f')} "
                      f"| {'–' if not ci else f'{ci[0]:+.2f} to {ci[1]:+.2f}'} | {_num(p['rel_change_pct'], '+.1f')} "
                      f"| {'–' if not rel_ci else f'{rel_ci[0]:+.1f} to {rel_ci[1]:+.1f}'} "
                      f"| {_num(p['share_diff_le_0'], '.3f')} | {verdict} |")
    return md + [""]


def own_c(name: str) -> str:
    """The C system a syn2real system adds its vector to: ``C_tts`` for ``C_tts_syn2real…``, else ``C``."""
    for c in ("C_tts", "C_paper", "C_multi"):
        if name.startswith(c + "_"):
            return c
    return "C"


def reference_of(name: str, entry: dict) -> str | None:
    """The system a row of the plain-text table is compared with: the base model for a C itself, the C it
    adds its vector to for a syn2real system (for ``best``, the C it picked), none for the base model and the
    references (upper bound, oracle)."""
    if name == "base" or name in REFERENCES:
        return None
    if name == "C" or (name.startswith("C_") and "syn2real" not in name):
        return "base"
    if name == "best" and entry.get("best"):
        picked = f"C_{entry['best']['variant']}"
        return picked if any(s["system"] == picked for s in entry["systems"]) else "C"
    return own_c(name)


def result_table(results: dict) -> str:
    """A plain-text table of every target and system (WER/CER in percent), each system's paired difference
    versus its reference (``reference_of``: a C versus the base model, a syn2real system versus the C it
    starts from), then the pooled paired differences of the syn2real systems versus every C."""
    lines = [f"{'target':<14} {'system':<48} {'λ':>9} {'WER %':>7} {'95 % CI':>11} {'CER %':>7} "
             f"{'Δ pp [95 % CI] vs reference':>36}"]
    for t, e in results["targets"].items():
        for s, lam, ci_s, rel in _rows(e, results.get("order")):
            ref = reference_of(s["system"], e)
            delta = delta_text(s.get("paired", {}).get(f"vs_{ref}")) if ref else ""
            delta = f"{delta} vs {ref}" if delta else ""
            lines.append(f"{t:<14} {s['label'][:48]:<48} {lam[:9]:>9} {_pct(s['wer']):>7} {ci_s:>11} "
                         f"{_pct(s['cer']):>7} {delta:>36}")
        lines.append(f"{'':<14} λ: {e['lambda']['how']}")
    labels = {s["system"]: s["label"] for e in results["targets"].values() for s in e["systems"]}
    for name in _ordered(results.get("pooled", {}), results.get("order")):
        if not adds_a_vector(name) and name != "best":
            continue
        for vs, p in results["pooled"][name].items():
            if vs == "vs_base":
                continue
            rel = p.get("rel_change_pct")
            lines.append(f"{labels.get(name, name)} − {labels.get(vs[3:], vs[3:])}, pooled over "
                         f"{len(p['groups'])} target(s): {delta_text(p)} points"
                         + (f" ({rel:+.1f} % relative)" if rel is not None else "")
                         + (" (significant)" if significant(p) else " (interval includes 0)"))
    lines.append(f"normalizer: {results['normalizer']} (references and hypotheses)")
    return "\n".join(lines)


def _markdown(results: dict, plots: dict) -> str:
    md = [f"# Results: {results['name']}", ""]
    md.append(f"Base model `{results['base_model']}`; WER and CER in percent on the audio of "
              f"{results.get('scored', 'each target real test')}, "
              f"text normalized with `{results['normalizer']}` on both references and hypotheses; 95 % interval "
              f"of the WER from {results['bootstrap']} bootstrap resamples of utterances. “vs C” is the relative "
              f"WER change (WER − WER_C) / WER_C (negative is better). “Δ vs C” and “Δ vs base” are the system's WER "
              f"minus that of C or of the base model on the same utterances, in percentage points, with the 95 % "
              f"interval of a paired bootstrap over utterances ({results['bootstrap']} resamples, seed "
              f"{results.get('seed', 0)}); pooled over targets, utterances are resampled within each target, and a "
              f"difference is called significant only where its pooled interval excludes 0. "
              f"λ selection mode: `{results['lambda_mode']}`."
              + (f" Audio context {results['audio_context_s']} s." if results.get("audio_context_s") else ""))
    if results.get("condition"):
        md += ["", f"Acoustic condition: {results['condition']}."]
    md.append("")
    for t, e in results["targets"].items():
        md.append(f"## Target `{t}`")
        md.append("")
        md.append(f"Sources: {', '.join(e['sources'])}"
                  + (f"; pseudo-target(s) for λ: {', '.join(e['pseudo_targets'])}" if e["pseudo_targets"] else "")
                  + ".")
        md.append("")
        md.append("| system | λ | WER % | 95 % CI | CER % | vs C | Δ vs C, pp [95 % CI] | Δ vs base, pp [95 % CI] "
                  "| utterances | words |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s, lam, ci_s, rel in _rows(e, results.get("order")):
            paired = s.get("paired", {})
            md.append(f"| {s['label']} | {lam} | {_pct(s['wer'])} | {ci_s} | {_pct(s['cer'])} | {rel} "
                      f"| {delta_text(paired.get('vs_C'))} | {delta_text(paired.get('vs_base'))} "
                      f"| {s.get('n_utterances') or ''} | {s.get('n_words') or ''} |")
        md.append("")
        md.append(f"λ = {e['lambda']['value']:g} — {e['lambda']['how']}."
                  + (f" Ensemble λ = {e['lambda']['value_ensemble']:g}."
                     if any(s["system"] == "ensemble" for s in e["systems"]) else "")
                  + (f" The oracle λ (target real dev, for reference only) would be {e['lambda']['oracle']:g}."
                     if e["lambda"].get("oracle") is not None else ""))
        md.append("")
        if e.get("best"):
            b = e["best"]
            md.append(f"Pseudo-target pick over every C and option: C_{b['variant']} + syn2real"
                      + (f" ({b['option']})" if b.get("option") else "")
                      + f", λ {describe_scale(b['scale'])} (pseudo-target WER {100 * b['pseudo_wer']:.2f} %).")
            md.append("")
        if t in plots:
            md.append(f"![WER versus λ, {t}]({plots[t]})")
            md.append("")
    if results.get("pooled"):
        md += _pooled_markdown(results)
    mean = results.get("mean_relative_wer_change_vs_C", {})
    if mean:
        md.append("## Summary")
        md.append("")
        for k, v in mean.items():
            n = results.get("mean_relative_over_targets", {}).get(k, len(results["targets"]))
            md.append(f"- mean relative WER change of **{k}** versus C over {n} target(s) (those where C makes "
                      f"errors): **{100 * v:+.1f} %**")
        md.append("")
    if "systems" in plots:
        md.append(f"![WER of every system]({plots['systems']})")
        md.append("")
    if results.get("exported"):
        md.append("Adapted models (plain transformers directories): "
                  + ", ".join(f"`{p}`" for p in results["exported"]) + ".")
        md.append("")
    if results.get("stage_seconds"):
        md.append("Stage wall times (s): " + ", ".join(f"{k} {v:g}" for k, v in results["stage_seconds"].items() if v is not None))
        md.append("")
    return "\n".join(md)


def _figure(figsize: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=110)


def _save_png(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path


def plot_lambda_curve(entry: dict, target: str, path: Path) -> Path:
    """WER versus λ for one target: test curve (reference), selection curve, oracle curve; chosen λ marked."""
    fig, ax = _figure((6, 4))
    if "test_curve" in entry:
        c = entry["test_curve"]
        ax.plot(c["lambdas"], [100 * w for w in c["wer"]], "o-", label=f"{target} real test (reference only)")
    if "selection_curve" in entry:
        c = entry["selection_curve"]
        ax.plot(c["lambdas"], [100 * w for w in c["wer"]], "s--",
                label=f"pseudo-target real audio ({', '.join(entry['pseudo_targets'])}) — selects λ")
    if "oracle_curve" in entry:
        c = entry["oracle_curve"]
        ax.plot(c["lambdas"], [100 * w for w in c["wer"]], "^:", label=f"ORACLE: {target} real dev")
    lam = entry["lambda"]["value"]
    ax.axvline(lam, color="k", lw=1, ls="-.", label=f"chosen λ = {lam:g}")
    for s in entry["systems"]:
        if s["system"] in ("base", "upper_bound"):
            ax.axhline(100 * s["wer"], lw=0.8, ls=":", color="grey" if s["system"] == "base" else "green",
                       label=f"{s['label']}: {100 * s['wer']:.1f} %")
    ax.set_xlabel("λ  (θ_D = θ_C + λ·(θ_B − θ_A))")
    ax.set_ylabel("WER %")
    ax.set_title(f"Synthetic2Real vector, target {target}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def plot_systems(results: dict, path: Path) -> Path:
    """Grouped bars: WER of every system per target, with the 95 % bootstrap interval."""
    targets = list(results["targets"])
    names = [n for n in (results.get("order") or _FALLBACK_ORDER) if any(s["system"] == n for e in results["targets"].values() for s in e["systems"])]
    width = 0.8 / max(1, len(names))
    fig, ax = _figure((max(5, 1.8 * len(targets) + 2), 4))
    for i, n in enumerate(names):
        xs, ys, lo, hi, label = [], [], [], [], n
        for j, t in enumerate(targets):
            s = next((s for s in results["targets"][t]["systems"] if s["system"] == n), None)
            if s is None:
                continue
            label = s["label"]
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            ys.append(100 * s["wer"])
            ci = s.get("wer_ci95") or (s["wer"], s["wer"])
            lo.append(100 * (s["wer"] - ci[0]))
            hi.append(100 * (ci[1] - s["wer"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label)
    ax.set_xticks(range(len(targets)))
    ax.set_xticklabels(targets)
    ax.set_ylabel("WER % (real test)")
    ax.set_title("Systems per target domain (95 % bootstrap interval)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save_png(fig, path)


def write_report(results: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``results.json``, ``plots/*.png`` and ``RESULTS.md`` into ``out_dir``; returns RESULTS.md's path."""
    out_dir = Path(out_dir)
    plots = {}
    for t, e in results["targets"].items():
        plot_lambda_curve(e, t, out_dir / "plots" / f"wer_vs_lambda_{t}.png")
        plots[t] = f"plots/wer_vs_lambda_{t}.png"
    plot_systems(results, out_dir / "plots" / "systems.png")
    plots["systems"] = "plots/systems.png"
    with atomic_file(out_dir / "results.json") as fh:
        json.dump(results, fh, indent=1, sort_keys=True)
        fh.write("\n")
    path = out_dir / "RESULTS.md"
    with atomic_file(path) as fh:
        fh.write(_markdown(results, plots))
    return path
