"""The comparison and model-making logic of benchmarks/merge_vs_mergekit.py (no merges run, no timing asserted)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "merge_vs_mergekit.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("merge_vs_mergekit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


W = [[1.0, -2.0], [0.5, 4.0]]


def _write(dirpath: Path, shards: list[dict]) -> Path:
    dirpath.mkdir()
    for i, tensors in enumerate(shards):
        save_file(tensors, dirpath / f"model-{i:05d}.safetensors")
    return dirpath


def _pair(tmp_path, w_b, extra_b=None):
    tmp_path.mkdir(exist_ok=True)
    a = _write(tmp_path / "a", [{"w": torch.tensor(W)}, {"b": torch.tensor([0.25, 0.0])}])
    b = _write(tmp_path / "b", [{"w": w_b}, {"b": torch.tensor([0.25, 0.0]), **(extra_b or {})}])
    return a, b


def test_identical_checkpoints_compare_equal(bench, tmp_path):
    c = bench.compare_checkpoints(*_pair(tmp_path, torch.tensor(W)))
    assert (c.n_compared, c.n_identical, c.max_abs_diff, c.max_diff_eps) == (2, 2, 0.0, 0.0)
    assert c.within_fp32_rounding


def test_a_difference_is_caught_and_located(bench, tmp_path):
    w = torch.tensor(W)
    w[1, 0] = 0.5 + 2**-10  # exactly representable: |diff| = 2^-10
    c = bench.compare_checkpoints(*_pair(tmp_path, w))
    assert c.max_abs_diff == 2**-10 and c.worst_tensor == "w"
    assert c.n_identical == 1
    # 2^-10 / (eps32 · max|w|) = 2^-10 / (2^-23 · 4) = 2048 float32 epsilons: far beyond rounding.
    assert c.max_diff_eps == 2048.0
    assert not c.within_fp32_rounding
    assert "max |diff| 0.000977 in w" in c.summary()


def test_one_ulp_counts_as_rounding(bench, tmp_path):
    w = torch.tensor(W)
    w[1, 1] = torch.nextafter(torch.tensor(4.0), torch.tensor(5.0))  # 4 + 2^-21, one ulp
    c = bench.compare_checkpoints(*_pair(tmp_path, w))
    # scale is max(|a|, |b|) = 4 + 2^-21, so just under one epsilon of it
    assert c.max_abs_diff == 2**-21 and c.max_diff_eps == pytest.approx(1.0, rel=1e-6)
    assert c.within_fp32_rounding


def test_missing_mismatched_and_nonfinite_tensors_fail(bench, tmp_path):
    w = torch.tensor(W)
    w[0, 0] = float("nan")
    c = bench.compare_checkpoints(*_pair(tmp_path, w, extra_b={"lm_head": torch.zeros(2)}))
    assert c.only_in_b == ["lm_head"] and c.only_in_a == []
    assert c.nonfinite == ["w"]
    assert not c.within_fp32_rounding
    d = bench.compare_checkpoints(*_pair(tmp_path / "f64", torch.tensor(W, dtype=torch.float64)))
    assert d.mismatched == ["w: (2, 2)/torch.float32 vs (2, 2)/torch.float64"]
    assert not d.within_fp32_rounding


def test_finetunes_are_deterministic_sparse_and_keep_integers(bench, tmp_path):
    base = _write(tmp_path / "base", [{"w": torch.randn(100, 100), "ids": torch.arange(4)}])
    (base / "config.json").write_text("{}")
    spec = bench.FinetuneSpec("ft", seed=7, sigma=0.1, density=0.1)
    one = load_file(bench.make_finetune(base, tmp_path / "ft1", spec) / "model.safetensors")
    two = load_file(bench.make_finetune(base, tmp_path / "ft2", spec) / "model.safetensors")
    orig = load_file(base / "model-00000.safetensors")
    assert torch.equal(one["w"], two["w"]) and torch.equal(one["ids"], orig["ids"])
    changed = float((one["w"] != orig["w"]).float().mean())
    assert 0.07 < changed < 0.13  # Bernoulli(0.1) over 10^4 entries: std 0.003
    assert (tmp_path / "ft1" / "config.json").is_file()


def test_merge_config_is_mergekit_format(bench, tmp_path):
    cfg = yaml.safe_load(bench.write_merge_config("ties", Path("/m/base"), [Path("/m/a"), Path("/m/b"), Path("/m/c")],
                                                  tmp_path / "ties.yaml").read_text())
    assert cfg == {
        "models": [{"model": "/m/a", "parameters": {"weight": 1.0, "density": 0.5}},
                   {"model": "/m/b", "parameters": {"weight": 0.5, "density": 0.5}},
                   {"model": "/m/c", "parameters": {"weight": 0.8, "density": 0.5}}],
        "base_model": "/m/base", "merge_method": "ties", "dtype": "float32",
    }


def test_tied_topk_cut_marks_only_a_straddling_tie(bench):
    base = torch.zeros(6)
    # |delta| = 3, 2, 2, 1, 0, 2; density 0.5 keeps k = 3: the 3 and two of the three 2s -> tied cut
    tied = bench.tied_topk_cut(base, torch.tensor([3.0, -2.0, 2.0, 1.0, 0.0, 2.0]), 0.5)
    assert tied.tolist() == [False, True, True, False, False, True]
    # |delta| = 3, 2, 2, 1, 0, 0.5: the cut keeps exactly {3, 2, 2} -> nothing arbitrary
    assert bench.tied_topk_cut(base, torch.tensor([3.0, -2.0, 2.0, 1.0, 0.0, 0.5]), 0.5) is None


def test_exempt_elements_are_counted_apart(bench, tmp_path):
    w = torch.tensor(W)
    w[0, 1] = -2.5  # differs by 0.5 at flat index 1
    w[1, 1] = 4.25  # differs by 0.25 at flat index 3, which is exempt
    allowed = torch.tensor([False, False, False, True])
    c = bench.compare_checkpoints(*_pair(tmp_path, w), exempt=lambda name: allowed if name == "w" else None)
    assert (c.n_differing, c.n_exempt, c.max_abs_diff, c.worst_tensor) == (1, 1, 0.5, "w")
    assert not c.within_fp32_rounding


def test_peak_rss_is_the_childs_own(bench, tmp_path):
    # 256 MB resident here must not show up in a child that allocates nothing (Linux's ru_maxrss of a child
    # starts from the image it was forked from); a child that fills 256 MB must show at least that.
    ballast = torch.ones(64 << 20)  # float32: 256 MiB, every page touched
    idle = bench.run_measured([sys.executable, "-S", "-c", "pass"], tmp_path / "idle.log")
    busy = bench.run_measured([sys.executable, "-S", "-c", "b = bytearray(256 << 20); b[::4096] = b'x' * (65536)"],
                              tmp_path / "busy.log")
    assert float(ballast.sum()) == 64 << 20
    assert idle[3] == 0 and busy[3] == 0
    assert idle[1] < 100e6
    assert busy[1] >= 256 << 20
    assert idle[2] >= 0.0 and busy[0] > 0.0
