"""Compressed task vectors: the exact metadata and layout written, the exact refusals of ``--method`` parts,
non-finite vectors and bad outputs, the progress bar, and what ExpandingReader reports and caches."""

import json

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError, ConfigError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader
from asr_analogy.merge import TaskVector
from asr_analogy.merge import compressed
from asr_analogy.merge.compressed import Compression, ExpandingReader, compress, open_reader

USE = "(use topk:FRACTION, lowrank:RANK, int8 or int4, combined with commas)"
BAD = "(topk:F needs 0 < F <= 1, lowrank:R an integer R >= 1, int8/int4 no argument)"

# 127 is the largest magnitude of "layers.10.w": its int8 scale is exactly 1
TAU = {"layers.10.w": torch.tensor([[127.0, -63.0], [1.0, 0.5]]), "layers.2.b": torch.tensor([0.25, -0.5, 1.0])}


@pytest.fixture
def vector(tmp_path):
    return TaskVector(TAU, "base-fp").save(tmp_path / "v.safetensors")


def _compress(vector, out, method="int8", **kw):
    return compress(vector, out, method, progress=False, **kw)


@pytest.mark.parametrize("method, part, why", [("int8,int4", "int4", "given twice"), ("topk:0.5,topk:0.2", "topk:0.2", "given twice"),
                                                ("gzip", "gzip", "unknown"), ("int8, zip", "zip", "unknown")])
def test_parse_names_the_part_given_twice_or_unknown(method, part, why):
    with pytest.raises(ConfigError) as info:
        Compression.parse(method)
    assert str(info.value) == f"compression {method!r}: {part!r} {why} {USE}"


@pytest.mark.parametrize("method, part", [("topk:0", "topk:0"), ("lowrank:0", "lowrank:0"), ("lowrank:x", "lowrank:x"),
                                          ("int4:2", "int4:2")])
def test_parse_refuses_a_bad_argument(method, part):
    with pytest.raises(ConfigError) as info:
        Compression.parse(method)
    assert str(info.value) == f"compression {method!r}: bad {part!r} {BAD}"


def test_parse_reads_each_part():
    assert Compression.parse("lowrank:1") == Compression(rank=1)  # the smallest rank is allowed
    assert Compression.parse("int4") == Compression(bits=4)
    assert Compression.parse("int8, topk:0.5") == Compression(topk=0.5, bits=8)


def test_the_written_metadata_and_layout_exactly(vector, tmp_path):
    path = _compress(vector, tmp_path / "c.safetensors").path
    with CheckpointReader(vector) as src, CheckpointReader(path) as out:
        source, meta = src.metadata(), out.metadata()
    layout = {  # keys sorted, so the same vector always gives the same bytes
        "layers.10.w": {"arrays": {"data": {"bits": 8, "scale": 1.0, "shape": [4]}}, "dtype": "F32", "encoding": "dense",
                        "shape": [2, 2]},
        "layers.2.b": {"arrays": {"data": {"bits": 8, "scale": 1.0 / 127, "shape": [3]}}, "dtype": "F32",
                       "encoding": "dense", "shape": [3]},
    }
    assert meta == {**source, "asr_analogy_kind": "task_vector_compressed", "compression": "int8",
                    "compression_layout": json.dumps(layout, sort_keys=True)}
    assert meta["compression_layout"].startswith('{"layers.10.w": {"arrays": {"data": {"bits": 8, "scale": 1.0, "shape"')


@pytest.mark.parametrize("bad, kind", [(float("nan"), "NaN"), (float("inf"), "Inf"), (float("-inf"), "Inf")])
def test_a_nonfinite_vector_is_refused_by_name(tmp_path, bad, kind):
    vector = TaskVector({"ok": torch.ones(2), "w": torch.tensor([1.0, bad])}, "fp").save(tmp_path / "v.safetensors")
    with pytest.raises(MergeError) as info:
        _compress(vector, tmp_path / "c.safetensors")
    assert str(info.value) == (f"vector {vector}: tensor 'w' contains {kind}; a compressed vector must be finite "
                               "(nothing was written)")
    assert list(tmp_path.iterdir()) == [vector]


def test_the_output_must_be_one_safetensors_file(vector, tmp_path):
    with pytest.raises(ConfigError) as info:
        _compress(vector, tmp_path / "c.pt")
    assert str(info.value) == f"{tmp_path / 'c.pt'}: a compressed vector is one .safetensors file (name it *.safetensors)"


def test_force_replaces_an_existing_output_and_new_folders_are_made(vector, tmp_path):
    out = tmp_path / "new" / "deeper" / "c.safetensors"
    _compress(vector, out, "int8")
    with pytest.raises(OutputExistsError):
        _compress(vector, out, "int4")
    _compress(vector, out, "int4", force=True)
    assert CheckpointReader(out).metadata()["compression"] == "int4"


