"""``transcribe`` with the transformers engine side by side with the CTranslate2 engine, float32 and int8.

The deployed form of a Whisper is usually CTranslate2 (faster-whisper, WhisperX), often int8: this measures
how far its transcripts, WER and time are from the transformers engine the toolkit scores with. Per model
(the bundled Whisper tiny.en and Whisper base, imported from their CTranslate2 files into transformers): the
transformers directory, and its ``export-ct2`` exports at float32 and int8 (exports and loading outside the
timed region). The three sides run ``transcribe`` on the same clips, the same batches (sorted by length), the
same 30-s window and greedy decoding; after one untimed warm-up each, they run ``--rounds`` times, the order
reversed every other round, so all see the same machine load. CTranslate2 gets as many CPU threads as torch.

Prints each timed run with the load average, the median time per side and the ratios to transformers
(targets: float32 <= 1.0x, int8 <= 0.85x), the share of identical transcripts (target: float32 = transformers
on >= 98 % of clips), and the WER (percent, Whisper English normalizer) of each side (target: int8 within 0.5
points of float32).

Clips: the test split of the IVR prompt corpus (``data/ivr/manifests/*.test.jsonl``), as in
``transcribe_vs_pipeline.py``.

    .venv/bin/python benchmarks/transcribe_engines.py                       # 32 clips, batch 8, 3 rounds
    .venv/bin/python benchmarks/transcribe_engines.py --models tiny.en --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_vs_pipeline import ROOT, ivr_clips  # noqa: E402  (the same clip selection)

TARGETS = {"float32": 1.0, "int8": 0.85}
"""Wall-time ratio CTranslate2 / transformers asked for, per weight type."""


def timed(run, recs) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    out = run(recs)
    return time.perf_counter() - t0, [r["hypothesis"] for r in out]


def sides_for(name: str, batch_size: int, work: Path, warm_up: list[dict]) -> dict:
    """``{side: recs -> records}`` for one bundled model: transformers, ct2 float32, ct2 int8; each has run once,
    untimed, on the ``warm_up`` clips."""
    import torch

    from asr_analogy.speech.ct2_engine import Ct2Whisper
    from asr_analogy.speech.models.ct2_export import export_ct2
    from asr_analogy.speech.models.ct2_import import bundled_model_dir
    from asr_analogy.speech.transcribe import load_asr_model, transcribe

    model_dir = bundled_model_dir(name)
    model, processor = load_asr_model(model_dir, "cpu")
    sides = {"transformers": lambda recs: transcribe(model, recs, processor=processor, batch_size=batch_size,
                                                     progress=False)}
    for quantization in ("float32", "int8"):
        out = export_ct2(model_dir, work / f"{name}-{quantization}", quantization)
        runtime = Ct2Whisper(out, "cpu", cpu_threads=torch.get_num_threads())
        sides[f"ct2 {quantization}"] = (lambda rt: lambda recs: transcribe(rt, recs, batch_size=batch_size,
                                                                           progress=False))(runtime)
    for run in sides.values():
        run(warm_up)
    return sides


def wer_percent(recs: list[dict], hyps: list[str]) -> float:
    from asr_analogy.speech.metrics import evaluate

    scored = [{**r, "hypothesis": h} for r, h in zip(recs, hyps)]
    return 100 * evaluate(scored, normalizer="whisper_english", by=None, bootstrap=0)["wer"]


def bench_model(name: str, recs: list[dict], args, work: Path) -> None:
    sides = sides_for(name, args.batch_size, work, recs[:2])
    times = {side: [] for side in sides}
    hyps = {}
    for k in range(args.rounds):
        order = list(sides) if k % 2 == 0 else list(sides)[::-1]
        for side in order:
            load = os.getloadavg()[0]
            t, hyps[side] = timed(sides[side], recs)
            times[side].append(t)
            print(f"{name} round {k + 1} {side:>12}: {t:7.2f} s ({t / len(recs) * 1000:5.0f} ms/clip)  load {load:.2f}")
    base = statistics.median(times["transformers"])
    print(f"{name}: median transformers {base:.2f} s")
    for quantization, target in TARGETS.items():
        side = f"ct2 {quantization}"
        med = statistics.median(times[side])
        per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(times[side], times["transformers"]))
        print(f"{name}: median {side} {med:.2f} s, ratio {side}/transformers = {med / base:.2f} "
              f"(target <= {target:.2f}); per round {per_round}")
    n = len(recs)
    for a, b in (("transformers", "ct2 float32"), ("transformers", "ct2 int8"), ("ct2 float32", "ct2 int8")):
        same = sum(x == y for x, y in zip(hyps[a], hyps[b]))
        print(f"{name}: identical transcripts {a} vs {b}: {same}/{n} ({100 * same / n:.1f} %)")
        for r, x, y in zip(recs, hyps[a], hyps[b]):
            if x != y:
                print(f"    {Path(r['audio_filepath']).name}: {a} {x!r} | {b} {y!r}")
    wers = {side: wer_percent(recs, h) for side, h in hyps.items()}
    print(f"{name}: WER % " + ", ".join(f"{side} {w:.2f}" for side, w in wers.items())
          + f"; int8 - float32 = {wers['ct2 int8'] - wers['ct2 float32']:+.2f} points (target within 0.5)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=32, help="number of clips")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per side, alternating the order")
    ap.add_argument("--models", nargs="+", default=["tiny.en", "base"], choices=["tiny.en", "base"])
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "ivr")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ctranslate2
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    ctranslate2.set_log_level(40)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recs = ivr_clips(args.corpus, args.clips, work)
        if recs is None:
            print(f"no IVR test clips under {args.corpus} (prepare the corpus first)")
            return 1
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"transformers {transformers.__version__}, ctranslate2 {ctranslate2.__version__}")
        print(f"clips: {len(recs)} IVR test clips, {sum(float(r['duration']) for r in recs):.1f} s of audio; "
              f"batch size {args.batch_size}, greedy, 30-s window; load average {os.getloadavg()[0]:.2f} "
              "(the machine may be shared)")
        for name in args.models:
            bench_model(name, recs, args, work)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
