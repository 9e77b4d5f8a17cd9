"""The streaming safetensors writer: shard sizes as typed, shard plans, chunks of every shape, refusals word for
word, preallocation and fsync, the index text, closing and aborting. Expected values are written out by hand."""

import os
import struct

import pytest
import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint import ShardedWriter, TensorSpec, load_state_dict, parse_size, plan_shards
from asr_analogy.io.checkpoint.writer import _preallocate, _tensor_bytes


def _refusal(call, *args, **kw):
    with pytest.raises(CheckpointError) as err:
        call(*args, **kw)
    return str(err.value)


def _f32(name, n):
    return TensorSpec(name, torch.float32, (n,))


# -- shard sizes --
def test_parse_size_zero_means_no_limit_and_one_byte_is_a_limit():
    assert parse_size(0) is None
    assert parse_size("1") == 1


@pytest.mark.parametrize("text", ["0", "0.4", "0KB"])
def test_parse_size_refuses_sizes_below_one_byte(text):
    assert _refusal(parse_size, text) == f"shard size {text!r} must be positive"


def test_parse_size_reads_a_bool_as_text_and_refuses_it():
    assert _refusal(parse_size, True) == (
        "cannot read shard size True: expected e.g. 5GB, 500MB, 2GiB or a byte count"
    )


# -- shard plans --
def test_a_new_shard_starts_counting_from_zero():
    # four 8-byte tensors, 16-byte shards: two per shard
    shards = plan_shards([_f32(n, 2) for n in "abcd"], 16)
    assert [[s.name for s in shard] for shard in shards] == [["a", "b"], ["c", "d"]]


def test_wider_dtypes_come_first_within_a_shard():
    specs = [_f32("a", 1), TensorSpec("b", torch.float64, (1,)), TensorSpec("c", torch.int8, (1,))]
    (shard,) = plan_shards(specs, None)
    assert [s.name for s in shard] == ["b", "a", "c"]


# -- chunk bytes --
class _OnDevice:
    """Stands for a tensor on an accelerator: only ``cpu()`` gives its data."""

    device = torch.device("cuda")

    def __init__(self, data):
        self.data = data

    def detach(self):
        return self

    def reshape(self, *shape):
        return self

    def is_contiguous(self):
        raise AssertionError("a tensor off the CPU is copied to the CPU first")

    def cpu(self):
        return self.data


def test_a_chunk_off_the_cpu_is_copied_to_the_cpu():
    assert bytes(_tensor_bytes(_OnDevice(torch.tensor([1.5, -2.0])))) == struct.pack("<2f", 1.5, -2.0)


def test_strided_and_empty_chunks(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 5)], shard_size=None, fsync=False)
    writer.write("a", torch.arange(6.0)[::2])  # [0, 2, 4]: every other element, not contiguous
    writer.write("a", torch.empty(0))  # no data
    writer.write("a", torch.tensor([6.0, 8.0]))
    writer.close()
    assert load_state_dict(tmp_path)["a"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


# -- refusals --
def test_an_empty_chunk_for_the_wrong_tensor_is_out_of_order(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 1), _f32("b", 1)], shard_size=None, fsync=False)
    assert _refusal(writer.write, "b", torch.empty(0)) == "tensor 'b' written out of order (expected a)"
    assert _refusal(writer.write, "a", torch.empty(0, dtype=torch.float64)) == (
        "tensor 'a': got torch.float64, planned torch.float32"
    )


def test_more_chunks_after_the_last_tensor_expect_nothing(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2)], shard_size=None, fsync=False)
    writer.write("a", torch.tensor([1.0, 2.0]))
    assert _refusal(writer.write, "a", torch.tensor([3.0])) == "tensor 'a' written out of order (expected nothing)"


def test_unplanned_and_earlier_shard_tensors_are_refused(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2), _f32("b", 2)], shard_size=8, fsync=False)
    assert _refusal(writer.write, "c", torch.zeros(1)) == "tensor 'c' was not planned for this output"
    writer.write("a", torch.zeros(2))
    writer.write("b", torch.zeros(1))
    assert _refusal(writer.write, "a", torch.zeros(1)) == "tensor 'a' written out of order"


def test_duplicate_names_are_refused_and_the_first_five_listed(tmp_path):
    specs = [_f32(n, 1) for n in "gfedcbabcdefg"]  # a once, b..g twice
    assert _refusal(ShardedWriter, tmp_path, specs) == (
        "duplicate tensor names in output: ['b', 'c', 'd', 'e', 'f']"
    )