def test_the_spill_file_lies_beside_the_output_not_in_the_system_temp_folder(vector, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    out = _compress(vector, tmp_path / "c.safetensors", "topk:1.0").path
    assert all(torch.equal(TaskVector.load(out)[n], TAU[n]) for n in TAU)


def test_parts_longer_than_the_copy_step_are_copied_whole(tmp_path, monkeypatch):
    # a 9-byte step is cut down to 8 for 4- and 8-byte elements; parts of 12 to 48 bytes take several steps
    monkeypatch.setattr(compressed, "_SPILL_CHUNK", 9)
    tau = {"a": torch.arange(1.0, 13.0).reshape(3, 4), "b": torch.tensor([0.5, -1.5, 2.5], dtype=torch.float64)}
    vector = TaskVector(tau, "fp").save(tmp_path / "v.safetensors")
    out = _compress(vector, tmp_path / "c.safetensors", "topk:1.0").path  # int32 indices, values as stored
    back = TaskVector.load(out)
    assert all(torch.equal(back[n], tau[n]) and back[n].dtype == tau[n].dtype for n in tau)


def test_a_vector_of_empty_tensors_compresses_to_no_bytes(tmp_path):
    vector = TaskVector({"e": torch.empty(0, 3)}, "fp").save(tmp_path / "v.safetensors")
    result = _compress(vector, tmp_path / "c.safetensors", "lowrank:1")
    assert (result.nbytes, result.float32_nbytes) == (0, 0)
    assert TaskVector.load(result.path)["e"].shape == (0, 3)


def test_progress_shows_one_bar_that_is_cleared_at_the_end(vector, tmp_path, capsys):
    compress(vector, tmp_path / "a.safetensors", "int8")  # progress by default
    err = capsys.readouterr().err
    assert err.startswith("\rcompress:   0%|") and "\n" not in err and err.endswith("\r")
    compress(vector, tmp_path / "b.safetensors", "int8", progress=False)
    assert capsys.readouterr().err == ""


def test_expanded_tensors_keep_their_dtype(tmp_path):
    tau = {"w": torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float16)}
    vector = TaskVector(tau, "fp").save(tmp_path / "v.safetensors")
    for method in ("int8", "lowrank:1"):
        with open_reader(_compress(vector, tmp_path / f"{method}.safetensors", method).path) as r:
            assert r.get("w").dtype == torch.float16, method


def test_expanding_reader_metadata_names_and_missing_tensor(vector, tmp_path):
    path = _compress(vector, tmp_path / "c.safetensors").path
    with ExpandingReader(path) as r, CheckpointReader(path) as raw:
        assert r.metadata() == {**raw.metadata(), "asr_analogy_kind": "task_vector"}
        assert r.names() == ["layers.2.b", "layers.10.w"]  # natural order: 2 before 10
        with pytest.raises(CheckpointError) as info:
            r.shape("nope")
        assert str(info.value) == f"{path}: no tensor named 'nope'"
        assert {c.format for c in r.raw_chunks("layers.10.w", 5)} == {c.format for c in raw.raw_chunks("layers.10.w/data")} == {"B"}


def test_expanding_reader_uses_and_closes_the_reader_it_is_given(vector, tmp_path):
    path = _compress(vector, tmp_path / "c.safetensors").path
    raw, closed = CheckpointReader(path), []
    raw.close = lambda: closed.append(True)
    with ExpandingReader(path, raw) as r:
        # int8 codes round(127 x): 0.25 -> 32 (31.75), -0.5 -> -64 (-63.5), 1 -> 127; times the scale 1/127
        assert torch.equal(r.get("layers.2.b"), torch.tensor([32.0, -64.0, 127.0]) * (1 / 127))
    assert closed == [True]


def test_a_compressed_vector_without_a_layout_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    save_file({"w/data": torch.ones(2)}, path, metadata={"asr_analogy_kind": "task_vector_compressed"})
    with pytest.raises(CheckpointError) as info:
        open_reader(path)
    assert str(info.value) == f"{path}: compressed vector without a readable compression_layout ('compression_layout')"


def test_a_tensor_is_expanded_once_for_its_chunked_reads(vector, tmp_path, monkeypatch):
    path = _compress(vector, tmp_path / "c.safetensors").path
    calls, decode = [], compressed.decode
    monkeypatch.setattr(compressed, "decode", lambda entry, part: calls.append(entry["shape"]) or decode(entry, part))
    with ExpandingReader(path) as r:
        out = torch.empty(2)
        assert r.read_into("layers.10.w", 0, 2, out).tolist() == [127.0, -63.0]
        assert r.read_into("layers.10.w", 2, 4, out).tolist() == [1.0, 0.0]  # 0.5 rounds to 0 steps of 1
        assert calls == [[2, 2]]
        r.close()
        assert r.get("layers.10.w").tolist() == [[127.0, -63.0], [1.0, 0.0]]  # read again after close, as CheckpointReader


def test_a_tensor_whose_part_is_missing_fails_alone(vector, tmp_path):
    full = _compress(vector, tmp_path / "c.safetensors").path
    with CheckpointReader(full) as r:
        parts, meta = {n: r.get(n).clone() for n in r.names() if n != "layers.2.b/data"}, r.metadata()
    broken = tmp_path / "broken.safetensors"
    save_file(parts, broken, metadata=meta)
    with open_reader(broken) as r:
        with pytest.raises(CheckpointError, match="layers.2.b/data"):
            r.get("layers.2.b")
        assert r.get("layers.10.w").tolist() == [[127.0, -63.0], [1.0, 0.0]]


def test_open_reader_reads_the_file_header_once(vector, tmp_path, monkeypatch):
    path = _compress(vector, tmp_path / "c.safetensors").path
    opened = []

    class Counting(CheckpointReader):
        def __init__(self, *args, **kw):
            opened.append(args[0])
            super().__init__(*args, **kw)

    monkeypatch.setattr(compressed, "CheckpointReader", Counting)
    with open_reader(path) as r:
        assert isinstance(r, ExpandingReader) and r.get("layers.10.w").shape == (2, 2)
    assert opened == [path]  # the reader that recognised the file is the one that expands it
