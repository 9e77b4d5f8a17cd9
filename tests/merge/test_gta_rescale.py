"""The generalized task-arithmetic kernel's rescaling and density handling, against hand values.

``rescale_norm`` maps a ``rescale`` setting to the norm restored; merges run through the public ``merge`` on
tiny one-tensor checkpoints, where the rescale factor (||delta|| / ||kept||) can be worked out by hand.
"""

import json

import pytest
import torch

from asr_analogy.errors import MergeError
from asr_analogy.io.checkpoint import load_state_dict, save_checkpoint
from asr_analogy.merge import merge, stream
from asr_analogy.merge.kernels.gta import rescale_norm

from .test_bad_input import _nothing_written

T = torch.tensor


def _model(path, values, dtype=torch.float32):
    save_checkpoint({"w": T(values, dtype=dtype)}, path)
    (path / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return str(path)


def _merge(tmp_path, cfg, **kw):
    return load_state_dict(merge(cfg, tmp_path / "out", progress=False, force=True, **kw))["w"]


def _one(tmp_path, method, base, ft, dtype=torch.float32, parameters=None, **model_params):
    """``method`` on one fine-tune ``ft`` of ``base``, with per-model and global parameters."""
    return {"merge_method": method, "base_model": _model(tmp_path / "base", base, dtype),
            "models": [{"model": _model(tmp_path / "ft", ft, dtype), "parameters": model_params}],
            "parameters": parameters or {}}


@pytest.mark.parametrize("sparsify,value,expected", [
    (None, True, None),  # nothing sparsified: nothing to rescale
    (None, "l2", None),
    ("magnitude", None, None),
    ("magnitude", False, None),
    ("magnitude", "false", None),
    ("random", True, "inverse"),  # DARE: 1/density
    ("random", "true", "inverse"),
    ("magnitude", True, "l1"),  # otherwise the l1 norm
    ("outliers", "true", "l1"),
    ("random", "l2", "l2"),
    ("outliers", "linf", "linf"),
])
def test_rescale_norm_of_each_setting(sparsify, value, expected):
    assert rescale_norm(sparsify, value) == expected


def test_magnitude_prune_rescale_true_matches_the_l1_norm(tmp_path):
    # delta [2, -2, 1, 1], density 0.5 keeps [2, -2, 0, 0]: l1 factor 6/4 = 1.5 (1/density would give 2)
    cfg = _one(tmp_path, "magnitude_prune", [1.0] * 4, [3.0, -1.0, 2.0, 2.0], parameters={"rescale": True},
               density=0.5)
    assert torch.equal(_merge(tmp_path, cfg), T([4.0, -2.0, 1.0, 1.0]))
    cfg["parameters"]["rescale"] = "true"
    assert torch.equal(_merge(tmp_path, cfg), T([4.0, -2.0, 1.0, 1.0]))


def test_breadcrumbs_linf_rescale_restores_the_dropped_maximum(tmp_path):
    # delta [4, -2, 1, 0.5]; density 0.5, gamma 0.25 drops the largest (4) and the smallest (0.5): kept
    # [0, -2, 1, 0], whose max is 2 against the delta's 4: factor exactly 2 -> [0, -4, 2, 0]
    cfg = _one(tmp_path, "breadcrumbs", [1.0] * 4, [5.0, -1.0, 2.0, 1.5], parameters={"rescale": "linf"},
               density=0.5, gamma=0.25)
    assert torch.equal(_merge(tmp_path, cfg), T([1.0, -3.0, 3.0, 1.0]))


def test_a_kept_norm_below_1e_7_is_not_rescaled(tmp_path):
    # delta [5, 1e-8, 2e-8, 0]: breadcrumbs keeps [0, 1e-8, 2e-8, 0], l1 3e-8 < 1e-7: factor 1, not 5 / 3e-8
    cfg = _one(tmp_path, "breadcrumbs", [0.0] * 4, [5.0, 1e-8, 2e-8, 0.0], parameters={"rescale": "l1"},
               density=0.5, gamma=0.25)
    assert torch.equal(_merge(tmp_path, cfg), T([0.0, 1e-8, 2e-8, 0.0]))


def test_a_kept_norm_of_exactly_1e_7_is_rescaled(tmp_path):
    # float64 delta [1, 1e-7, 0, 0]: breadcrumbs keeps [0, 1e-7, 0, 0], l1 exactly 1e-7 (not below it):
    # factor (1 + 1e-7) / 1e-7
    cfg = _one(tmp_path, "breadcrumbs", [0.0] * 4, [1.0, 1e-7, 0.0, 0.0], torch.float64,
               parameters={"rescale": "l1"}, density=0.5, gamma=0.25)
    factor = (1.0 + 1e-7) / 1e-7
    expected = T([0.0, 1e-7 * factor, 0.0, 0.0], dtype=torch.float64)
    assert torch.equal(_merge(tmp_path, cfg), expected)


def test_float64_rescale_norms_are_taken_in_float64(tmp_path):
    # base [1 + 2^-30, 1, 1, 1] (not a float32 value), fine-tune [3, -1, 2, 2]: delta [2 - e, -2, 1, 1] with
    # e = 2^-30; density 0.5 keeps [2 - e, -2, 0, 0]: l1 factor (6 - e) / (4 - e), not 6/4
    e = 2.0 ** -30
    cfg = _one(tmp_path, "magnitude_prune", [1.0 + e, 1.0, 1.0, 1.0], [3.0, -1.0, 2.0, 2.0], torch.float64,
               parameters={"rescale": "l1"}, density=0.5)
    f = (6.0 - e) / (4.0 - e)
    expected = T([(1.0 + e) + (2.0 - e) * f, 1.0 + -2.0 * f, 1.0, 1.0], dtype=torch.float64)
    assert torch.equal(_merge(tmp_path, cfg), expected)


@pytest.mark.parametrize("norm", ["l1", "l2", "linf", True])
def test_dare_norm_rescale_names_an_input_holding_nan_in_a_later_chunk(tmp_path, norm):
    # the NaN (flat index 3) is in the second chunk of 2: the norm pass meets it first
    cfg = _one(tmp_path, "dare_linear", [1.0] * 4, [2.0, 3.0, 1.0, float("nan")], parameters={"rescale": norm},
               density=0.5)
    with pytest.raises(MergeError) as err:
        _merge(tmp_path, cfg, chunk_elements=2)
    assert str(err.value) == f"model {tmp_path / 'ft'}: tensor 'w' contains NaN (first at flat index 3)"
    _nothing_written(tmp_path, tmp_path / "out")


def test_dare_norm_rescale_names_the_nan_met_first_chunk_by_chunk(tmp_path):
    # a (the first model) holds a NaN at flat index 3 (second chunk), b at index 1 (first chunk): a's norm
    # pass meets a NaN, and the inputs are then searched chunk by chunk: b's is named
    cfg = _one(tmp_path, "dare_linear", [1.0] * 4, [2.0, 3.0, 1.0, float("nan")], parameters={"rescale": "l1"},
               density=0.5)
    cfg["models"].append({"model": _model(tmp_path / "b", [1.0, float("nan"), 1.0, 1.0]),
                          "parameters": {"density": 0.5}})
    with pytest.raises(MergeError) as err:
        _merge(tmp_path, cfg, chunk_elements=2)
    assert str(err.value) == f"model {tmp_path / 'b'}: tensor 'w' contains NaN (first at flat index 1)"


@pytest.mark.parametrize("method,parameters", [
    ("magnitude_prune", {}),
    ("breadcrumbs", {"gamma": 0.25}),
    ("dare_linear", {"rescale": "l1"}),
])
def test_a_model_at_density_1_is_read_in_one_pass(tmp_path, monkeypatch, method, parameters):
    # density 1 keeps everything: no magnitude-cut or norm pass, so the base and the fine-tune are each loaded
    # once per chunk (2 chunks of 2), and the whole delta [4, -2, 1, 0.5] is added
    loads = []
    real_load = stream.Streamer.load

    def load(self, inp, name, s, e, *rest, **kw):
        loads.append((name, s, e))
        return real_load(self, inp, name, s, e, *rest, **kw)

    monkeypatch.setattr(stream.Streamer, "load", load)
    cfg = _one(tmp_path, method, [1.0] * 4, [5.0, -1.0, 2.0, 1.5], parameters=parameters, density=1.0)
    assert torch.equal(_merge(tmp_path, cfg, chunk_elements=2), T([5.0, -1.0, 2.0, 1.5]))
    assert sorted(loads) == [("w", 0, 2), ("w", 0, 2), ("w", 2, 4), ("w", 2, 4)]


def test_breadcrumbs_at_density_1_keeps_the_whole_delta(tmp_path):
    # density 1 is no sparsification at all: gamma's top entries are not dropped either (as in mergekit)
    cfg = _one(tmp_path, "breadcrumbs", [1.0] * 4, [5.0, -1.0, 2.0, 1.5], density=1.0, gamma=0.25)
    assert torch.equal(_merge(tmp_path, cfg), T([5.0, -1.0, 2.0, 1.5]))


def test_a_model_at_density_1_does_not_stop_the_sparsification_of_the_next(tmp_path):
    # a: delta [1, 0, -2, 0.5] kept whole; b: delta [-0.5, 1, 1, -2] at density 0.5 -> [0, 1, 0, -2]
    # (ties at |1|: the lower flat index is kept)
    base = [1.0, 2.0, 3.0, 4.0]
    cfg = {"merge_method": "magnitude_prune", "base_model": _model(tmp_path / "base", base),
           "models": [{"model": _model(tmp_path / "a", [2.0, 2.0, 1.0, 4.5]), "parameters": {"density": 1.0}},
                      {"model": _model(tmp_path / "b", [0.5, 3.0, 4.0, 2.0]), "parameters": {"density": 0.5}}]}
    assert torch.equal(_merge(tmp_path, cfg), T([2.0, 3.0, 1.0, 2.5]))