def test_a_shard_closed_with_a_tensor_unfinished_is_refused(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2)], shard_size=None, fsync=False)
    writer.write("a", torch.zeros(1))
    assert _refusal(writer.close) == "shard model.safetensors closed before tensor 'a' was written"


# -- preallocation and fsync --
@pytest.fixture
def fallocate_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "posix_fallocate", lambda fd, offset, size: calls.append((offset, size)))
    return calls


def test_each_file_is_preallocated_to_its_final_size(tmp_path, fallocate_calls):
    writer = ShardedWriter(tmp_path, [_f32("a", 3)], shard_size=None, fsync=False)
    writer.write("a", torch.ones(3))
    writer.close()
    assert fallocate_calls == [(0, (tmp_path / "model.safetensors").stat().st_size)]


def test_preallocation_of_one_byte_and_of_nothing(tmp_path, fallocate_calls):
    with open(tmp_path / "f", "wb") as fh:
        _preallocate(fh, 0)
        _preallocate(fh, 1)
    assert fallocate_calls == [(0, 1)]


@pytest.mark.parametrize("unsupported", ["missing", "refused"])
def test_files_are_written_where_preallocation_is_unsupported(tmp_path, monkeypatch, unsupported):
    if unsupported == "missing":
        monkeypatch.delattr(os, "posix_fallocate")
    else:
        def refuse(fd, offset, size):
            raise OSError(95, "Operation not supported")
        monkeypatch.setattr(os, "posix_fallocate", refuse)
    writer = ShardedWriter(tmp_path, [_f32("a", 2)], shard_size=None, fsync=False)
    writer.write("a", torch.tensor([1.0, 2.0]))
    writer.close()
    assert load_state_dict(tmp_path)["a"].tolist() == [1.0, 2.0]


def test_finished_shards_are_fsynced_by_default(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    writer = ShardedWriter(tmp_path, [_f32("a", 2), _f32("b", 2)], shard_size=8)
    writer.write("a", torch.zeros(2))
    writer.write("b", torch.zeros(2))
    writer.close()
    shards = [str(tmp_path / f"model-0000{i}-of-00002.safetensors") for i in (1, 2)]
    assert synced[:2] == shards  # then the index, through its atomic write


# -- shards holding only empty tensors, names, index text --
def test_shards_of_empty_tensors_are_written_before_and_after(tmp_path):
    # "a" (empty) fills shard 1 alone, "b" shard 2, "c" (empty) shard 3: the writer opens 1 on its way to 2,
    # and close() writes 3
    specs = [TensorSpec("a", torch.float32, (0,)), _f32("b", 4), TensorSpec("c", torch.float32, (0, 3))]
    writer = ShardedWriter(tmp_path, specs, shard_size=8, basename="enc", fsync=False)
    assert [[s.name for s in shard] for shard in writer.shards] == [["a"], ["b"], ["c"]]
    writer.write("b", torch.arange(4.0))
    assert writer.close() == [f"enc-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "enc-00001-of-00003.safetensors",
        "enc-00002-of-00003.safetensors",
        "enc-00003-of-00003.safetensors",
        "enc.safetensors.index.json",
    ]
    assert (tmp_path / "enc.safetensors.index.json").read_text() == (
        "{\n"
        '  "metadata": {\n'
        '    "total_size": 16\n'
        "  },\n"
        '  "weight_map": {\n'
        '    "a": "enc-00001-of-00003.safetensors",\n'
        '    "b": "enc-00002-of-00003.safetensors",\n'
        '    "c": "enc-00003-of-00003.safetensors"\n'
        "  }\n"
        "}\n"
    )
    state = load_state_dict(tmp_path / "enc.safetensors.index.json")
    assert state["a"].shape == (0,) and state["c"].shape == (0, 3) and state["b"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_second_close_writes_nothing(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2), _f32("b", 2)], shard_size=8, fsync=False)
    writer.write("a", torch.zeros(2))
    writer.write("b", torch.zeros(2))
    names = writer.close()
    (tmp_path / "model.safetensors.index.json").unlink()
    assert writer.close() == names
    assert not (tmp_path / "model.safetensors.index.json").exists()


def test_abort_closes_the_open_shard_once(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2)], shard_size=None, fsync=False)
    writer.write("a", torch.zeros(1))
    handle = writer._fh
    writer.abort()
    assert handle.closed
    writer.abort()  # nothing left to close


def test_abort_after_close_does_nothing(tmp_path):
    writer = ShardedWriter(tmp_path, [_f32("a", 2)], shard_size=None, fsync=False)
    writer.write("a", torch.zeros(2))
    writer.close()
    writer.abort()
    assert load_state_dict(tmp_path)["a"].tolist() == [0.0, 0.0]
