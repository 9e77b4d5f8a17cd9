"""Fine-tuning memory and start-up time against corpus size: does `finetune` stay flat from 1 h to 20 h?

Manifests of ``--hours`` (default 1, 5, 20) hours are built from the IVR prompt corpus (``data/ivr``: real
telephone speech) by repeating its clips under new ids (``<id>#<k>``), clips longer than ``--context`` seconds
left out. Each size runs ``asr-analogy finetune`` for ``--steps`` optimizer steps in a fresh process (bundled
Whisper tiny.en, window cut to ``--context`` s, batch ``--batch``), and the script records:

- peak RSS: ``ru_maxrss`` of that process and every process it waited for (its data-loader workers), from
  ``os.wait4``, in MiB;
- time to the index: seconds from the start of the process to the ``train: kept ...`` line (manifest read,
  durations and files checked);
- time to the first step: seconds to the first logged loss (``logging_first_step``: after optimizer step 1),
  which includes importing torch and loading the model.

It prints one row per size and the ratios against the targets of issue 11: peak RSS at the largest size ≤ 1.10×
the smallest's, first step within 30 s at 20 h. Wall times depend on the load of the machine (printed).

    .venv/bin/python benchmarks/data_scaling.py                       # 1 h, 5 h, 20 h; 5 steps each
    .venv/bin/python benchmarks/data_scaling.py --hours 1 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RSS_TARGET = 1.10  # peak RSS at the largest size / at the smallest
FIRST_STEP_TARGET_S = 30.0  # seconds to the first optimizer step at the largest size


def build_manifest(source: Path, hours: float, max_s: float, out: Path) -> tuple[Path, int]:
    """``out``: clips of ``source`` (≤ ``max_s`` s) repeated under new ids until ``hours`` hours. Returns the
    path and the number of records."""
    sys.path.insert(0, str(ROOT))
    from asr_analogy.io.manifest import read_manifest, write_manifest

    clips = [r for r in read_manifest(source) if 0 < float(r.get("duration") or 0) <= max_s]
    if not clips:
        raise SystemExit(f"no clip of at most {max_s} s in {source}")
    records, total, k = [], 0.0, 0
    while total < hours * 3600:
        for rec in clips:
            records.append({**rec, "id": f"{rec.get('id', len(records))}#{k}"})
            total += float(rec["duration"])
            if total >= hours * 3600:
                break
        k += 1
    write_manifest(records, out, relative=False)
    return out, len(records)


def run_finetune(config: Path, log_path: Path) -> dict:
    """Run ``asr-analogy finetune CONFIG`` in a fresh process; peak RSS (MiB) and the times of its milestones."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "asr_analogy", "finetune", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    marks: dict[str, float] = {}
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            now = time.perf_counter() - start
            if line.startswith("train: ") and "index_s" not in marks:
                marks["index_s"] = now
            if "'loss'" in line and "first_step_s" not in marks:
                marks["first_step_s"] = now

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    log_path.write_text("".join(lines))
    if proc.returncode != 0:
        raise SystemExit(f"finetune failed ({proc.returncode}); log: {log_path}\n{''.join(lines[-20:])}")
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": time.perf_counter() - start, **marks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 5.0, 20.0])
    ap.add_argument("--source", type=Path, default=ROOT / "data" / "ivr" / "manifest.jsonl")
    ap.add_argument("--model", default="bundled:tiny.en")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--context", type=int, default=10, help="Whisper window (audio_context_s), seconds")
    ap.add_argument("--workers", type=int, default=None, help="dataloader_num_workers (default: the config's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"{args.source} does not exist (make corpus prepares data/ivr)")

    rows = []
    with tempfile.TemporaryDirectory(prefix="data_scaling_") as tmp:
        tmp = Path(tmp)
        for hours in args.hours:
            manifest, n = build_manifest(args.source, hours, args.context, tmp / f"train_{hours:g}h.jsonl")
            config = {"model": args.model, "train_manifest": str(manifest), "output_dir": str(tmp / f"ft_{hours:g}h"),
                      "max_steps": args.steps, "batch_size": args.batch, "audio_context_s": args.context,
                      "logging_steps": 1, "save_steps": 10_000, "learning_rate": 1e-5}
            if args.workers is not None:
                config["dataloader_num_workers"] = args.workers
            cfg_path = tmp / f"ft_{hours:g}h.yaml"
            cfg_path.write_text(json.dumps(config))  # JSON is YAML
            load = os.getloadavg()[0]
            result = run_finetune(cfg_path, tmp / f"ft_{hours:g}h.log")
            rows.append({"hours": hours, "clips": n, "load_before": load, "load_after": os.getloadavg()[0], **result})
            r = rows[-1]
            print(f"{hours:6g} h {n:7d} clips  peak RSS {r['peak_rss_mib']:8.1f} MiB  index {r.get('index_s', float('nan')):6.1f} s"
                  f"  first step {r.get('first_step_s', float('nan')):6.1f} s  wall {r['wall_s']:6.1f} s"
                  f"  load {r['load_before']:.1f} → {r['load_after']:.1f}", flush=True)
    small, large = rows[0], rows[-1]
    rss_ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    first = large.get("first_step_s", float("nan"))
    print(f"peak RSS {large['hours']:g} h / {small['hours']:g} h: {rss_ratio:.3f}× (target ≤ {RSS_TARGET:.2f}×: "
          f"{'met' if rss_ratio <= RSS_TARGET else 'missed'})")
    print(f"first step at {large['hours']:g} h: {first:.1f} s = {first / FIRST_STEP_TARGET_S:.2f}× the "
          f"{FIRST_STEP_TARGET_S:g}-s target ({'met' if first <= FIRST_STEP_TARGET_S else 'missed'})")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "rss_ratio": rss_ratio, "argv": sys.argv[1:]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
