"""The parameters a preset declares, ``Param`` in words and with another default, and the norm-matching rescale
over several chunks and at small norms: hand values."""

import math

import pytest
import torch

from asr_analogy.merge import merge
from asr_analogy.merge.kernels import gta
from asr_analogy.merge.params import CHOICE, FLAG, Param
from asr_analogy.io.checkpoint import load_state_dict

from .conftest import write_model

T = torch.tensor


@pytest.mark.parametrize("sparsify,consensus,names", [
    (None, None, ["weight", "lambda", "normalize", "int8_mask"]),
    ("magnitude", None, ["weight", "lambda", "normalize", "int8_mask", "density", "rescale"]),
    ("outliers", "count", ["weight", "lambda", "normalize", "int8_mask", "density", "rescale", "gamma", "consensus"]),
    ("random", "sum", ["weight", "lambda", "normalize", "int8_mask", "density", "rescale", "consensus"]),
])
def test_a_preset_declares_only_what_it_reads(sparsify, consensus, names):
    m = gta.preset("p", sparsify, consensus, paper="Someone 2024")
    assert (m.name, m.layout, m.paper) == ("p", "deltas", "Someone 2024")
    assert [p.name for p in m.params] == names
    assert m.kernel.func is gta.merge_tensor and m.kernel.keywords == {"sparsify": sparsify}
    defaults = {p.name: p.default for p in m.params}
    assert defaults["normalize"] is False and defaults.get("rescale", False) is False
    if consensus is not None:
        assert defaults["consensus"] == consensus


def test_a_preset_sets_its_own_defaults():
    m = gta.preset("q", "random", None, normalize=True, rescale=True, paper="x")
    assert m.param("normalize").default is True and m.param("rescale").default is True
    assert m.param("gamma") is None and m.param("consensus") is None


def test_with_default_changes_the_default_only():
    p = Param("p", 0.5, "doc", kind=CHOICE, per_model=True, low=0.0, high=2.0, low_open=True, high_open=False,
              choices=(1, 2))
    q = p.with_default(7)
    assert q == Param("p", 7, "doc", CHOICE, True, 0.0, 2.0, True, False, (1, 2))
    r = Param("r", 1.0, "d2", low=-1.0, high=1.0, low_open=False, high_open=True).with_default(0.0)
    assert (r.name, r.default, r.doc, r.kind, r.per_model, r.low, r.high, r.low_open, r.high_open, r.choices) == (
        "r", 0.0, "d2", "number", False, -1.0, 1.0, False, True, ())


@pytest.mark.parametrize("param,words", [
    (Param("a", 1, ""), "a finite number"),
    (Param("a", 1, "", low=0.0), "a number in [0, inf)"),
    (Param("a", 1, "", high=1.5), "a number in (-inf, 1.5]"),
    (Param("a", 1, "", low=0.0, high=1.0, low_open=True), "a number in (0, 1]"),
    (Param("a", 1, "", low=0.0, high=1.0, high_open=True), "a number in [0, 1)"),
    (Param("a", 1, "", kind=FLAG), "true or false"),
    (Param("a", 1, "", kind=CHOICE, choices=(True, False, "l1", 2)), "one of true, false, l1, 2"),
])
def test_allowed_values_in_words(param, words):
    assert param.allowed() == words


# Rescale by a norm over chunks of one entry each: base 0, delta d = [2, -2, 1, 1] times a scale;
# magnitude_prune at density 0.5 keeps [2, -2, 0, 0]. l1 factor 6/4, l2 sqrt(10/8), linf 1, each summed over
# all four chunks (the last chunk alone holds a pruned 1: its factor would be 1 / 0).
NORM_CASES = [("l1", 1.5), ("l2", math.sqrt(10 / 8)), ("linf", 1.0)]


def _prune(tmp_path, norm, scale, dtype=torch.float32):
    d = [2.0 * scale, -2.0 * scale, 1.0 * scale, 1.0 * scale]
    base = write_model(tmp_path / "base", {"w": torch.zeros(4, dtype=dtype)})
    ft = write_model(tmp_path / "ft", {"w": T(d, dtype=dtype)})
    cfg = {"merge_method": "magnitude_prune", "base_model": str(base),
           "models": [{"model": str(ft), "parameters": {"density": 0.5}}], "parameters": {"rescale": norm}}
    return load_state_dict(merge(cfg, tmp_path / "out", progress=False, chunk_elements=1, force=True))["w"]


@pytest.mark.parametrize("norm,factor", NORM_CASES)
@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_norm_rescale_sums_every_chunk(tmp_path, norm, factor, scale):
    # scale 0.1: norms below 1 are rescaled too (only norms below 1e-7 are left alone)
    out = _prune(tmp_path, norm, scale, torch.float64)
    torch.testing.assert_close(out, T([2 * scale * factor, -2 * scale * factor, 0, 0], dtype=torch.float64))


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_norms_below_1e_7_are_not_rescaled(tmp_path, norm):
    # l1 6e-9, l2 3.2e-9, linf 2e-9: all below 1e-7, so the kept entries stay as they are
    out = _prune(tmp_path, norm, 1e-9, torch.float64)
    assert torch.equal(out, T([2e-9, -2e-9, 0.0, 0.0], dtype=torch.float64))
