"""diagnose: per-layer report and heatmaps, checked against the hand-computed measures of small vectors."""

import json
import math

import pytest
from click.testing import CliRunner
import torch

from asr_analogy.cli import main
from asr_analogy.errors import MergeError
from asr_analogy.merge import TaskVector
from asr_analogy.store.diagnose import diagnose, layer_group


def t(*xs):
    return torch.tensor(xs)


def test_layer_groups():
    assert layer_group("model.encoder.layers.3.fc1.weight") == ("encoder", "encoder.3")
    assert layer_group("model.decoder.embed_tokens.weight") == ("decoder", "decoder.rest")
    assert layer_group("model.layers.10.mlp.up_proj.weight") == ("", "layer.10")
    assert layer_group("lm_head.weight") == ("", "rest")


def test_report_matches_hand_computation(tmp_path):
    va = TaskVector({"encoder.layers.0.w": t(3.0, -2.0, 0.5, 1.0), "encoder.layers.1.w": t(1.0, 1.0)})
    vb = TaskVector({"encoder.layers.0.w": t(-1.0, -4.0, 2.0, 0.1), "encoder.layers.1.w": t(-1.0, -1.0)})
    paths = [va.save(tmp_path / "a.safetensors"), vb.save(tmp_path / "b.safetensors")]
    result = CliRunner().invoke(main, ["diagnose", *map(str, paths), "--out", str(tmp_path / "d"), "--top-k", "0.5",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    (pair,) = report["pairs"]
    l0, l1 = pair["layers"]["encoder.0"], pair["layers"]["encoder.1"]
    assert math.isclose(l0["cosine"], 6.1 / math.sqrt(14.25 * 21.01))
    assert l0["sign_conflict"] == 0.0 and math.isclose(l0["jaccard"], 1 / 3)
    assert math.isclose(l1["cosine"], -1.0) and l1["sign_conflict"] == 1.0 and l1["jaccard"] == 1.0
    # over the whole vector: dot 6.1 - 2, top-k: layer 0 gives 1 shared of 3, layer 1 one shared (conflicting) of 1
    whole = pair["all"]
    assert math.isclose(whole["cosine"], 4.1 / math.sqrt(16.25 * 23.01))
    assert whole["sign_conflict"] == 0.5 and whole["jaccard"] == 0.5
    assert math.isclose(whole["norm_a"], math.sqrt(16.25)) and pair["encoder"] == whole
    for name in ("cosine", "sign_conflict", "jaccard"):
        assert (tmp_path / "d" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "a / b: cosine" in result.output


def test_vectors_of_different_models_are_refused(tmp_path):
    va = TaskVector({"w": t(1.0, 2.0)}).save(tmp_path / "a.safetensors")
    vb = TaskVector({"v": t(1.0, 2.0)}).save(tmp_path / "b.safetensors")
    with pytest.raises(MergeError, match="hold different tensors"):
        diagnose([va, vb], progress=False)


def test_the_package_name_diagnose_is_always_the_submodule():
    import asr_analogy.store as store
    import asr_analogy.store.diagnose as module

    assert store.diagnose is module and callable(module.diagnose)
    assert "diagnose" not in store.__all__
