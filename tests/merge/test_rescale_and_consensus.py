"""Rescaling of sparsified deltas by each norm, and breadcrumbs_ties' sign consensus, against hand values.

Merges run through the public ``merge`` on tiny one-tensor checkpoints written here.
"""

import json
import math

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.io.checkpoint import load_state_dict, save_checkpoint
from asr_analogy.merge import merge

T = torch.tensor


def _model(path, values):
    save_checkpoint({"w": T(values)}, path)
    (path / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return str(path)


def _merge(tmp_path, cfg):
    return load_state_dict(merge(cfg, tmp_path / "out", progress=False, force=True))["w"]


# base [1, 1, 1, 1], fine-tune [3, -1, 2, 2]: delta d = [2, -2, 1, 1]. magnitude_prune at density 0.5 keeps
# [2, -2, 0, 0] and rescales it so its norm matches d's:
#   l1:   |d| = 6,        |kept| = 4:        factor 6/4 = 1.5          -> base + [3, -3, 0, 0]
#   l2:   |d| = sqrt(10), |kept| = sqrt(8):  factor sqrt(5/4)          -> base + [sqrt 5, -sqrt 5, 0, 0]
#         (without the square roots the factor would be 10/8 = 1.25)
#   linf: max 2 both:                        factor 1                  -> base + [2, -2, 0, 0]
RESCALE_CASES = [
    ("l1", [4.0, -2.0, 1.0, 1.0]),
    ("l2", [1 + math.sqrt(5), 1 - math.sqrt(5), 1.0, 1.0]),
    ("linf", [3.0, -1.0, 1.0, 1.0]),
    (False, [3.0, -1.0, 1.0, 1.0]),
]


@pytest.mark.parametrize("norm,expected", RESCALE_CASES)
def test_magnitude_prune_rescale_restores_the_named_norm(tmp_path, norm, expected):
    cfg = {
        "merge_method": "magnitude_prune",
        "base_model": _model(tmp_path / "base", [1.0, 1.0, 1.0, 1.0]),
        "models": [{"model": _model(tmp_path / "ft", [3.0, -1.0, 2.0, 2.0]), "parameters": {"density": 0.5}}],
        "parameters": {"rescale": norm},
    }
    assert_close(_merge(tmp_path, cfg), T(expected))


def test_breadcrumbs_ties_keeps_only_deltas_that_agree_with_the_elected_sign(tmp_path):
    # density 0.5, gamma 0.25 on 4 entries: drop the largest (int(1.0) = 1) and the smallest, keep 2.
    #   a: delta [3, -2, 1, 0.5]   -> [0, -2, 1, 0]
    #   b: delta [-1, 1.5, -0.25, 4] -> [-1, 1.5, 0, 0]
    # mass [-1, -0.5, 1, 0]: elected signs [-, -, +, +]; at entry 1 b's +1.5 disagrees and is left out, so
    # the merged delta is [-1, -2, 1, 0] (not normalized). Without consensus it would be [-1, -0.5, 1, 0].
    base = [1.0, 2.0, 3.0, 4.0]
    a = [b + d for b, d in zip(base, [3.0, -2.0, 1.0, 0.5])]
    b_ = [b + d for b, d in zip(base, [-1.0, 1.5, -0.25, 4.0])]
    params = {"density": 0.5, "gamma": 0.25}
    cfg = {
        "merge_method": "breadcrumbs_ties",
        "base_model": _model(tmp_path / "base", base),
        "models": [
            {"model": _model(tmp_path / "a", a), "parameters": params},
            {"model": _model(tmp_path / "b", b_), "parameters": params},
        ],
    }
    assert_close(_merge(tmp_path, cfg), T([0.0, 0.0, 4.0, 4.0]))
    # plain breadcrumbs sums both: [1 - 1, 2 - 0.5, 3 + 1, 4 + 0]
    cfg["merge_method"] = "breadcrumbs"
    assert_close(_merge(tmp_path, cfg), T([0.0, 1.5, 4.0, 4.0]))
