"""Store add + equip against apply-vector alone, and compressed sizes, on a Whisper tiny.en-sized vector.

    python benchmarks/store_vs_apply.py [WORK_DIR]

Imports the bundled tiny.en (39M parameters), makes two perturbed copies of it, their task vector, and times
(best of 3 each): ``apply-vector`` alone; ``store add`` + ``store equip`` (task arithmetic, one vector). Prints
the ratio (target <= 2x) and, for each compression method, the size as a share of float32.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(work: Path) -> None:
    from asr_analogy.io.checkpoint import load_state_dict, save_checkpoint
    from asr_analogy.merge import apply_vector, tune_malloc, vector
    from asr_analogy.merge.compressed import compress
    from asr_analogy.speech.models.ct2_import import import_bundled
    from asr_analogy.store import gear

    tune_malloc()
    base = work / "base"
    if not base.exists():
        import_bundled("tiny.en", base)
    state = load_state_dict(base)
    g = torch.Generator().manual_seed(0)
    for name, sigma in (("ft_a", 1e-3), ("ft_b", 2e-3)):
        if not (work / name).exists():
            moved = {k: v + sigma * torch.randn(v.shape, generator=g).to(v.dtype) if v.is_floating_point() else v
                     for k, v in state.items()}
            save_checkpoint(moved, work / name)
    tau = work / "tau.safetensors"
    if not tau.exists():
        vector(work / "ft_a", work / "ft_b", tau, progress=False)  # a vector of ft_b's model (base: ft_b)
    params = sum(v.numel() for v in state.values() if v.is_floating_point())
    print(f"vector: {params / 1e6:.1f}M parameters, {tau.stat().st_size / 1e6:.0f} MB")
    base_model = work / "ft_b"

    apply_s = _best(lambda: apply_vector(base_model, tau, work / "applied", force=True, progress=False))

    def add_and_equip():
        store = Path(tempfile.mkdtemp(dir=work))
        gear.add("tau", tau, store=store)
        gear.equip(base_model, ["tau"], work / "equipped", store=store, force=True, progress=False)

    store_s = _best(add_and_equip)
    print(f"apply-vector {apply_s:.2f} s; store add + equip {store_s:.2f} s; ratio {store_s / apply_s:.2f}x (target <= 2x)")
    for method in ("int8", "int4", "topk:0.1", "topk:0.1,int8", "topk:0.05,int4", "lowrank:32", "lowrank:16,int8"):
        result = compress(tau, work / f"c_{method.replace(':', '_').replace(',', '-')}.safetensors", method,
                          force=True, progress=False)
        print(f"{method:16s} {100 * result.share:6.2f}% of float32 ({result.nbytes / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
