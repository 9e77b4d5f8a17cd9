"""Do the interference diagnostics predict how much a merge loses? Per-domain task vectors of the IVR corpus,
merged in pairs and triples with task arithmetic and TIES, scored on each domain's real test audio.

    python benchmarks/diagnostics_study.py [--work exp/diagnostics_study] [--domains general,voicemail,...]
                                           [--stage finetune|vectors|merges|report]

Stages (each resumable: a finished fine-tune, vector, hypothesis file or diagnostics file is skipped):

1. finetune: bundled:tiny.en fine-tuned on each domain's real train audio (clips <= 8 s) with the recipe's
   settings (recipes/ivr_syn2real/config.yaml: lr 3e-5, batch 8, 2 warm-up steps, 20 steps, 8 s audio context,
   seed 0), into WORK/models/<domain>.
2. vectors: the base with its window cut to 8 s (WORK/base8), tau_d = theta_d - base8 (WORK/vectors/<d>.safetensors).
3. merges: every pair and triple of domains, merged by task arithmetic (base8 + sum tau, weight 1 each) and by
   TIES (density 0.2, weight 1 each, lambda 1), each written by the merge engine, transcribed on the real test
   audio (clips <= 8 s) of each of its domains, then deleted (hypotheses kept in WORK/hyps/); each single-domain
   model is transcribed on its own domain. Pairs are done first (both methods), then triples. Diagnostics
   (``store.diagnose``, top-k 0.1) of every pair of vectors in WORK/diagnostics/.
4. report: WER loss of a merge = mean over its domains d of WER(merge, d) - WER(theta_d, d) (WER in percent
   points, corpus-level over d's test clips); per merge the mean over its pairs of cosine, sign conflict and
   top-k overlap; Spearman rank correlation of each diagnostic with the loss (per method and pooled); the table
   in WORK/study.json and the scatter plot in benchmarks/results/diagnostics_vs_merge_loss.png.

Deterministic: greedy decoding, fixed seeds, fixed order. Runs on CPU (2 threads): a fine-tune step took 7 to 40 s
on a shared 2-core machine, depending on its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "data" / "ivr" / "manifest.jsonl"
DOMAINS = ("general", "voicemail", "conference", "digits")
MAX_DURATION_S = 8.0  # the recipe's corpus.max_duration_s: the fine-tunes use an 8 s encoder window
FINETUNE = {  # recipes/ivr_syn2real/config.yaml, finetune
    "learning_rate": 3.0e-5, "max_steps": 20, "batch_size": 8, "warmup_steps": 2, "audio_context_s": 8, "seed": 0,
}
TIES_DENSITY = 0.2
TOP_K = 0.1
MEASURES = ("cosine", "sign_conflict", "jaccard")  # whole-vector diagnostics of store.diagnose
METHODS = ("task_arithmetic", "ties")
PLOT = ROOT / "benchmarks" / "results" / "diagnostics_vs_merge_loss.png"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def records(domain: str, split: str) -> list[dict]:
    """Real clips of ``domain`` / ``split`` no longer than 8 s, audio paths absolute, manifest order."""
    out = []
    with open(MANIFEST) as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["domain"] == domain and rec["split"] == split and rec["duration"] <= MAX_DURATION_S:
                rec["audio_filepath"] = str((MANIFEST.parent / rec["audio_filepath"]).resolve())
                out.append(rec)
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    from asr_analogy.io.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        for rec in recs:
            fh.write(json.dumps(rec) + "\n")
    return path


def base_model() -> str:
    from asr_analogy.speech.finetune_config import resolve_model

    return resolve_model("bundled:tiny.en")


def model_dir(work: Path, domain: str) -> Path:
    """The fine-tune of ``domain`` (a save_pretrained directory)."""
    return work / "models" / domain


def stage_finetune(work: Path, domains) -> None:
    from asr_analogy.speech.train import finetune

    for d in domains:
        out = model_dir(work, d)
        train = write_jsonl(work / "data" / f"{d}.train.jsonl", records(d, "train"))
        start = time.perf_counter()
        say(f"finetune {d}: {sum(1 for _ in open(train))} clips")
        finetune({"model": base_model(), "train_manifest": str(train), "output_dir": str(out), "resume": True,
                  **FINETUNE}, echo=say)
        say(f"finetune {d}: done in {time.perf_counter() - start:.0f} s")


def stage_vectors(work: Path, domains) -> Path:
    from asr_analogy.merge import vector
    from asr_analogy.speech.models.whisper import shorten_audio_context

    base8 = work / "base8"
    if not base8.exists():
        shorten_audio_context(base_model(), base8, FINETUNE["audio_context_s"])
    for d in domains:
        out = work / "vectors" / f"{d}.safetensors"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            vector(model_dir(work, d), base8, out, progress=False)
            say(f"vector {d}: {out}")
    return base8


def merge_sets(domains) -> list[tuple[str, ...]]:
    """Every pair, then every triple, of ``domains`` (in the given order)."""
    return [c for n in (2, 3) for c in combinations(domains, n)]


def merge_config(method: str, base8: Path, vectors: list[Path]) -> dict:
    """task_arithmetic: base8 + sum_i tau_i; ties: base8 + disjoint mean of the top-20 % entries of each tau_i
    that agree with the elected sign (the merge engine's defaults otherwise)."""
    cfg = {"merge_method": method, "base_model": str(base8),
           "models": [{"vector": str(v), "parameters": {"weight": 1.0}} for v in vectors], "dtype": "float32"}
    if method == "ties":
        cfg["parameters"] = {"density": TIES_DENSITY}
    return cfg


def transcribe_once(work: Path, system: str, model_dir, domain: str) -> Path:
    """WORK/hyps/<system>/<domain>.jsonl: ``model_dir``'s transcripts of the domain's real test clips (skipped
    when the file exists). ``model_dir`` may be a callable returning the directory (made only when needed)."""
    from asr_analogy.speech.transcribe import transcribe

    out = work / "hyps" / system / f"{domain}.jsonl"
    if not out.exists():
        start = time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        transcribe(str(model_dir() if callable(model_dir) else model_dir), records(domain, "test"), out,
                   batch_size=16, device="cpu", progress=False)
        say(f"transcribe {system} on {domain}: {time.perf_counter() - start:.0f} s")
    return out


def stage_merges(work: Path, domains) -> None:
    from asr_analogy.merge import merge
    from asr_analogy.store.diagnose import diagnose

    base8 = work / "base8"
    diag = work / "diagnostics" / "diagnostics.json"
    done = json.loads(diag.read_text()) if diag.exists() else {"vectors": []}
    if sorted(v["label"] for v in done["vectors"]) != sorted(domains):  # none yet, or of another set of domains
        diagnose([work / "vectors" / f"{d}.safetensors" for d in domains], diag.parent, top_k=TOP_K, progress=False)
        say(f"diagnostics: {diag}")
    for d in domains:
        transcribe_once(work, f"single-{d}", model_dir(work, d), d)
    for combo in merge_sets(domains):  # pairs first (both methods), then triples
        for method in METHODS:
            system = f"{method}-{'+'.join(combo)}"
            if all((work / "hyps" / system / f"{d}.jsonl").exists() for d in combo):
                continue
            out = work / "merged" / system

            def make(out=out, combo=combo, method=method):
                if not (out / "config.json").exists():
                    vectors = [work / "vectors" / f"{d}.safetensors" for d in combo]
                    merge(merge_config(method, base8, vectors), out, force=True, progress=False)
                return out

            for d in combo:
                transcribe_once(work, system, make, d)
            shutil.rmtree(out, ignore_errors=True)


def wer_pct(path: Path) -> float:
    """Corpus WER of a hypotheses file, percent (whisper_english normalizer)."""
    from asr_analogy.speech.metrics import evaluate

    return 100.0 * evaluate(path, by=None, bootstrap=0)["wer"]


def pair_diagnostics(work: Path) -> dict[frozenset, dict]:
    """{frozenset({d1, d2}): whole-vector cosine, sign_conflict, jaccard} from WORK/diagnostics."""
    report = json.loads((work / "diagnostics" / "diagnostics.json").read_text())
    return {frozenset((p["a"], p["b"])): {m: p["all"][m] for m in MEASURES} for p in report["pairs"]}



def study_table(work: Path, domains) -> dict:
    """Per merge: WER of the merge and of each single-domain model on each of its domains, the loss (mean over
    its domains of the difference, percent points) and the diagnostics averaged over its pairs of vectors."""
    pairs = pair_diagnostics(work)
    single = {d: wer_pct(work / "hyps" / f"single-{d}" / f"{d}.jsonl") for d in domains}
    rows = []
    for method in METHODS:
        for combo in merge_sets(domains):
            system = f"{method}-{'+'.join(combo)}"
            if not all((work / "hyps" / system / f"{d}.jsonl").exists() for d in combo):
                continue  # not decoded yet: the report covers the merges done so far
            merged = {d: wer_pct(work / "hyps" / system / f"{d}.jsonl") for d in combo}
            diag = [pairs[frozenset(p)] for p in combinations(combo, 2)]
            rows.append({"method": method, "domains": list(combo), "wer": merged,
                         "loss": sum(merged[d] - single[d] for d in combo) / len(combo),
                         **{m: sum(x[m] for x in diag) / len(diag) for m in MEASURES}})
    return {"domains": list(domains), "single_wer": single, "top_k": TOP_K,
            "ties_density": TIES_DENSITY, "merges": rows}


def correlations(rows: list[dict]) -> dict:
    """Spearman rho (and its two-sided p) of each diagnostic against the loss: per method and pooled (None for
    fewer than 3 merges)."""
    from scipy.stats import spearmanr

    out = {}
    for label in (*METHODS, "pooled"):
        sel = [r for r in rows if label == "pooled" or r["method"] == label]
        loss = [r["loss"] for r in sel]
        out[label] = {"n": len(sel)}
        for m in MEASURES:
            rho, p = spearmanr([r[m] for r in sel], loss) if len(sel) >= 3 else (None, None)
            out[label][m] = {"rho": None if rho is None else float(rho), "p": None if p is None else float(p)}
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or x != x else format(x, spec)


def plot(table: dict, path: Path) -> None:
    """Three panels (cosine, sign conflict, top-k overlap) against the loss; one marker per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4))
    FigureCanvasAgg(fig)
    titles = {"cosine": "cosine similarity", "sign_conflict": f"sign conflict (top-{TOP_K:g})",
              "jaccard": f"top-{TOP_K:g} overlap (Jaccard)"}
    for k, m in enumerate(MEASURES):
        ax = fig.add_subplot(1, 3, k + 1)
        for method, marker in (("task_arithmetic", "o"), ("ties", "^")):
            for size, fill in ((2, True), (3, False)):
                sel = [r for r in table["merges"] if r["method"] == method and len(r["domains"]) == size]
                ax.scatter([r[m] for r in sel], [r["loss"] for r in sel], marker=marker,
                           facecolors=("C0" if method == "ties" else "C1") if fill else "none",
                           edgecolors="C0" if method == "ties" else "C1",
                           label=f"{'TIES' if method == 'ties' else 'task arithmetic'}, {'pairs' if size == 2 else 'triples'}")
        rho = table["spearman"]["pooled"][m]["rho"]
        ax.set_title(f"{titles[m]}\npooled Spearman rho = {_fmt(rho, '+.2f')} (n = {table['spearman']['pooled']['n']})",
                     fontsize=9)
        ax.set_xlabel(titles[m], fontsize=8)
        if k == 0:
            ax.set_ylabel("WER loss vs single-domain models (points)", fontsize=8)
            ax.legend(fontsize=6)
        ax.axhline(0, color="grey", lw=0.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=80)


def stage_report(work: Path, domains) -> None:
    table = study_table(work, domains)
    table["spearman"] = correlations(table["merges"])
    from asr_analogy.io.atomic import atomic_file

    with atomic_file(work / "study.json") as fh:
        json.dump(table, fh, indent=1)
    plot(table, PLOT)
    print("single-domain model WER (%): " + ", ".join(f"{d} {table['single_wer'][d]:.1f}" for d in domains))
    print(f"\n{'method':16s} {'domains':34s} {'loss':>6s} {'cosine':>7s} {'sign':>6s} {'jacc':>6s}")
    for r in table["merges"]:
        print(f"{r['method']:16s} {'+'.join(r['domains']):34s} {r['loss']:6.2f} {r['cosine']:7.3f} "
              f"{r['sign_conflict']:6.3f} {r['jaccard']:6.3f}")
    print("\nSpearman rho (p) of each diagnostic against the loss:")
    for label, c in table["spearman"].items():
        print(f"{label:16s} n={c['n']:2d} " + "  ".join(f"{m} {_fmt(c[m]['rho'], '+.2f')} ({_fmt(c[m]['p'], '.2f')})"
                                                       for m in MEASURES))


STAGES = {"finetune": stage_finetune, "vectors": stage_vectors, "merges": stage_merges, "report": stage_report}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "exp" / "diagnostics_study")
    ap.add_argument("--domains", default=",".join(DOMAINS))
    ap.add_argument("--stage", choices=list(STAGES), action="append")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    domains = args.domains.split(",")
    for name in args.stage or list(STAGES):
        STAGES[name](args.work, domains)


if __name__ == "__main__":
    main()
