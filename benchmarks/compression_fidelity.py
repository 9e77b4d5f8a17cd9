"""Compact task vectors on real vectors: size as a share of float32 against the WER change of a model built with
the compressed vector instead of the full one, on the IVR real test audio (clips <= 8 s).

    python benchmarks/compression_fidelity.py [--work exp/diagnostics_study] [--exp exp/ivr_syn2real]
                                              [--domains voicemail,general] [--methods "int8;topk:0.1,int8;..."]
    python benchmarks/compression_fidelity.py --music-seed exp/ivr_syn2real_music_evidence/seed0

Vectors (read only; the compressed copies go to WORK/compressed/):

* syn2real: the pair vector tau = theta_B - theta_A of the recipe's clean run (EXP; target voicemail), applied as
  theta_C + lambda * tau with C the voicemail C model and lambda the selected value (EXP/lambda/voicemail.json),
  scored on voicemail's test clips (the recipe's own ``syn2real`` system); and the same at lambda = 1 (a harder
  test: the vector's full length), there with int8 and the settings of at most 10 % of float32 only (``SMALL``).
* per-domain: tau_d of ``diagnostics_study.py`` (run its finetune and vectors stages first), applied as
  base8 + tau_d, scored on voicemail's and on d's test clips, with the ``SMALL`` settings.

Per vector and method: ``share`` (compressed tensor bytes / float32 bytes), the relative L2 error
||tau' - tau|| / ||tau||, and per test set the WER (percent) with tau' minus the WER with tau (points) and the
number of clips whose transcript changed. Prints the table and writes WORK/compression.json (after every row).
Resumable: compressed vectors and hypotheses already written are reused; each model is written, transcribed and
deleted.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import diagnostics_study as study

METHODS = ("int8", "int4", "topk:0.1", "topk:0.05,int8", "topk:0.1,int8", "lowrank:16,int8", "lowrank:32,int8")
SMALL = ("int8", "topk:0.05,int8", "lowrank:16,int8", "lowrank:32,int8")  # int8 and the settings <= 10 % of float32
TARGET = "voicemail"


def syn2real_setup(exp: Path) -> dict:
    """The recipe's voicemail system theta_C + lambda * tau: vector, C model directory and lambda."""
    sel = json.loads((exp / "lambda" / f"{TARGET}.json").read_text())
    spec = json.loads((exp / "eval" / TARGET / "lambda_curve.json").read_text())["spec"]
    (c_dir,) = [p for p in (exp / "models").glob("C-*") if json.loads((p / "job.json").read_text())["fingerprint"]
                == spec["C"]]
    return {"vector": exp / "vectors" / f"{spec['v']}.safetensors", "base": c_dir / "model", "scale": sel["value"]}


def relative_error(full: Path, approx: Path) -> float:
    """||approx - full|| / ||full|| over every tensor, in float64."""
    from asr_analogy.merge.compressed import open_reader

    num = den = 0.0
    with open_reader(full) as a, open_reader(approx) as b:
        for name in a.names():
            x, y = a.get(name).double(), b.get(name).double()
            num += float(((y - x) ** 2).sum())
            den += float((x**2).sum())
            a.release(name), b.release(name)
    return math.sqrt(num / den) if den else 0.0


def changed_clips(a: Path, b: Path) -> int:
    """Clips whose transcripts differ between two hypothesis files (same clips, same order)."""
    ha = [json.loads(line)["hypothesis"] for line in open(a)]
    hb = [json.loads(line)["hypothesis"] for line in open(b)]
    return sum(x != y for x, y in zip(ha, hb, strict=True))


def score(work: Path, system: str, base: Path, vector: Path, scale: float, domain: str) -> Path:
    """Hypotheses of base + scale * vector on the domain's test clips (model written only when needed)."""
    from asr_analogy.merge import apply_vector

    out = work / "merged" / system

    def make() -> Path:
        apply_vector(base, vector, out, scale=scale, force=True, allow_other_base=True, progress=False)
        return out

    hyps = study.transcribe_once(work, system, make, domain)
    shutil.rmtree(out, ignore_errors=True)
    return hyps


def fidelity(work: Path, exp: Path, domains: list[str], methods: list[str]) -> list[dict]:
    from asr_analogy.io.atomic import atomic_file
    from asr_analogy.merge.compressed import compress

    s2r = syn2real_setup(exp)
    small = [m for m in methods if m in SMALL]
    base8 = work / "base8"
    cases = [("syn2real", s2r["vector"], s2r["base"], s2r["scale"], [TARGET], methods)]
    cases += [(f"domain-{d}", work / "vectors" / f"{d}.safetensors", base8, 1.0, list(dict.fromkeys([TARGET, d])), small)
              for d in domains]
    cases += [("syn2real@1", s2r["vector"], s2r["base"], 1.0, [TARGET], small)]
    rows = []
    for label, vec, base, scale, tests, case_methods in cases:
        full = {t: score(work, f"{label}-full", base, vec, scale, t) for t in tests}
        for method in case_methods:
            out = work / "compressed" / label.split("@")[0] / f"{method.replace(':', '_').replace(',', '+')}.safetensors"
            info = work / "compressed" / label.split("@")[0] / f"{out.stem}.json"
            if not info.exists():
                start = time.perf_counter()
                res = compress(vec, out, method, force=True, progress=False)
                info.write_text(json.dumps({"share": res.share, "nbytes": res.nbytes, "float32_nbytes": res.float32_nbytes,
                                            "rel_l2": relative_error(vec, out)}))
                study.say(f"compress {label} {method}: {time.perf_counter() - start:.0f} s")
            meta = json.loads(info.read_text())
            row = {"vector": label, "scale": scale, "method": method, **meta, "tests": {}}
            for t in tests:
                hyps = score(work, f"{label}-{out.stem}", base, out, scale, t)
                row["tests"][t] = {"wer_full": study.wer_pct(full[t]), "wer": study.wer_pct(hyps),
                                   "delta": study.wer_pct(hyps) - study.wer_pct(full[t]),
                                   "changed": changed_clips(full[t], hyps),
                                   "n": sum(1 for _ in open(hyps))}
            rows.append(row)
            print_row(row)
            with atomic_file(work / "compression.json") as fh:  # after every row: a stopped run keeps its table
                json.dump(rows, fh, indent=1)
    return rows


