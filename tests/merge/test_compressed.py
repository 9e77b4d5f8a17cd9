"""Compressed task vectors: each method against its definition, and read transparently by apply-vector, merge,
TaskVector.load and the store (the result equals applying the expanded vector)."""

import pytest
import torch
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge import TaskVector, apply_vector, merge, read_vector_metadata
from asr_analogy.merge.compressed import Compression, compress

from .conftest import write_model


@pytest.fixture
def setup(tmp_path):
    g = torch.Generator().manual_seed(1)
    base = {"enc.layers.0.w": torch.randn(8, 6, generator=g), "enc.layers.0.b": torch.randn(6, generator=g),
            "count": torch.tensor([2])}
    base_dir = write_model(tmp_path / "base", base)
    with CheckpointReader(base_dir) as r:
        fp = r.fingerprint()
    tau = {"enc.layers.0.w": torch.randn(8, 6, generator=g), "enc.layers.0.b": torch.randn(6, generator=g)}
    return base_dir, tau, TaskVector(tau, fp).save(tmp_path / "v.safetensors")


def _load(path):
    return TaskVector.load(path)


def test_topk_one_and_full_rank_are_exact(setup, tmp_path):
    _, tau, v = setup
    full = _load(compress(v, tmp_path / "k1.safetensors", "topk:1.0", progress=False).path)
    assert all(torch.equal(full[n], tau[n]) for n in tau)
    rank = _load(compress(v, tmp_path / "r6.safetensors", "lowrank:6", progress=False).path)
    torch.testing.assert_close(rank["enc.layers.0.w"], tau["enc.layers.0.w"])
    assert torch.equal(rank["enc.layers.0.b"], tau["enc.layers.0.b"])  # 1-D tensors are kept as they are


def test_each_method_matches_its_definition(setup, tmp_path):
    _, tau, v = setup
    w, b = tau["enc.layers.0.w"], tau["enc.layers.0.b"]
    top = _load(compress(v, tmp_path / "k.safetensors", "topk:0.25", progress=False).path)
    kept = top["enc.layers.0.w"] != 0
    assert int(kept.sum()) == 12  # int(0.25 * 48)
    assert torch.equal(top["enc.layers.0.w"][kept], w[kept])
    assert float(w[~kept].abs().max()) <= float(w[kept].abs().min())  # the largest magnitudes were kept
    low = _load(compress(v, tmp_path / "r2.safetensors", "lowrank:2", progress=False).path)
    s = torch.linalg.svdvals(w.double())
    err = torch.linalg.norm((low["enc.layers.0.w"] - w).double())
    torch.testing.assert_close(err, torch.sqrt((s[2:] ** 2).sum()), rtol=1e-4, atol=1e-5)
    for bits, qmax in ((8, 127), (4, 7)):
        q = _load(compress(v, tmp_path / f"q{bits}.safetensors", f"int{bits}", progress=False).path)
        for name, x in tau.items():
            scale = float(x.abs().max()) / qmax
            assert float((q[name] - x).abs().max()) <= scale / 2 * (1 + 1e-5), (bits, name)
            assert not torch.equal(q[name], x)
    both = _load(compress(v, tmp_path / "k8.safetensors", "topk:0.25,int8", progress=False).path)
    assert torch.equal(both["enc.layers.0.w"] != 0, kept)
    assert float((both["enc.layers.0.w"] - top["enc.layers.0.w"]).abs().max()) <= float(w.abs().max()) / 127 / 2 * 1.0001
    assert read_vector_metadata(tmp_path / "k8.safetensors")["compression"] == "topk:0.25,int8"


def test_apply_vector_merge_and_store_read_compressed_vectors(setup, tmp_path):
    from asr_analogy.store import gear

    base_dir, _, v = setup
    small = compress(v, tmp_path / "c.safetensors", "lowrank:2,topk:0.5,int4", progress=False).path
    expanded = _load(small).save(tmp_path / "expanded.safetensors")  # the same vector, stored in full
    want = load_state_dict(apply_vector(base_dir, expanded, tmp_path / "want", scale=0.7, progress=False))
    got = load_state_dict(apply_vector(base_dir, small, tmp_path / "got", scale=0.7, progress=False))
    assert all(torch.equal(got[n], want[n]) for n in want)
    cfg = {"merge_method": "task_arithmetic", "base_model": str(base_dir), "parameters": {"lambda": 0.7}}
    merged = load_state_dict(merge({**cfg, "models": [{"vector": str(small)}]}, tmp_path / "m", progress=False))
    merged_full = load_state_dict(merge({**cfg, "models": [{"vector": str(expanded)}]}, tmp_path / "mf", progress=False))
    assert all(torch.equal(merged[n], merged_full[n]) for n in want)
    gear.add("small", small, store=tmp_path / "store")
    assert gear.show("small", tmp_path / "store")["compression"] == "lowrank:2,topk:0.5,int4"
    equipped = load_state_dict(gear.equip(base_dir, ["small:0.7"], tmp_path / "e", store=tmp_path / "store",
                                          progress=False))
    assert all(torch.equal(equipped[n], want[n]) for n in want)


def test_cli_prints_the_size_and_refuses_bad_methods(setup, tmp_path):
    _, _, v = setup
    result = CliRunner().invoke(main, ["compress", str(v), str(tmp_path / "c.safetensors"), "--method", "int8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "54 bytes, 25.00% of float32 (216 bytes)" in result.output  # 48 + 6 int8 codes for 54 float32
    for bad in ("topk:0", "topk:1.5", "lowrank:x", "int8,int4", "gzip"):
        with pytest.raises(ConfigError, match="compression"):
            Compression.parse(bad)
    result = CliRunner().invoke(main, ["compress", str(v), str(tmp_path / "d.safetensors"), "--method", "int3"])
    assert result.exit_code == 2 and "unknown" in result.output and not (tmp_path / "d.safetensors").exists()


def test_expanding_reader_looks_like_a_checkpoint_reader(setup, tmp_path):
    from asr_analogy.merge.compressed import ExpandingReader

    _, tau, v = setup
    path = compress(v, tmp_path / "k1.safetensors", "topk:1.0", progress=False).path  # exact: every entry kept
    with ExpandingReader(path) as r, CheckpointReader(v) as plain:
        assert (r.numel("enc.layers.0.w"), r.nbytes("enc.layers.0.w")) == (48, 48 * 4)
        assert (r.numel("enc.layers.0.b"), r.nbytes("enc.layers.0.b")) == (6, 24)
        chunks = [bytes(c) for c in r.raw_chunks("enc.layers.0.w", chunk_bytes=50)]
        assert [len(c) for c in chunks] == [50, 50, 50, 42]
        assert b"".join(chunks) == tau["enc.layers.0.w"].numpy().tobytes()
        assert r.fingerprint() == plain.fingerprint()  # the same scheme over the expanded values
        r.release("enc.layers.0.w")  # nothing mapped: a no-op
        assert torch.equal(r.get("enc.layers.0.w"), tau["enc.layers.0.w"])
        assert repr(r) == f"ExpandingReader({str(path)!r}, 2 tensors)"
