"""DARE masks of the generalized task-arithmetic kernel: which generator seed each (seed, tensor, model
position, chunk) gets, pinned, and merges checked against masks drawn from those seeds.

The seed is the first 8 bytes of blake2b("{seed}\\0{name}\\0{term}\\0{chunk}") read little-endian, with the
top bit cleared; a mask keeps each entry where ``torch.rand`` from a generator with that seed is below the
density. A change to either changes every DARE merge a user has reproduced, so both are pinned here.
"""

import hashlib

import pytest
import torch

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import merge
from asr_analogy.merge.kernels.gta import _seed_for

from .conftest import write_model

T = torch.tensor


def _mask(seed: int, name: str, term: int, chunk: int, numel: int, density: float) -> torch.Tensor:
    """The documented DARE keep-mask, derived here from its definition."""
    digest = hashlib.blake2b(f"{seed}\0{name}\0{term}\0{chunk}".encode(), digest_size=8).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return (torch.rand(numel, generator=gen) < density).float()


def test_seed_values_are_pinned():
    # (7, "w", 0, 0): its 64-bit digest has the top and the bottom bit set; (7, "w", 1, 0): the bottom only
    assert _seed_for(7, "w", 0, 0) == 3188963699781085377
    assert _seed_for(7, "w", 1, 0) == 838388998435664849
    assert _seed_for(7, "w", 0, 1) == 2927462467555256326
    assert _seed_for(0, "w", 0, 0) == 5860586559013666439


def _dare(tmp_path, ms, seed, rescale, dtype=torch.float32, **kw):
    cfg = {"merge_method": "dare_linear", "base_model": str(ms["base"]), "seed": seed,
           "parameters": {"rescale": rescale},
           "models": [{"model": str(ms[k]), "parameters": {"density": kw.pop("density", 0.5)}} for k in ("a", "b")]}
    return load_state_dict(merge(cfg, tmp_path / "out", progress=False, force=True, **kw))["w"]


def test_dare_masks_per_model_and_chunk_follow_the_documented_seeds(tmp_path):
    # 7 entries in chunks of 3: [0:3], [3:6], [6:7]; each model and each chunk draws its own mask
    base = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    da = T([1.0, -2.0, 3.0, 4.0, -1.0, 2.0, 5.0])
    db = T([-3.0, 1.0, 2.0, -2.0, 4.0, 1.0, -1.0])
    ms = {"base": write_model(tmp_path / "base", {"w": T(base)}),
          "a": write_model(tmp_path / "a", {"w": T(base) + da}),
          "b": write_model(tmp_path / "b", {"w": T(base) + db})}
    masks = [torch.cat([_mask(7, "w", term, c, n, 0.5) for c, n in enumerate((3, 3, 1))]) for term in (0, 1)]
    # rescale true: survivors times 1/0.5 = 2 (exact)
    expected = T(base) + (da * masks[0] * 2 + db * masks[1] * 2)
    out = _dare(tmp_path, ms, 7, True, chunk_elements=3)
    assert torch.equal(out, expected)
    assert not torch.equal(masks[0], masks[1])  # the models' masks differ
    assert not torch.equal(out, T(base) + (da + db) * 2)  # something was dropped


def test_dare_in_bfloat16_masks_and_sums_in_bfloat16(tmp_path):
    # three models with deltas 1, 2^-8, 2^-8 (base 0): where all three are kept, bfloat16 sums
    # (1 + 2^-8) + 2^-8 = 1 (each step rounds to even), float32 gives 1 + 2^-7
    n, density = 64, 0.9
    ms = {"base": write_model(tmp_path / "base", {"w": torch.zeros(n)})}
    deltas = {"a": 1.0, "b": 2.0**-8, "c": 2.0**-8}
    for k, v in deltas.items():
        ms[k] = write_model(tmp_path / k, {"w": torch.full((n,), v)})
    cfg = {"merge_method": "dare_linear", "base_model": str(ms["base"]), "seed": 3,
           "parameters": {"rescale": False},
           "models": [{"model": str(ms[k]), "parameters": {"density": density}} for k in deltas]}
    out = load_state_dict(merge(cfg, tmp_path / "out", progress=False, dtype="bfloat16"))["w"]
    kept = [torch.full((n,), v, dtype=torch.bfloat16) * _mask(3, "w", i, 0, n, density).to(torch.bfloat16)
            for i, v in enumerate(deltas.values())]
    expected = torch.zeros(n, dtype=torch.bfloat16) + ((kept[0] + kept[1]) + kept[2])
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    in_float32 = (kept[0].float() + kept[1].float() + kept[2].float()).to(torch.bfloat16)
    assert not torch.equal(expected, in_float32)


@pytest.mark.parametrize("rescale", ["l1", True])
def test_dare_masks_are_the_same_in_the_norm_pass_and_the_merge(tmp_path, rescale):
    # the l1 rescale draws each chunk's mask twice (norm pass, then merge): both must be the chunk's own mask
    base = [0.0] * 6
    da = T([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    ms = {"base": write_model(tmp_path / "base", {"w": T(base)}),
          "a": write_model(tmp_path / "a", {"w": da}), "b": write_model(tmp_path / "b", {"w": da * 0})}
    m = torch.cat([_mask(5, "w", 0, c, 2, 0.5) for c in range(3)])
    out = _dare(tmp_path, ms, 5, rescale, chunk_elements=2)
    kept = da * m
    if rescale == "l1":  # ||da||_1 / ||kept||_1, computed in float64 as the kernel does
        factor = float(da.double().abs().sum()) / float(kept.double().abs().sum())
    else:
        factor = 2.0
    assert torch.equal(out, kept * factor)