def music_fidelity(work: Path, seed_dir: Path, methods: list[str]) -> list[dict]:
    """The syn2real vector of a music-condition run where it matters: theta_C_tts + lambda * tau with the lambda
    the pseudo-target chose for C_tts (SEED_DIR/lambda/voicemail.json), on every real voicemail utterance of that
    run (real speech under real hold music), full vector against each compressed one."""
    from asr_analogy.io.atomic import atomic_file
    from asr_analogy.io.manifest import read_manifest
    from asr_analogy.merge import apply_vector
    from asr_analogy.merge.compressed import compress
    from asr_analogy.speech.transcribe import transcribe

    sel = json.loads((seed_dir / "lambda" / f"{TARGET}.json").read_text())
    scale = sel["variants"]["tts"]["single"]["scale"]
    results = json.loads((seed_dir / "eval" / TARGET / "results.json").read_text())
    c_tts = next(s for s in results["systems"] if s["system"] == "C_tts_syn2real")
    jobs = [json.loads(p.read_text()) for p in (seed_dir / "models").glob("C_tts-*/job.json")]
    (c_dir,) = [j["model_dir"] for j in jobs if any(TARGET in d for d in j["data"])]
    index = json.loads((seed_dir / "vectors" / "index.json").read_text())
    (vec_id,) = [k for k, e in index.items() if e["kind"] == "syn2real"]
    vec = seed_dir / "vectors" / f"{vec_id}.safetensors"
    recs = [r for r in read_manifest(seed_dir.parent / "data" / "real.jsonl") if r["domain"] == TARGET]
    label = f"music-{seed_dir.name}"

    def hyps(system: str, vector: Path) -> Path:
        out = work / "hyps" / label / f"{system}.jsonl"
        if not out.exists():
            model = work / "merged" / label
            apply_vector(c_dir, vector, model, scale=scale, force=True, allow_other_base=True, progress=False)
            out.parent.mkdir(parents=True, exist_ok=True)
            transcribe(str(model), recs, out, batch_size=16, device="cpu", progress=False)
            shutil.rmtree(model, ignore_errors=True)
        return out

    full = hyps("full", vec)
    study.say(f"{label}: C_tts + {scale:g} tau on {len(recs)} voicemail utterances: WER {study.wer_pct(full):.2f} % "
              f"(the recipe's C_tts_syn2real: {100 * c_tts['wer']:.2f} %)")
    rows = []
    for method in methods:
        out = work / "compressed" / label / f"{method.replace(':', '_').replace(',', '+')}.safetensors"
        res = compress(vec, out, method, force=True, progress=False)
        h = hyps(out.stem, out)
        row = {"vector": label, "scale": scale, "method": method, "share": res.share, "nbytes": res.nbytes,
               "float32_nbytes": res.float32_nbytes, "rel_l2": relative_error(vec, out),
               "tests": {TARGET: {"wer_full": study.wer_pct(full), "wer": study.wer_pct(h),
                                  "delta": study.wer_pct(h) - study.wer_pct(full), "changed": changed_clips(full, h),
                                  "n": len(recs)}}}
        rows.append(row)
        print_row(row)
        with atomic_file(work / f"compression_{label}.json") as fh:
            json.dump(rows, fh, indent=1)
    return rows


def print_row(row: dict) -> None:
    tests = "  ".join(f"{t}: {r['wer_full']:.1f} -> {r['wer']:.1f} ({r['delta']:+.1f}, {r['changed']}/{r['n']} changed)"
                      for t, r in row["tests"].items())
    print(f"{row['vector']:18s} {row['method']:16s} share {100 * row['share']:5.2f} %  rel L2 {row['rel_l2']:.3f}  {tests}",
          flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=study.ROOT / "exp" / "diagnostics_study")
    ap.add_argument("--exp", type=Path, default=study.ROOT / "exp" / "ivr_syn2real", help="the recipe's clean run")
    ap.add_argument("--domains", default="voicemail,general")
    ap.add_argument("--methods", default=";".join(METHODS), help="compression methods separated by ';'")
    ap.add_argument("--music-seed", type=Path, default=None,
                    help="a seed directory of the music_evidence run: only its syn2real vector on C_tts is tested")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    methods = [m for m in args.methods.split(";") if m]
    if args.music_seed is not None:
        music_fidelity(args.work, args.music_seed, methods)
        return
    fidelity(args.work, args.exp, [d for d in args.domains.split(",") if d], methods)


if __name__ == "__main__":
    main()
