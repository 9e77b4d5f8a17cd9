"""The cases of the bad-input sweep: one ``Case`` per command line, with its setup and what must happen."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    expect: str = "error"  # "error": must be refused clearly; "ok": must succeed and pass ``check``
    msg: str | None = None  # regex the error must match (it names the problem)
    setup: Callable | None = None  # (fx, w) -> None: case inputs under w
    protect: list[str] = field(default_factory=list)  # paths under w that are inputs (hashed before/after)
    outs: list[str] = field(default_factory=list)  # outputs that must not appear when refused
    check: Callable | None = None  # (fx, w, outcome) -> None or the problem found in a result
    patch: Callable | None = None  # (fx, w) -> context manager around the call
    teardown: Callable | None = None
    env: dict | None = None
    subprocess: bool = False
    file_size_limit: int | None = None
    note: str = ""


# ---- helpers ---------------------------------------------------------------------------------------------


def fill(text: str, fx, w) -> str:
    """``{fx}`` and ``{w}`` replaced (other braces, YAML flow mappings, are left alone)."""
    return text.replace("{fx}", str(fx)).replace("{w}", str(w))


def copy(src: str, dst: str):
    def setup(fx, w):
        s, d = fx / src, w / dst
        if s.is_dir():
            shutil.copytree(s, d)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    return setup


def chain(*fns):
    def setup(fx, w):
        for f in fns:
            f(fx, w)
    return setup


def write(name: str, text: str | bytes | Callable):
    def setup(fx, w):
        value = text(fx, w) if callable(text) else text
        value = fill(value, fx, w) if isinstance(value, str) else value
        (w / name).parent.mkdir(parents=True, exist_ok=True)
        (w / name).write_bytes(value.encode() if isinstance(value, str) else value)
    return setup


def ta_config(*models, method="task_arithmetic", base="{fx}/base", params="", model_params=""):
    lines = [f"merge_method: {method}", f"base_model: {base}", "models:"]
    lines += [f"  - model: {m}" + (f"\n    parameters: {{{model_params}}}" if model_params else "") for m in models]
    if params:
        lines.append(f"parameters: {{{params}}}")
    return "\n".join(lines) + "\n"


def finite_model(rel: str):
    def check(fx, w, outcome):
        import torch

        from asr_analogy.io.checkpoint import load_state_dict

        state = load_state_dict(w / rel)
        if not state:
            return "no tensors written"
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        return f"non-finite tensors: {bad[:3]}" if bad else None
    return check


def jsonl_count(rel: str, n: int):
    def check(fx, w, outcome):
        lines = [ln for ln in (w / rel).read_text().splitlines() if ln.strip()]
        return None if len(lines) == n else f"{len(lines)} records, expected {n}"
    return check


def chattr(rel: str, flag: str):
    def fn(fx, w):
        subprocess.run(["chattr", flag, str(w / rel)], check=False, capture_output=True)
    return fn


def _nan_model(fx, w):
    """A copy of ft0 with one NaN in the middle of a tensor."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(fx / "ft0", w / "nanft")
    state = load_file(w / "nanft" / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    state[key][3, 5] = float("nan")
    save_file(state, w / "nanft" / "model.safetensors", metadata={"format": "pt"})


def _nan_vector(fx, w):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(fx / "tau.safetensors", "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    key = sorted(k for k in state if state[k].is_floating_point())[0]
    state[key].view(-1)[state[key].numel() // 2] = float("nan")
    save_file(state, w / "nan_tau.safetensors", metadata=meta)


def _edited_base(fx, w):
    """The base with one element changed in the middle of its embedding (the vector's fingerprint must see it)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(fx / "base", w / "base2")
    state = load_file(w / "base2" / "model.safetensors")
    emb = state["model.embed_tokens.weight"]
    emb.view(-1)[emb.numel() // 2] += 1.0
    save_file(state, w / "base2" / "model.safetensors", metadata={"format": "pt"})


def _truncated(src: str, dst: str):
    def setup(fx, w):
        shutil.copytree(fx / src, w / dst)
        f = w / dst / "model.safetensors"
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    return setup


def _stale_temp(fx, w):
    host = "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname())[:40] or "host"
    stale = w / f".out.tmp-{host}-999999-abcd"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)


def _stale_gone(fx, w, outcome):
    left = [p.name for p in w.iterdir() if p.name.startswith(".out.")]
    return f"stale temporaries left: {left}" if left else None


def recipe(over: dict | None = None, raw: str | None = None):
    def setup(fx, w):
        from tests.analogy.conftest import recipe_dict

        cfg = recipe_dict(fx / "whisper", fx / "corpus" / "manifest.jsonl", w / "exp", w / "tts_cache")
        for k, v in (over or {}).items():
            cfg[k] = v
        text = yaml.safe_dump(cfg, sort_keys=False)
        if raw:
            text += raw
        (w / "recipe.yaml").write_text(text)
    return setup


def ft_config(text: str):
    return write("ft.yaml", text)


FT_OK = ("model: {fx}/whisper\ntrain_manifest: {fx}/small.jsonl\noutput_dir: {w}/ft\nmax_steps: 1\n"
         "batch_size: 2\naudio_context_s: 2\nlearning_rate: 1.0e-4\n")


def synth_existing(fx, w):
    """A finished synthesis of sentences.txt in w/out (seed 0)."""
    from asr_analogy.speech.tts import synthesize

    synthesize(fx / "sentences.txt", w / "out", backend="espeak", workers=1, cache_dir=w / "cache", progress=False)


@contextlib.contextmanager
def failing_tts(fx, w):
    """The second sample of a synthesis is killed (an exception midway through the run)."""
    from asr_analogy.speech.tts import pipeline

    real, calls = pipeline.run_task, []

    def run_task(task, engine):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed midway")
        return real(task, engine)

    pipeline.run_task = run_task
    try:
        yield
    finally:
        pipeline.run_task = real


@contextlib.contextmanager
def disk_full_on_fsync(fx, w):
    import errno

    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    os.fsync = full
    try:
        yield
    finally:
        os.fsync = real


def synth_seed_changed(fx, w, outcome):
    recs = [json.loads(x) for x in (w / "out" / "manifest.jsonl").read_text().splitlines()]
    wavs = sorted(p.name for p in (w / "out" / "wavs").iterdir())
    if any(r["seed"] == 0 for r in recs) or len(recs) != 2 or len(wavs) != 2:
        return f"manifest/wavs not replaced: {len(recs)} records, wavs {wavs}"
    hidden = [p.name for p in (w / "out").rglob(".*")]
    return f"leftovers {hidden}" if hidden else None


def _tau_equals(rel: str, scale: float):
    def check(fx, w, outcome):
        import torch

        from asr_analogy.io.checkpoint import load_state_dict

        base, ft, out = (load_state_dict(p) for p in (fx / "base", fx / "ft0", w / rel))
        for k in base:
            want = base[k].double() + scale * (ft[k].double() - base[k].double())
            if not torch.allclose(out[k].double(), want, atol=1e-5):
                return f"tensor {k} differs from base + {scale} * tau"
        return None
    return check


def _no_long_clip(fx, w, outcome):
    man = w / "out" / "manifest.jsonl"
    if man.exists():
        recs = [json.loads(x) for x in man.read_text().splitlines()]
        long = [r for r in recs if r.get("duration", 0) > 30]
        if long:
            return f"a clip of {long[0]['duration']:.0f} s was written"
    return None


def _whisper_window(seconds: int):
    def check(fx, w, outcome):
        cfg = json.loads((w / "short" / "config.json").read_text())
        return None if cfg["max_source_positions"] == seconds * 50 else f"max_source_positions {cfg['max_source_positions']}"
    return check


def _eval_check(fx, w, outcome):
    summary = json.loads((w / "s.json").read_text())
    text = json.dumps(summary)
    return None if '"n"' in text or "utterances" in text or "wer" in text.lower() else "no WER in the summary"


def _has_hypotheses(fx, w, outcome):
    recs = [json.loads(x) for x in (w / "h.jsonl").read_text().splitlines()]
    if len(recs) != 3 or any("hypothesis" not in r for r in recs):
        return f"{len(recs)} records"
    return None


# ---- the cases ---------------------------------------------------------------------------------------------


def merge_cases() -> list[Case]:
    g = "merge"
    cfg = lambda text: write("cfg.yaml", text)  # noqa: E731
    out = ["{w}/out"]
    c = [
        Case(g, "merge-ok", ["merge", "{w}/cfg.yaml", "{w}/out", "--quiet"], "ok", setup=cfg(ta_config("{fx}/ft0", "{fx}/ft1")),
             check=finite_model("out")),
        Case(g, "merge-config-missing", ["merge", "{w}/nope.yaml", "{w}/out"], msg="nope.yaml", outs=out),
        Case(g, "merge-dup-keys", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="duplicate|twice",
             setup=cfg(ta_config("{fx}/ft0") + "merge_method: ties\n"), outs=out),
        Case(g, "merge-ties-density-1.5", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="density",
             setup=cfg(ta_config("{fx}/ft0", "{fx}/ft1", method="ties", model_params="density: 1.5, weight: 1.0")), outs=out),
        Case(g, "merge-weight-nan", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="weight",
             setup=cfg(ta_config("{fx}/ft0", model_params="weight: .nan")), outs=out),
        Case(g, "merge-weight-inf", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="weight",
             setup=cfg(ta_config("{fx}/ft0", model_params="weight: .inf")), outs=out),
        Case(g, "merge-weight-1e39", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="weight|finite|overflow",
             setup=cfg(ta_config("{fx}/ft0", model_params="weight: 1.0e+39")), outs=out),
        Case(g, "merge-unknown-method", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="tie",
             setup=cfg(ta_config("{fx}/ft0", method="tie")), outs=out),
        Case(g, "merge-model-missing", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="nope",
             setup=cfg(ta_config("{fx}/nope")), outs=out),
        Case(g, "merge-out-is-base-force", ["merge", "{w}/cfg.yaml", "{w}/base", "--force"], msg="input",
             setup=chain(copy("base", "base"), cfg(ta_config("{fx}/ft0", base="{w}/base"))), protect=["base"],
             note="output = the base model's folder"),
        Case(g, "merge-out-parent-of-input", ["merge", "{w}/cfg.yaml", "{w}/models", "--force"], msg="input",
             setup=chain(copy("base", "models/base"), cfg(ta_config("{fx}/ft0", base="{w}/models/base"))),
             protect=["models"], note="output = the folder holding the base"),
        Case(g, "merge-out-inside-input", ["merge", "{w}/cfg.yaml", "{w}/base/merged"], msg="input",
             setup=chain(copy("base", "base"), cfg(ta_config("{fx}/ft0", base="{w}/base"))), protect=["base"]),
        Case(g, "merge-out-is-config", ["merge", "{w}/cfg.yaml", "{w}/cfg.yaml", "--force"], msg="cfg.yaml",
             setup=cfg(ta_config("{fx}/ft0")), protect=["cfg.yaml"]),
        Case(g, "merge-out-exists", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="exists",
             setup=chain(cfg(ta_config("{fx}/ft0")), write("out/keep.txt", "mine")), protect=["out"]),
        Case(g, "merge-out-exists-force", ["merge", "{w}/cfg.yaml", "{w}/out", "--force", "--quiet"], "ok",
             setup=chain(cfg(ta_config("{fx}/ft0")), write("out/keep.txt", "old")), check=finite_model("out")),
        Case(g, "merge-stale-temporary-cleaned", ["merge", "{w}/cfg.yaml", "{w}/out", "--quiet"], "ok",
             setup=chain(cfg(ta_config("{fx}/ft0")), _stale_temp), check=_stale_gone,
             note="a killed merge's .out.tmp-<host>-<dead pid>-* folder beside the output"),
        Case(g, "merge-disk-full", ["merge", "{w}/cfg.yaml", "{w}/out", "--quiet"], msg="too large|space",
             setup=cfg(ta_config("{fx}/ft0")), subprocess=True, file_size_limit=200_000, outs=out,
             note="RLIMIT_FSIZE 200 kB: every write past it fails (EFBIG), as on a full disk"),
        Case(g, "merge-read-only-output", ["merge", "{w}/cfg.yaml", "{w}/ro/out", "--quiet"], msg="ro|permitted|read-only",
             setup=chain(cfg(ta_config("{fx}/ft0")), write("ro/.keep", ""), chattr("ro", "+i")),
             teardown=chattr("ro", "-i"), note="chattr +i on the output's parent"),
        Case(g, "merge-out-under-file", ["merge", "{w}/cfg.yaml", "{fx}/notes.txt/out"], msg="notes.txt",
             setup=cfg(ta_config("{fx}/ft0"))),
        Case(g, "merge-config-latin1", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="UTF-8",
             setup=write("cfg.yaml", b"# caf\xe9\nmerge_method: task_arithmetic\n"), outs=out),
        Case(g, "merge-config-list", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="mapping|expected",
             setup=cfg("- a\n- b\n"), outs=out),
        Case(g, "merge-config-empty", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="empty|mapping|expected|merge_method",
             setup=cfg(""), outs=out),
        Case(g, "merge-config-bad-yaml", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="yaml|line",
             setup=cfg("merge_method: [task_arithmetic\nmodels: {\n"), outs=out),
        Case(g, "merge-shard-size-garbage", ["merge", "{w}/cfg.yaml", "{w}/out", "--shard-size", "lots"], msg="shard",
             setup=cfg(ta_config("{fx}/ft0")), outs=out),
        Case(g, "merge-dtype-bogus", ["merge", "{w}/cfg.yaml", "{w}/out", "--dtype", "float33"], msg="float33",
             setup=cfg(ta_config("{fx}/ft0")), outs=out),
        Case(g, "merge-device-bogus", ["merge", "{w}/cfg.yaml", "{w}/out", "--device", "gpu9"], msg="gpu9|device",
             setup=cfg(ta_config("{fx}/ft0")), outs=out),
        Case(g, "merge-nan-in-input", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="NaN|finite",
             setup=chain(_nan_model, cfg(ta_config("{w}/nanft"))), protect=["nanft"], outs=out),
        Case(g, "merge-truncated-input", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="trunc|safetensors|header|incomplete",
             setup=chain(_truncated("ft0", "tr"), cfg(ta_config("{w}/tr"))), protect=["tr"], outs=out),
        Case(g, "merge-slerp-t-1.5", ["merge", "{w}/cfg.yaml", "{w}/out"], msg=r"\bt\b",
             setup=cfg("merge_method: slerp\nbase_model: {fx}/base\nmodels:\n  - model: {fx}/base\n  - model: {fx}/ft0\n"
                       "parameters: {t: 1.5}\n"), outs=out),
        Case(g, "merge-unknown-key", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="modles|unknown",
             setup=cfg("merge_method: task_arithmetic\nbase_model: {fx}/base\nmodles: [{model: {fx}/ft0}]\n"), outs=out),
        Case(g, "merge-no-models", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="models",
             setup=cfg("merge_method: task_arithmetic\nbase_model: {fx}/base\nmodels: []\n"), outs=out),
        Case(g, "merge-base-is-file", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="notes.txt",
             setup=cfg(ta_config("{fx}/ft0", base="{fx}/notes.txt")), outs=out),
        Case(g, "merge-different-architectures", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="tensor|shape|lacks",
             setup=cfg(ta_config("{fx}/whisper")), outs=out),
        Case(g, "merge-dare-density-0", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="density",
             setup=cfg(ta_config("{fx}/ft0", method="dare_linear", model_params="density: 0.0, weight: 1.0")), outs=out),
        Case(g, "merge-lambda-nan", ["merge", "{w}/cfg.yaml", "{w}/out"], msg="lambda",
             setup=cfg(ta_config("{fx}/ft0", params="lambda: .nan")), outs=out),
    ]
    return c


def vector_cases() -> list[Case]:
    g = "vector"
    out = ["{w}/t.safetensors"]
    return [
        Case(g, "vector-ok-file", ["vector", "{fx}/ft0", "{fx}/base", "{w}/t.safetensors", "--quiet"], "ok",
             check=finite_model("t.safetensors")),
        Case(g, "vector-ok-dir", ["vector", "{fx}/ft0", "{fx}/base", "{w}/tdir", "--quiet"], "ok",
             check=finite_model("tdir")),
        Case(g, "vector-out-is-base-force", ["vector", "{w}/ft", "{w}/base", "{w}/base", "--force"], msg="input",
             setup=chain(copy("base", "base"), copy("ft0", "ft")), protect=["base", "ft"]),
        Case(g, "vector-out-inside-finetuned", ["vector", "{w}/ft", "{fx}/base", "{w}/ft/t.safetensors"], msg="input",
             setup=copy("ft0", "ft"), protect=["ft"]),
        Case(g, "vector-out-parent-force", ["vector", "{w}/m/ft", "{fx}/base", "{w}/m", "--force"], msg="input",
             setup=copy("ft0", "m/ft"), protect=["m"]),
        Case(g, "vector-finetuned-missing", ["vector", "{w}/nope", "{fx}/base", "{w}/t.safetensors"], msg="nope", outs=out),
        Case(g, "vector-other-architecture", ["vector", "{fx}/whisper", "{fx}/base", "{w}/t.safetensors"],
             msg="tensor|shape|lacks", outs=out),
        Case(g, "vector-out-exists", ["vector", "{fx}/ft0", "{fx}/base", "{w}/t.safetensors"], msg="exists",
             setup=write("t.safetensors", "mine"), protect=["t.safetensors"]),
        Case(g, "vector-dtype-bogus", ["vector", "{fx}/ft0", "{fx}/base", "{w}/t.safetensors", "--dtype", "f32x"],
             msg="f32x", outs=out),
        Case(g, "vector-nan-in-finetuned", ["vector", "{w}/nanft", "{fx}/base", "{w}/t.safetensors", "--quiet"],
             msg="NaN|finite", setup=_nan_model, protect=["nanft"], outs=out),
        Case(g, "vector-truncated-base", ["vector", "{fx}/ft0", "{w}/tr", "{w}/t.safetensors"],
             msg="trunc|safetensors|header|incomplete", setup=_truncated("base", "tr"), protect=["tr"], outs=out),
        Case(g, "vector-read-only-output", ["vector", "{fx}/ft0", "{fx}/base", "{w}/ro/t.safetensors", "--quiet"],
             msg="ro|permitted|read-only", setup=chain(write("ro/.keep", ""), chattr("ro", "+i")),
             teardown=chattr("ro", "-i")),
        Case(g, "vector-disk-full", ["vector", "{fx}/ft0", "{fx}/base", "{w}/t.safetensors", "--quiet"],
             msg="too large|space", subprocess=True, file_size_limit=100_000, outs=out),
        Case(g, "vector-same-model", ["vector", "{fx}/base", "{fx}/base", "{w}/t.safetensors", "--quiet"], "ok",
             check=finite_model("t.safetensors"), note="a zero vector is a valid (if useless) result"),
        Case(g, "vector-shard-size-garbage", ["vector", "{fx}/ft0", "{fx}/base", "{w}/tdir", "--shard-size", "0"],
             msg="shard", outs=["{w}/tdir"]),
    ]


def apply_cases() -> list[Case]:
    g = "apply-vector"
    out = ["{w}/out"]
    av = lambda *extra, vec="{fx}/tau.safetensors", base="{fx}/base", o="{w}/out": ["apply-vector", base, vec, o, "--quiet", *extra]  # noqa: E731
    return [
        Case(g, "apply-ok", av(), "ok", check=_tau_equals("out", 1.0)),
        Case(g, "apply-scale-nan", av("--scale", "nan"), msg="scale", outs=out),
        Case(g, "apply-scale-inf", av("--scale", "inf"), msg="scale", outs=out),
        Case(g, "apply-scale-1e39", av("--scale", "1e39"), msg="scale|finite|overflow", outs=out),
        Case(g, "apply-vector-with-nan", av(vec="{w}/nan_tau.safetensors"), msg="NaN|finite", setup=_nan_vector,
             protect=["nan_tau.safetensors"], outs=out),
        Case(g, "apply-base-edited-mid-tensor", av(base="{w}/base2"), msg="fingerprint|computed from|other base|not the",
             setup=_edited_base, protect=["base2"], outs=out, note="one element changed in the middle of the embedding"),
        Case(g, "apply-other-base-allowed", av("--allow-other-base", base="{w}/base2"), "ok", setup=_edited_base,
             protect=["base2"], check=finite_model("out")),
        Case(g, "apply-vector-missing", av(vec="{w}/nope.safetensors"), msg="nope", outs=out),
        Case(g, "apply-vector-garbage", av(vec="{w}/junk.safetensors"), msg="junk|safetensors|header",
             setup=write("junk.safetensors", b"\x00\x01garbage" * 10), protect=["junk.safetensors"], outs=out),
        Case(g, "apply-out-is-base-force", av("--force", base="{w}/base", o="{w}/base"), msg="input",
             setup=copy("base", "base"), protect=["base"]),
        Case(g, "apply-out-contains-vector", av("--force", vec="{w}/v/tau.safetensors", o="{w}/v"), msg="input",
             setup=copy("tau.safetensors", "v/tau.safetensors"), protect=["v"]),
        Case(g, "apply-scale-minus-1", av("--scale", "-1"), "ok", check=_tau_equals("out", -1.0)),
        Case(g, "apply-scale-0", av("--scale", "0"), "ok", check=_tau_equals("out", 0.0)),
        Case(g, "apply-out-dtype-bogus", av("--out-dtype", "float7"), msg="float7", outs=out),
        Case(g, "apply-out-dtype-f16", av("--out-dtype", "float16"), "ok", check=finite_model("out")),
        Case(g, "apply-scale-text", av("--scale", "abc"), msg="scale|abc", outs=out),
        Case(g, "apply-wrong-architecture", av(base="{fx}/whisper", ), msg="tensor|shape|computed from|lacks|fingerprint",
             outs=out),
        Case(g, "apply-out-exists", av(), msg="exists", setup=write("out/keep.txt", "mine"), protect=["out"]),
        Case(g, "apply-disk-full", av(), msg="too large|space", subprocess=True, file_size_limit=100_000, outs=out),
        Case(g, "apply-vector-is-model-dir", av(vec="{fx}/ft0"), msg="vector|ft0", outs=out),
    ]


def finetune_cases() -> list[Case]:
    g = "finetune"
    ft = ["finetune", "{w}/ft.yaml"]
    outs = ["{w}/ft"]
    return [
        Case(g, "ft-lr-scheduler-typo", ft, msg="lr_scheduler|cosin", setup=ft_config(FT_OK + "lr_scheduler: cosin\n"), outs=outs),
        Case(g, "ft-lr-scheduler-typo-set", ft + ["--set", "lr_scheduler=linaer"], msg="lr_scheduler|linaer",
             setup=ft_config(FT_OK), outs=outs),
        Case(g, "ft-missing-local-model", ft, msg=r"(?!.*Repo id)nope", setup=ft_config(FT_OK.replace("{fx}/whisper", "{w}/nope")),
             outs=outs, note="model: a local folder that does not exist"),
        Case(g, "ft-missing-relative-model", ft, msg=r"(?!.*Repo id)my_model", setup=ft_config(FT_OK.replace("{fx}/whisper", "./my_model")),
             outs=outs),
        Case(g, "ft-unknown-key", ft, msg="learnig_rate", setup=ft_config(FT_OK + "learnig_rate: 1\n"), outs=outs),
        Case(g, "ft-dup-keys", ft, msg="duplicate|twice", setup=ft_config(FT_OK + "max_steps: 5\n"), outs=outs),
        Case(g, "ft-output-is-model-force", ft + ["--force"], msg="input",
             setup=chain(copy("whisper", "model"), ft_config(FT_OK.replace("{fx}/whisper", "{w}/model").replace("{w}/ft", "{w}/model"))),
             protect=["model"]),
        Case(g, "ft-output-parent-of-model", ft + ["--force"], msg="input",
             setup=chain(copy("whisper", "m/model"), ft_config(FT_OK.replace("{fx}/whisper", "{w}/m/model").replace("{w}/ft", "{w}/m"))),
             protect=["m"]),
        Case(g, "ft-output-is-manifest-dir", ft + ["--force"], msg="input",
             setup=chain(copy("small.jsonl", "d/train.jsonl"), ft_config(FT_OK.replace("{fx}/small.jsonl", "{w}/d/train.jsonl").replace("{w}/ft", "{w}/d"))),
             protect=["d"]),
        Case(g, "ft-train-manifest-missing", ft, msg="nope.jsonl", setup=ft_config(FT_OK.replace("small.jsonl", "nope.jsonl")), outs=outs),
        Case(g, "ft-train-manifest-empty", ft, msg="empty|no usable|no record|no clips",
             setup=ft_config(FT_OK.replace("small.jsonl", "empty.jsonl")), outs=outs),
        Case(g, "ft-train-manifest-latin1", ft, msg="UTF-8",
             setup=chain(copy("hyps_latin1.jsonl", "m.jsonl"), ft_config(FT_OK.replace("{fx}/small.jsonl", "{w}/m.jsonl"))), outs=outs),
        Case(g, "ft-config-latin1", ft, msg="UTF-8", setup=write("ft.yaml", b"# caf\xe9\nmodel: x\n"), outs=outs),
        Case(g, "ft-lr-negative", ft, msg="learning_rate", setup=ft_config(FT_OK.replace("1.0e-4", "-1.0")), outs=outs),
        Case(g, "ft-lr-nan", ft, msg="learning_rate", setup=ft_config(FT_OK.replace("1.0e-4", ".nan")), outs=outs),
        Case(g, "ft-max-steps-0", ft, msg="max_steps", setup=ft_config(FT_OK.replace("max_steps: 1", "max_steps: 0")), outs=outs),
        Case(g, "ft-batch-size-0", ft + ["--batch-size", "0"], msg="batch_size", setup=ft_config(FT_OK), outs=outs),
        Case(g, "ft-set-unknown", ft + ["--set", "nosuch=1"], msg="nosuch", setup=ft_config(FT_OK), outs=outs),
        Case(g, "ft-set-no-equals", ft + ["--set", "max_steps"], msg="KEY=VALUE|max_steps", setup=ft_config(FT_OK), outs=outs),
        Case(g, "ft-config-list", ft, msg="mapping", setup=ft_config("- a\n"), outs=outs),
        Case(g, "ft-model-is-llama", ft, msg="llama|model_type", setup=ft_config(FT_OK.replace("{fx}/whisper", "{fx}/base")), outs=outs),
        Case(g, "ft-output-exists", ft, msg="exists|--force|--resume", setup=chain(ft_config(FT_OK), write("ft/keep.txt", "mine")),
             protect=["ft"]),
        Case(g, "ft-output-under-file", ft + ["--output-dir", "{fx}/notes.txt/ft"], msg="notes.txt", setup=ft_config(FT_OK)),
        Case(g, "ft-ok-one-step", ft, "ok", setup=ft_config(FT_OK),
             check=lambda fx, w, o: None if any((w / "ft").rglob("*.safetensors")) else "no weights written"),
    ]


def transcribe_cases() -> list[Case]:
    g = "transcribe"
    tr = lambda man="{fx}/small.jsonl", model="{fx}/whisper", out="{w}/h.jsonl", *extra: [  # noqa: E731
        "transcribe", model, man, out, "--device", "cpu", "--max-new-tokens", "4", *extra]
    outs = ["{w}/h.jsonl"]
    return [
        Case(g, "tr-ok", tr(), "ok", check=_has_hypotheses),
        Case(g, "tr-empty-manifest", tr("{fx}/empty.jsonl"), msg="empty|no record", outs=outs),
        Case(g, "tr-manifest-missing", tr("{w}/nope.jsonl"), msg="nope.jsonl", outs=outs),
        Case(g, "tr-manifest-latin1", tr("{fx}/hyps_latin1.jsonl"), msg="UTF-8", outs=outs),
        Case(g, "tr-manifest-broken-json", tr("{fx}/nemo_broken.jsonl"), msg="json|line", outs=outs),
        Case(g, "tr-model-missing", tr(model="{w}/nope"), msg="nope", outs=outs),
        Case(g, "tr-model-is-llama", tr(model="{fx}/base"), msg="base|whisper|model", outs=outs),
        Case(g, "tr-out-is-manifest", tr("{w}/m.jsonl", "{fx}/whisper", "{w}/m.jsonl", "--force"), msg="input",
             setup=copy("small.jsonl", "m.jsonl"), protect=["m.jsonl"]),
        Case(g, "tr-out-inside-model", tr(model="{w}/model", out="{w}/model/h.jsonl"), msg="input",
             setup=copy("whisper", "model"), protect=["model"]),
        Case(g, "tr-out-exists", tr(), msg="exists", setup=write("h.jsonl", "mine\n"), protect=["h.jsonl"]),
        Case(g, "tr-batch-size-0", tr() + ["--batch-size", "0"], msg="batch_size", outs=outs),
        Case(g, "tr-beams-0", tr() + ["--beams", "0"], msg="beams", outs=outs),
        Case(g, "tr-max-new-tokens-0", tr()[:-2] + ["--max-new-tokens", "0"], msg="max.new.tokens", outs=outs),
        Case(g, "tr-all-audio-missing", tr("{w}/m.jsonl"), msg="could be read|unreadable", outs=outs,
             setup=write("m.jsonl", '{"audio_filepath": "/nonexistent/a.wav", "text": "a"}\n'
                                    '{"audio_filepath": "/nonexistent/b.wav", "text": "b"}\n')),
        Case(g, "tr-record-without-audio", tr("{w}/m.jsonl"), msg="audio_filepath", outs=outs,
             setup=write("m.jsonl", '{"text": "a"}\n')),
        Case(g, "tr-read-only-output", tr(out="{w}/ro/h.jsonl"), msg="ro|permitted|read-only",
             setup=chain(write("ro/.keep", ""), chattr("ro", "+i")), teardown=chattr("ro", "-i")),
        Case(g, "tr-disk-full", tr(), msg="space", patch=disk_full_on_fsync, outs=outs,
             note="os.fsync raises ENOSPC (in process)"),
        Case(g, "tr-device-bogus", tr()[:-4] + ["--device", "tpu"], msg="tpu|device", outs=outs),
    ]


def evaluate_cases() -> list[Case]:
    g = "evaluate"
    return [
        Case(g, "eval-ok", ["evaluate", "{fx}/hyps.jsonl", "--bootstrap", "20", "--out", "{w}/s.json"], "ok", check=_eval_check),
        Case(g, "eval-duplicate-ids", ["evaluate", "{fx}/hyps_dup.jsonl", "--bootstrap", "20"], msg="duplicate|twice",
             note="one record repeated (same id)"),
        Case(g, "eval-empty", ["evaluate", "{fx}/empty.jsonl"], msg="empty|no record"),
        Case(g, "eval-latin1", ["evaluate", "{fx}/hyps_latin1.jsonl"], msg="UTF-8"),
        Case(g, "eval-no-hypothesis", ["evaluate", "{fx}/small.jsonl"], msg="hypothesis"),
        Case(g, "eval-out-is-hyps", ["evaluate", "{w}/h.jsonl", "--out", "{w}/h.jsonl"], msg="input",
             setup=copy("hyps.jsonl", "h.jsonl"), protect=["h.jsonl"]),
        Case(g, "eval-bootstrap-negative", ["evaluate", "{fx}/hyps.jsonl", "--bootstrap", "-5"], msg="bootstrap"),
        Case(g, "eval-by-missing-field", ["evaluate", "{fx}/hyps.jsonl", "--by", "nosuchfield", "--bootstrap", "20"],
             msg="nosuchfield"),
        Case(g, "eval-out-under-file", ["evaluate", "{fx}/hyps.jsonl", "--out", "{fx}/notes.txt/s.json"], msg="notes.txt"),
        Case(g, "eval-hyps-missing", ["evaluate", "{w}/nope.jsonl"], msg="nope.jsonl"),
        Case(g, "eval-read-only-out", ["evaluate", "{fx}/hyps.jsonl", "--bootstrap", "20", "--out", "{w}/ro/s.json"],
             msg="ro|permitted|read-only", setup=chain(write("ro/.keep", ""), chattr("ro", "+i")), teardown=chattr("ro", "-i")),
        Case(g, "eval-disk-full", ["evaluate", "{fx}/hyps.jsonl", "--bootstrap", "20", "--out", "{w}/s.json"], msg="space",
             patch=disk_full_on_fsync, outs=["{w}/s.json"]),
        Case(g, "eval-hypothesis-null", ["evaluate", "{w}/h.jsonl"], msg="hypothesis",
             setup=write("h.jsonl", '{"id": "a", "text": "a b", "hypothesis": null}\n')),
        Case(g, "eval-bootstrap-0", ["evaluate", "{fx}/hyps.jsonl", "--bootstrap", "0"], "ok"),
        Case(g, "eval-english-spelling-missing", ["evaluate", "{fx}/hyps.jsonl", "--english-spelling", "{w}/n.json"], msg="n.json"),
    ]


def prep_cases() -> list[Case]:
    g = "prep"
    out = ["{w}/out"]

    def man_count(n):
        return jsonl_count("out/manifest.jsonl", n)

    def skipped_reason(n, reason):
        def check(fx, w, o):
            recs = [json.loads(x) for x in (w / "out" / "manifest.jsonl").read_text().splitlines()]
            sk = (w / "out" / "skipped.jsonl").read_text()
            texts = [r["text"] for r in recs]
            if len(recs) != n or reason not in sk:
                return f"{len(recs)} records {texts}, skips {sk[:200]}"
            return None
        return check

    return [
        Case(g, "csv-ok", ["prep", "csv", "{fx}/table.csv", "{w}/out"], "ok", check=man_count(3)),
        Case(g, "csv-extra-commas", ["prep", "csv", "{fx}/table_extra_commas.csv", "{w}/out"], "ok",
             check=skipped_reason(2, "malformed_row"), note="a row with unquoted commas in its text"),
        Case(g, "csv-open-quote", ["prep", "csv", "{fx}/table_open_quote.csv", "{w}/out"], "ok",
             check=skipped_reason(1, "malformed_row"), note="a quote left open swallows the next rows"),
        Case(g, "csv-latin1", ["prep", "csv", "{fx}/table_latin1.csv", "{w}/out"], msg="UTF-8", outs=out),
        Case(g, "csv-all-audio-missing", ["prep", "csv", "{fx}/table_missing_audio.csv", "{w}/out"],
             msg="no usable|skipped|missing|no utterance", outs=out),
        Case(g, "csv-header-only", ["prep", "csv", "{fx}/table_header_only.csv", "{w}/out"], msg="no row|empty|no usable|no utterance", outs=out),
        Case(g, "csv-missing", ["prep", "csv", "{w}/nope.csv", "{w}/out"], msg="nope.csv", outs=out),
        Case(g, "csv-out-parent-force", ["prep", "csv", "{w}/d/t.csv", "{w}/d", "--force"], msg="input",
             setup=copy("table.csv", "d/t.csv"), protect=["d"]),
        Case(g, "csv-path-column-missing", ["prep", "csv", "{fx}/table.csv", "{w}/out", "--path-column", "wav9"], msg="wav9", outs=out),
        Case(g, "csv-text-column-99", ["prep", "csv", "{fx}/table.csv", "{w}/out", "--text-column", "99"], msg="99|column", outs=out),
        Case(g, "csv-split-bogus", ["prep", "csv", "{fx}/table.csv", "{w}/out", "--split", "trian"], msg="trian", outs=out),
        Case(g, "csv-out-exists", ["prep", "csv", "{fx}/table.csv", "{w}/out"], msg="exists",
             setup=write("out/keep.txt", "mine"), protect=["out"]),
        Case(g, "csv-delimiter-empty", ["prep", "csv", "{fx}/table.csv", "{w}/out", "--delimiter", ""], msg="delimiter", outs=out),
        Case(g, "csv-table-is-dir", ["prep", "csv", "{fx}/audio", "{w}/out"], msg="audio|directory", outs=out),
        Case(g, "csv-out-read-only", ["prep", "csv", "{fx}/table.csv", "{w}/ro/out"], msg="ro|permitted|read-only",
             setup=chain(write("ro/.keep", ""), chattr("ro", "+i")), teardown=chattr("ro", "-i")),
        Case(g, "audiofolder-ok", ["prep", "audiofolder", "{fx}/audiofolder", "{w}/out"], "ok", check=man_count(3)),
        Case(g, "audiofolder-empty", ["prep", "audiofolder", "{fx}/audiofolder_empty", "{w}/out"], msg="metadata|no audio|empty", outs=out),
        Case(g, "audiofolder-out-inside", ["prep", "audiofolder", "{w}/af", "{w}/af/out", "--force"], msg="input",
             setup=copy("audiofolder", "af"), protect=["af"]),
        Case(g, "audiofolder-metadata-latin1", ["prep", "audiofolder", "{w}/af", "{w}/out"], msg="UTF-8",
             setup=chain(copy("audiofolder", "af"), write("af/metadata.csv", b"file_name,transcription\nclip0.wav,caf\xe9\n")),
             protect=["af"], outs=out),
        Case(g, "audiofolder-text-column-missing", ["prep", "audiofolder", "{fx}/audiofolder", "{w}/out", "--text-column", "words"],
             msg="words", outs=out),
        Case(g, "nemo-ok", ["prep", "nemo", "{fx}/nemo.jsonl", "{w}/out"], "ok", check=man_count(3)),
        Case(g, "nemo-latin1", ["prep", "nemo", "{fx}/nemo_latin1.jsonl", "{w}/out"], msg="UTF-8", outs=out),
        Case(g, "nemo-broken-json", ["prep", "nemo", "{fx}/nemo_broken.jsonl", "{w}/out"], msg="json|line", outs=out),
        Case(g, "nemo-out-parent", ["prep", "nemo", "{w}/d/m.jsonl", "{w}/d", "--force"], msg="input",
             setup=copy("nemo.jsonl", "d/m.jsonl"), protect=["d"]),
        Case(g, "nemo-supervisions-missing", ["prep", "nemo", "{fx}/nemo.jsonl", "{w}/out", "--supervisions", "{w}/s.jsonl"],
             msg="s.jsonl", outs=out),
        Case(g, "nemo-empty", ["prep", "nemo", "{fx}/empty.jsonl", "{w}/out"], msg="empty|no record|no usable|no utterance", outs=out),
        Case(g, "ivr-ok-from", ["prep", "ivr-prompts", "{w}/out", "--from", "{fx}/ivr"], "ok",
             check=lambda fx, w, o: None if (w / "out" / "manifest.jsonl").read_text().count("\n") >= 5 else "too few records"),
        Case(g, "ivr-from-missing", ["prep", "ivr-prompts", "{w}/out", "--from", "{w}/nope"], msg="nope", outs=out),
        Case(g, "ivr-from-empty", ["prep", "ivr-prompts", "{w}/out", "--from", "{w}/empty"], msg="empty|core-sounds|not found|no ",
             setup=write("empty/.keep", ""), outs=out),
        Case(g, "ivr-out-inside-from", ["prep", "ivr-prompts", "{w}/ivr/out", "--from", "{w}/ivr", "--force"], msg="input",
             setup=copy("ivr", "ivr"), protect=["ivr"]),
    ]


def synth_cases() -> list[Case]:
    g = "synthesize"
    sy = lambda inp="{fx}/sentences.txt", *extra: ["synthesize", inp, "{w}/out", "--backend", "espeak", "-j", "1",  # noqa: E731
                                                   "--cache-dir", "{w}/cache", *extra]
    out = ["{w}/out"]
    return [
        Case(g, "synth-ok", sy(), "ok", check=jsonl_count("out/manifest.jsonl", 2)),
        Case(g, "synth-latin1-text", sy("{fx}/sentences_latin1.txt"), msg="UTF-8", outs=out),
        Case(g, "synth-480-word-line", sy("{fx}/long_line.txt"), msg="words|long", check=_no_long_clip,
             note="one line of 480 words"),
        Case(g, "synth-empty-file", sy("{fx}/empty.jsonl"), msg="empty|no sentence|nothing", outs=out),
        Case(g, "synth-input-missing", sy("{w}/nope.txt"), msg="nope.txt", outs=out),
        Case(g, "synth-backend-unknown", ["synthesize", "{fx}/sentences.txt", "{w}/out", "--backend", "espeek"], msg="espeek", outs=out),
        Case(g, "synth-voice-unknown", sy() + ["--voice", "klingon-x"], msg="klingon", outs=out),
        Case(g, "synth-speed-0", sy() + ["--speed", "0"], msg="speed", outs=out),
        Case(g, "synth-speed-nan", sy() + ["--speed", "nan"], msg="speed", outs=out),
        Case(g, "synth-samples-0", sy() + ["-n", "0"], msg="samples", outs=out),
        Case(g, "synth-workers-0", ["synthesize", "{fx}/sentences.txt", "{w}/out", "--backend", "espeak", "-j", "0"], msg="workers", outs=out),
        Case(g, "synth-channel-bogus", sy() + ["--channel", "radio"], msg="radio|channel", outs=out),
        Case(g, "synth-out-contains-input", ["synthesize", "{w}/d/s.txt", "{w}/d", "--backend", "espeak", "--force"], msg="input",
             setup=copy("sentences.txt", "d/s.txt"), protect=["d"]),
        Case(g, "synth-force-killed-midway", sy() + ["--force", "--seed", "7"], msg="Aborted",
             setup=synth_existing, patch=failing_tts, protect=["out/manifest.jsonl", "out/wavs"],
             note="a finished output; the --force replacement is killed on its second sample"),
        Case(g, "synth-force-replaces", sy() + ["--force", "--seed", "7"], "ok", setup=synth_existing, check=synth_seed_changed),
        Case(g, "synth-other-settings-no-force", sy() + ["--seed", "7"], msg="force", setup=synth_existing,
             protect=["out"]),
        Case(g, "synth-option-no-equals", sy() + ["--option", "model"], msg="KEY=VALUE", outs=out),
        Case(g, "synth-pitch-100", sy() + ["--pitch", "100"], msg="pitch", outs=out),
        Case(g, "synth-manifest-without-text", sy("{w}/m.jsonl"), msg="text", setup=write("m.jsonl", '{"id": "a"}\n'), outs=out),
        Case(g, "synth-out-read-only", ["synthesize", "{fx}/sentences.txt", "{w}/ro/out", "--backend", "espeak", "-j", "1",
                                        "--cache-dir", "{w}/cache"], msg="ro|permitted|read-only",
             setup=chain(write("ro/.keep", ""), chattr("ro", "+i")), teardown=chattr("ro", "-i")),
    ]


def run_cases() -> list[Case]:
    g = "run/demo"
    dry = ["run", "{w}/recipe.yaml", "--dry-run"]
    return [
        Case(g, "run-dry-ok", dry, "ok"),
        Case(g, "run-test-split-train", dry + ["--set", "evaluate.test_split=train"], msg="test_split", setup=recipe()),
        Case(g, "run-test-split-synthesized", dry + ["--set", "evaluate.test_split=dev", "--set", "synthesis.splits=[train,dev]"],
             msg="test_split", setup=recipe()),
        Case(g, "run-select-splits-train", dry + ["--set", "lambda.select_splits=[train]"], msg="select_splits", setup=recipe()),
        Case(g, "run-target-missing", dry, msg="omega", setup=recipe({"domains": {"targets": ["omega"], "source_pool": "shared"}})),
        Case(g, "run-pseudo-target-missing", dry + ["--set", "lambda.pseudo_targets=[zeta]"], msg="zeta", setup=recipe()),
        Case(g, "run-dup-keys", dry, msg="duplicate|twice", setup=recipe(raw="name: again\n")),
        Case(g, "run-unknown-key", dry + ["--set", "evaluate.bootstrapp=5"], msg="bootstrapp", setup=recipe()),
        Case(g, "run-set-no-equals", dry + ["--set", "evaluate.bootstrap"], msg="KEY=VALUE|bootstrap", setup=recipe()),
        Case(g, "run-from-stage-bogus", dry + ["--from-stage", "trainn"], msg="trainn", setup=recipe()),
        Case(g, "run-stop-before-from", dry + ["--from-stage", "evaluate", "--stop-stage", "prep"], msg="stage", setup=recipe()),
        Case(g, "run-variant-missing", dry + ["--variant", "nosuch"], msg="nosuch", setup=recipe()),
        Case(g, "run-config-missing", ["run", "{w}/nope.yaml", "--dry-run"], msg="nope.yaml"),
        Case(g, "run-config-latin1", dry, msg="UTF-8", setup=write("recipe.yaml", b"# caf\xe9\nname: x\n")),
        Case(g, "run-base-model-missing", dry + ["--set", "base_model={w}/nope"], msg="nope", setup=recipe()),
        Case(g, "run-corpus-manifest-missing", dry + ["--set", "corpus.manifest={w}/nope.jsonl"], msg="nope.jsonl", setup=recipe()),
        Case(g, "run-lambda-grid-nan", dry + ["--set", "lambda.grid=[0.0,.nan]"], msg="grid|finite|nan", setup=recipe()),
        Case(g, "run-lambda-grid-empty", dry + ["--set", "lambda.grid=[]"], msg="grid", setup=recipe()),
        Case(g, "run-pseudo-target-is-target", dry + ["--set", "lambda.pseudo_targets=[alpha]"], msg="alpha", setup=recipe()),
        Case(g, "run-finetune-scheduler-typo", dry + ["--set", "finetune.lr_scheduler=cosin"], msg="lr_scheduler|cosin", setup=recipe()),
        Case(g, "run-finetune-lr-nan", dry + ["--set", "finetune.learning_rate=.nan"], msg="learning_rate", setup=recipe()),
        Case(g, "run-exp-dir-in-corpus-folder", dry + ["--set", "exp_dir={fx}/corpus"], "ok", setup=recipe(),
             note="exp/<name>/ beside the corpus files: nothing of the corpus is replaced"),
        Case(g, "demo-dry-ok", ["demo", "--dry-run", "--exp-dir", "{w}/exp"], "ok"),
        Case(g, "demo-target-missing", ["demo", "--dry-run", "--target", "nowhere", "--exp-dir", "{w}/exp"], msg="nowhere"),
        Case(g, "demo-variant-missing", ["demo", "--dry-run", "--variant", "nosuch", "--exp-dir", "{w}/exp"], msg="nosuch"),
    ]


def ct2_cases() -> list[Case]:
    g = "import-ct2/shorten"
    sh = lambda model="{fx}/whisper", out="{w}/short", s="8", *extra: ["shorten-audio-context", model, out, "--seconds", s, *extra]  # noqa: E731
    return [
        Case(g, "ct2-src-missing", ["import-ct2", "{w}/nope", "{w}/out"], msg="nope", outs=["{w}/out"]),
        Case(g, "ct2-src-empty", ["import-ct2", "{w}/empty", "{w}/out"], msg="empty|model.bin|config", setup=write("empty/.keep", ""),
             outs=["{w}/out"]),
        Case(g, "ct2-bundled-bogus", ["import-ct2", "--bundled", "huge.xx", "{w}/out"], msg="huge.xx", outs=["{w}/out"]),
        Case(g, "ct2-out-is-src", ["import-ct2", "{w}/src", "{w}/src", "--force"], msg="input", setup=write("src/model.bin", b"x"),
             protect=["src"]),
        Case(g, "ct2-src-is-hf-model", ["import-ct2", "{fx}/whisper", "{w}/out"], msg="model.bin|ctranslate2|CTranslate2",
             outs=["{w}/out"]),
        Case(g, "ct2-no-args", ["import-ct2"], msg="OUT_DIR"),
        Case(g, "shorten-ok", sh(), "ok", check=_whisper_window(8)),
        Case(g, "shorten-0", sh(s="0"), msg="seconds", outs=["{w}/short"]),
        Case(g, "shorten-31", sh(s="31"), msg="seconds|30", outs=["{w}/short"]),
        Case(g, "shorten-llama", sh(model="{fx}/base"), msg="whisper|base", outs=["{w}/short"]),
        Case(g, "shorten-out-is-model", sh("{w}/model", "{w}/model", "8", "--force"), msg="input", setup=copy("whisper", "model"),
             protect=["model"]),
        Case(g, "shorten-model-missing", sh(model="{w}/nope"), msg="nope", outs=["{w}/short"]),
        Case(g, "shorten-out-exists", sh(), msg="exists", setup=write("short/keep.txt", "mine"), protect=["short"]),
    ]


def all_cases() -> list[Case]:
    cases = (merge_cases() + vector_cases() + apply_cases() + finetune_cases() + transcribe_cases() + evaluate_cases()
             + prep_cases() + synth_cases() + run_cases() + ct2_cases())
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    for c in cases:  # run/demo dry runs need the recipe config unless they set up their own
        if c.group == "run/demo" and c.setup is None and c.argv[:2] == ["run", "{w}/recipe.yaml"]:
            c.setup = recipe()
    return cases
