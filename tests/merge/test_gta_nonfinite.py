"""Non-finite inputs to the generalized task-arithmetic kernel: the input named, where a sign election
would hide the value and where chunks decide which NaN is met first; exact messages."""

import pytest
import torch

from asr_analogy.errors import MergeError
from asr_analogy.merge import merge

from .conftest import write_model
from .test_bad_input import _nothing_written

T = torch.tensor
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("method,density", [("ties", 1.0), ("ties", 0.5), ("magnitude_prune", 1.0)])
def test_the_input_whose_nan_is_met_first_chunk_by_chunk_is_named(tmp_path, method, density):
    # a holds a NaN at flat index 3 (second chunk), b at index 1 (first chunk): b's is met first. ties at
    # density 1: the check of the deltas meets it; at 0.5 the pass that finds the magnitude cuts; without
    # sparsification or consensus, the check of the merged chunk.
    a = [2.0, 1.0, 1.0, NAN]
    b = [1.0, NAN, 1.0, 1.0]
    ms = {k: write_model(tmp_path / k, {"w": T(v)}) for k, v in (("base", [1.0] * 4), ("a", a), ("b", b))}
    cfg = {"merge_method": method, "base_model": str(ms["base"]),
           "models": [{"model": str(ms[k]), "parameters": {"density": density}} for k in ("a", "b")]}
    with pytest.raises(MergeError) as err:
        merge(cfg, tmp_path / "out", progress=False, chunk_elements=2)
    assert str(err.value) == f"model {ms['b']}: tensor 'w' contains NaN (first at flat index 1)"
    _nothing_written(tmp_path, tmp_path / "out")


def test_infs_outvoted_by_the_count_election_are_still_refused(tmp_path):
    # each model's delta is -inf at one entry where the two others are +1: the count election gives + there,
    # so every -inf disagrees and would be left out of the merge (a finite output); the deltas' own check
    # names the first input holding one
    base = [1.0, 1.0, 1.0]
    ms = {k: write_model(tmp_path / k, {"w": T(v)})
          for k, v in (("base", base), ("a", [2.0, -INF, 2.0]), ("b", [-INF, 2.0, 2.0]), ("c", [2.0, 2.0, -INF]))}
    cfg = {"merge_method": "ties", "base_model": str(ms["base"]), "parameters": {"consensus": "count"},
           "models": [{"model": str(ms[k])} for k in ("a", "b", "c")]}
    with pytest.raises(MergeError) as err:
        merge(cfg, tmp_path / "out", progress=False)
    assert str(err.value) == f"model {ms['a']}: tensor 'w' contains Inf (first at flat index 1)"
    _nothing_written(tmp_path, tmp_path / "out")
