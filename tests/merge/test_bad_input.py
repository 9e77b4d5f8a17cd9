"""Bad input: each case gives a clear error naming model and tensor, and writes nothing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asr_analogy.errors import CheckpointError, ConfigError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import apply_vector, merge, vector

from .conftest import declared, write_model

REPO = Path(__file__).resolve().parents[2]


def _ta(base, *models):
    return {"merge_method": "task_arithmetic", "base_model": str(base), "models": [{"model": str(m)} for m in models]}


def _nothing_written(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")]  # no temp dirs left


def test_different_tensor_sets(models, tmp_path):
    odd = write_model(tmp_path / "odd", {"layer.w": torch.zeros(4), "layer.count": torch.tensor([1]), "extra.w": torch.zeros(1)})
    with pytest.raises(MergeError, match=r"model .*odd has tensor 'extra\.w', which base .*base lacks"):
        merge(_ta(models["base"], odd), tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")
    short = write_model(tmp_path / "short", {"layer.w": torch.zeros(4)})
    with pytest.raises(MergeError, match=r"model .*short has no tensor 'layer\.count'"):
        merge(_ta(models["base"], short), tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_different_shapes_and_dtypes(models, tmp_path):
    wide = write_model(tmp_path / "wide", {"layer.w": torch.zeros(5), "layer.count": torch.tensor([1])})
    with pytest.raises(MergeError, match=r"tensor 'layer\.w': shape \[5\] in model .*wide but \[4\] in base"):
        merge(_ta(models["base"], wide), tmp_path / "out", progress=False)
    half = write_model(tmp_path / "half", {"layer.w": torch.zeros(4, dtype=torch.float16), "layer.count": torch.tensor([1])})
    with pytest.raises(MergeError, match=r"tensor 'layer\.w': dtype torch.float16 in model .*half .*set dtype"):
        merge(_ta(models["base"], half), tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")
    # with an explicit dtype, models stored in different precisions merge
    out = merge(dict(_ta(models["base"], half), dtype="float32"), tmp_path / "out", progress=False)
    assert torch.equal(load_state_dict(out)["layer.w"], torch.zeros(4))


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_linear", "breadcrumbs", "linear", "slerp"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_in_an_input(models, tmp_path, method, bad):
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w[2] = bad
    broken = write_model(tmp_path / "broken", {"layer.w": w, "layer.count": torch.tensor([1])})
    cfg = {"merge_method": method, "base_model": str(models["base"]), "seed": 0, "parameters": {"t": 0.5},
           "models": [{"model": str(broken), "parameters": declared(method, density=0.5, weight=1.0)}, {"model": str(models["a"])}]}
    if method == "slerp":
        cfg["models"] = cfg["models"][:1]
    if method != "slerp":
        cfg["parameters"] = {}
    kind = "NaN" if bad != bad else "Inf"
    with pytest.raises(MergeError, match=rf"model .*broken: tensor 'layer\.w' contains {kind} \(first at flat index 2\)"):
        merge(cfg, tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_nan_in_a_tensor_that_is_only_copied(models, tmp_path):
    broken = write_model(tmp_path / "broken", {"layer.w": torch.tensor([float("nan")] * 4), "layer.count": torch.tensor([1])})
    cfg = {"merge_method": "task_arithmetic", "base_model": str(broken), "models": [{"model": str(models["a"])}],
           "exclude": ["layer"]}
    with pytest.raises(MergeError, match=r"broken: tensor 'layer\.w' contains NaN"):
        merge(cfg, tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_missing_and_truncated_safetensors(models, tmp_path):
    os.unlink(models["b"] / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"b: no model\.safetensors"):
        merge(_ta(models["base"], models["b"]), tmp_path / "out", progress=False)
    path = models["a"] / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=r"a/model\.safetensors: truncated safetensors file"):
        merge(_ta(models["base"], models["a"]), tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_existing_output_is_left_unchanged(models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="already exists; pass --force"):
        merge(_ta(models["base"], models["a"]), out, progress=False)
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    merge(_ta(models["base"], models["a"]), out, force=True, progress=False)
    assert "model.safetensors" in [p.name for p in out.iterdir()]


def test_vector_with_another_base_is_refused(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    with pytest.raises(MergeError, match=r"does not belong to base .*c: fingerprint sha256-full:\w+ differs from sha256-full:\w+: the weights are not the same"):
        apply_vector(models["c"], tau, tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")
    out = apply_vector(models["c"], tau, tmp_path / "out", allow_other_base=True, progress=False)
    assert torch.equal(load_state_dict(out)["layer.w"], torch.tensor([1.0, 1.0, 1.5, 4.0]))  # c + (a - base)


def test_exception_midway_leaves_no_output(models, tmp_path, monkeypatch):
    from asr_analogy.io import checkpoint

    calls = {"n": 0}
    original = checkpoint.ShardedWriter.write

    def failing(self, name, chunk):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return original(self, name, chunk)

    monkeypatch.setattr(checkpoint.ShardedWriter, "write", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        merge(_ta(models["base"], models["a"]), tmp_path / "out", progress=False, shard_size=8)
    _nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.spawns
def test_cli_errors_exit_non_zero_with_the_message(models, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_ta(models["base"], models["a"])) + "\n")
    (tmp_path / "out").mkdir()
    proc = subprocess.run([sys.executable, "-m", "asr_analogy", "merge", str(cfg), str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "already exists; pass --force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.spawns
def test_sigkill_midway_leaves_no_output(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {f"layers.{i}.w": torch.randn(64, 64, generator=gen) for i in range(40)}
    base = write_model(tmp_path / "base", tensors)
    ft = write_model(tmp_path / "ft", {k: v + 1 for k, v in tensors.items()})
    out = tmp_path / "out"
    # a merge slowed down per tensor, so that it is surely still running when killed
    script = (
        "import dataclasses, time\n"
        "from asr_analogy.merge import merge\n"
        "from asr_analogy.merge.methods import METHODS\n"
        "orig = METHODS['task_arithmetic']\n"
        "def slow(*a, **k):\n"
        "    time.sleep(0.05)\n"
        "    yield from orig.kernel(*a, **k)\n"
        "METHODS['task_arithmetic'] = dataclasses.replace(orig, kernel=slow)\n"
        f"merge({{'merge_method': 'task_arithmetic', 'base_model': {str(base)!r}, 'models': [{{'model': {str(ft)!r}}}]}},"
        f" {str(out)!r}, shard_size='20KB', progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until some shards are on disk in the temp dir
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
            if temps and len(list(temps[0].glob("*.safetensors"))) >= 3:
                break
            assert proc.poll() is None, "merge finished before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("merge never started writing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
    assert stale, "the killed merge left no temporary to clean"
    # the next run of the same output removes the dead run's temporary, and only that
    merge({"merge_method": "task_arithmetic", "base_model": str(base), "models": [{"model": str(ft)}]}, out,
          progress=False)
    assert (out / "model.safetensors").is_file()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf")])
def test_apply_vector_refuses_a_non_finite_scale_before_any_work(models, tmp_path, scale):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    with pytest.raises(ConfigError, match=r"scale .* is not a finite number"):
        apply_vector(models["base"], tau, tmp_path / "out", scale=scale, progress=False)
    assert not (tmp_path / "out").exists()


def test_apply_vector_refuses_a_scale_that_overflows(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    with pytest.raises(MergeError, match=r"tensor '.*': merged values overflow torch.float32 \(inputs are finite\)"):
        apply_vector(models["base"], tau, tmp_path / "out", scale=1e39, progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_apply_vector_refuses_a_vector_holding_nan(models, tmp_path):
    from safetensors.torch import load_file, save_file

    from asr_analogy.merge import read_vector_metadata

    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    tensors, meta = load_file(tau), read_vector_metadata(tau)
    name = sorted(tensors)[0]
    tensors[name].view(-1)[3] = float("nan")
    save_file(tensors, tmp_path / "nan.safetensors", metadata=meta)
    with pytest.raises(MergeError, match=rf"nan\.safetensors.*tensor {name!r} contains NaN \(first at flat index 3\)"):
        apply_vector(models["base"], tmp_path / "nan.safetensors", tmp_path / "out", progress=False)
    _nothing_written(tmp_path, tmp_path / "out")


def test_vector_refuses_an_output_inside_its_inputs(models, tmp_path):
    before = {p: p.read_bytes() for p in Path(models["base"]).rglob("*") if p.is_file()}
    for out in (models["base"], Path(models["base"]) / "tau.safetensors"):
        with pytest.raises(OutputExistsError, match="the input"):
            vector(models["a"], models["base"], out, force=True, progress=False)
    assert {p: p.read_bytes() for p in Path(models["base"]).rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("where", ["base", "parent", "inside"])
def test_merge_refuses_an_output_that_is_contains_or_lies_inside_an_input(models, tmp_path, where):
    base = Path(models["base"])
    out = {"base": base, "parent": base.parent, "inside": base / "merged"}[where]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(OutputExistsError, match=r"(is|contains|lies inside) the input"):
        merge(_ta(models["base"], models["a"]), out, force=True, progress=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
