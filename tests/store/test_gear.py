"""The task-vector store: round trip, equip against apply-vector, a flipped byte, a wrong base, concurrent adds."""

import json
import multiprocessing as mp

import pytest
import torch
from huggingface_hub import ModelCard

from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge import apply_vector
from asr_analogy.store import gear


def _fp(path):
    with CheckpointReader(path) as r:
        return r.fingerprint()


def test_round_trip(tiny, tmp_path):
    store = tmp_path / "store"
    rec = gear.add("voice-a", tiny["va"], store=store, meta={"license": "mit", "metrics": {"wer": 12.5}, "steps": 40})
    sha = rec["sha256"]
    assert (store / "vectors" / sha / "task_vector.safetensors").read_bytes() == tiny["va"].read_bytes()
    assert [e["name"] for e in gear.list_entries(store)] == ["voice-a"]
    shown = gear.show("voice-a", store)
    assert shown["base_fingerprint"] == _fp(tiny["base"])  # the full fingerprint recorded by `vector`
    assert shown["base_name"] == "base" and shown["architecture"] == "ToyModel"
    assert shown["provenance"]["steps"] == 40 and shown["metrics"] == {"wer": 12.5}
    card = ModelCard.load(store / "vectors" / sha / "README.md")  # a card the Hub reads
    assert card.data.license == "mit"
    assert card.data.to_dict()["asr_analogy"]["base_fingerprint"] == shown["base_fingerprint"]
    assert gear.verify(store=store) == {"voice-a": []}

    # equip (through merge) equals apply-vector bit for bit
    equipped = load_state_dict(gear.equip(tiny["base"], ["voice-a"], tmp_path / "equipped", store=store, progress=False))
    applied = load_state_dict(apply_vector(tiny["base"], tiny["va"], tmp_path / "applied", progress=False))
    assert equipped.keys() == applied.keys()
    for name in applied:
        assert torch.equal(equipped[name], applied[name]), name
    assert not torch.equal(equipped["enc.layers.0.w"], load_state_dict(tiny["base"])["enc.layers.0.w"])
    equipped_card = ModelCard.load(tmp_path / "equipped" / "README.md")  # the equipped model's own card
    assert equipped_card.data.base_model_relation == "merge" and "task-vector" in equipped_card.data.tags
    assert "Equipped from the asr-analogy task-vector store: `voice-a` (weight 1)." in equipped_card.text
    # weights: base + 0.5 * va + 2 * vb
    gear.add("voice-b", tiny["vb"], store=store)
    two = load_state_dict(gear.equip(tiny["base"], ["voice-a:0.5", "voice-b:2"], tmp_path / "two", store=store,
                                     progress=False))
    base, fa, fb = (load_state_dict(tiny[k])["enc.layers.0.w"] for k in ("base", "ft_a", "ft_b"))
    torch.testing.assert_close(two["enc.layers.0.w"], base + 0.5 * (fa - base) + 2 * (fb - base))

    gear.add("same-bytes", tiny["va"], store=store)  # a second name for the same content shares its folder
    gear.rm("voice-a", store)
    assert (store / "vectors" / sha).is_dir()
    gear.rm("same-bytes", store)
    assert not (store / "vectors" / sha).exists()
    assert [e["name"] for e in gear.list_entries(store)] == ["voice-b"]
    with pytest.raises(ConfigError, match="no entry 'voice-a'"):
        gear.show("voice-a", store)


def test_a_name_holding_other_bytes_is_refused(tiny, tmp_path):
    gear.add("v", tiny["va"], store=tmp_path / "s")
    with pytest.raises(OutputExistsError, match="already holds another vector"):
        gear.add("v", tiny["vb"], store=tmp_path / "s")
    assert gear.add("v", tiny["vb"], store=tmp_path / "s", force=True)["sha256"] == gear.show("v", tmp_path / "s")["sha256"]


@pytest.mark.parametrize("what", ["task_vector.safetensors", "README.md"])
def test_verify_catches_one_flipped_byte(tiny, tmp_path, what):
    store = tmp_path / "store"
    sha = gear.add("v", tiny["va"], store=store)["sha256"]
    path = store / "vectors" / sha / what
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    (problem,) = gear.verify("v", store)["v"]
    assert "changed" in problem and what in problem


def test_equip_refuses_another_base(tiny, tmp_path):
    store = tmp_path / "store"
    gear.add("v", tiny["va"], store=store)
    with pytest.raises(MergeError, match="does not belong to base .*allow-other-base"):
        gear.equip(tiny["ft_b"], ["v"], tmp_path / "out", store=store, progress=False)
    assert not (tmp_path / "out").exists()
    out = gear.equip(tiny["ft_b"], ["v"], tmp_path / "out", store=store, allow_other_base=True, progress=False)
    assert (out / "model.safetensors").is_file()


def _add_many(store, vector, worker, count, barrier):
    barrier.wait()
    for i in range(count):
        gear.add(f"w{worker}-{i}", vector, store=store, meta={"worker": worker})


def test_eight_concurrent_adds_keep_the_index_consistent(tiny, tmp_path):
    store, count = tmp_path / "store", 6
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(8)
    vectors = [tiny["va"], tiny["vb"]]
    procs = [ctx.Process(target=_add_many, args=(store, vectors[w % 2], w, count, barrier)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    index = json.loads((store / "index.json").read_text())
    assert sorted(index["entries"]) == sorted(f"w{w}-{i}" for w in range(8) for i in range(count))
    assert gear.verify(store=store) == {name: [] for name in index["entries"]}
    assert sorted(p.name for p in (store / "vectors").iterdir()) == sorted(
        {index["entries"]["w0-0"]["sha256"], index["entries"]["w1-0"]["sha256"]})  # no leftover temporaries
