"""Streaming parts one by one: labels, chunk ranges, buffers, page release, copying, the writer thread and
the checkpoint writer's defaults (hand-computed expectations on tiny tensors and recording fake readers)."""

import re
import threading
from pathlib import Path

import pytest
import torch

from asr_analogy.errors import MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, TensorSpec
from asr_analogy.merge.stream import RELEASE_SPAN, Input, Streamer, stream_to_checkpoint, write_in_background

from .conftest import write_model

CPU = torch.device("cpu")


class Recorder:
    """A reader that only knows shapes and records ``release`` / ``prefetch`` calls."""

    def __init__(self, numel: int):
        self.numel_ = numel
        self.calls: list[tuple] = []

    def shape(self, name):
        return (self.numel_,)

    def release(self, *args):
        self.calls.append(("release",) + args)

    def prefetch(self, *args):
        self.calls.append(("prefetch",) + args)


def rec_input(reader, label="m"):
    return Input(label, Path(label), reader)


def test_describe_names_the_path_when_the_label_differs():
    assert Input("org/toy", Path("/cache/toy"), None).describe() == "org/toy (/cache/toy)"
    assert Input("/cache/toy", Path("/cache/toy"), None).describe() == "/cache/toy"


def test_ranges_of_an_empty_tensor_is_one_empty_range():
    s = Streamer(CPU, chunk_elements=3)
    assert s.ranges(0) == [(0, 0)]
    assert s.ranges(7) == [(0, 3), (3, 6), (6, 7)]


def test_buffers_live_on_the_streamer_device():
    s = Streamer(torch.device("meta"), chunk_elements=4)
    assert s.buffer("k", 3, torch.float16).device.type == "meta"


def test_ring_reuses_the_first_buffer_after_RING_others():
    s = Streamer(CPU, chunk_elements=4)
    ptrs = [s.ring(4, torch.float32).data_ptr() for _ in range(5)]
    assert len(set(ptrs[:4])) == 4
    assert ptrs[4] == ptrs[0]


def test_load_stages_only_when_the_stored_dtype_differs(tmp_path):
    path = write_model(tmp_path / "m", {"w": torch.tensor([1.0, 2.0, 3.0, 4.0])})
    inp = Input("m", path, CheckpointReader(path))
    s = Streamer(CPU, chunk_elements=4)
    assert s.load(inp, "w", 1, 3, torch.float32).tolist() == [2.0, 3.0]
    assert len(s._pool) == 1  # read straight into the pooled buffer
    assert s.load(inp, "w", 0, 2, torch.float64).tolist() == [1.0, 2.0]
    assert len(s._pool) == 3  # plus a float32 staging buffer and the float64 result


def test_is_finite_sum_overflow_falls_back_to_the_entries():
    assert Streamer.is_finite(torch.tensor([3e38, 3e38]))
    assert not Streamer.is_finite(torch.tensor([1.0, float("inf")]))
    assert Streamer.is_finite(torch.tensor([complex(float("inf"), 0)]))  # not floating: nothing to check


def test_release_gathers_small_chunks_until_the_end_of_the_tensor():
    r = Recorder(10)
    s = Streamer(CPU, chunk_elements=4)
    for a, b in [(0, 4), (4, 8), (8, 10)]:
        s.release([rec_input(r)], "w", a, b)
    assert r.calls == [("release", "w", 0, 10)]
    # a second pass that starts inside the tensor releases only what it read
    s.release([rec_input(r)], "w", 4, 10)
    assert r.calls[1:] == [("release", "w", 4, 10)]


def test_release_spans_of_RELEASE_SPAN_elements():
    r = Recorder(3 * RELEASE_SPAN)
    s = Streamer(CPU)
    s.release([rec_input(r)], "w", RELEASE_SPAN, RELEASE_SPAN + 10)  # small, not at the end: kept
    assert r.calls == []
    s2 = Streamer(CPU)
    s2.release([rec_input(r)], "w", 0, RELEASE_SPAN)  # exactly one span: released
    assert r.calls == [("release", "w", 0, RELEASE_SPAN)]


def test_release_and_prefetch_once_per_shared_reader():
    r, other = Recorder(4), Recorder(4)
    inputs = [rec_input(r, "a"), rec_input(r, "b"), rec_input(other, "c")]
    s = Streamer(CPU)
    s.release(inputs, "w", 0, 4)
    Streamer.prefetch(inputs, "w")
    assert r.calls == [("release", "w", 0, 4), ("prefetch", "w")]
    assert other.calls == [("release", "w", 0, 4), ("prefetch", "w")]


def test_release_without_inputs_does_nothing():
    Streamer(CPU).release([], "w", 0, 4)


def test_emit_overflow_before_any_check_names_no_tensor():
    with pytest.raises(MergeError) as err:
        Streamer(CPU).emit(torch.tensor([1e5]), torch.float16)
    assert str(err.value) == "tensor None: merged values overflow torch.float16 (inputs are finite)"


def test_emit_refuses_bfloat16_that_overflows_float16():
    s = Streamer(CPU)
    x = torch.tensor([1.0, 1e5], dtype=torch.bfloat16)
    s.check(x, [], "w", 0, 2)
    with pytest.raises(MergeError) as err:
        s.emit(x, torch.float16)
    assert str(err.value) == "tensor 'w': merged values overflow torch.float16 (inputs are finite)"
    assert s.emit(torch.tensor([1.0, 1e4], dtype=torch.float16), torch.bfloat16).tolist() == [1.0, 9984.0]


@pytest.fixture
def src(tmp_path):
    path = write_model(tmp_path / "m", {"w": torch.tensor([1.0, 2.0, 3.0, 4.5])})
    return Input("m", path, CheckpointReader(path))


def test_copy_casts_every_chunk(src):
    s = Streamer(CPU, chunk_elements=2)
    chunks = [c.clone() for c in s.copy("w", src, torch.float16)]
    assert [c.dtype for c in chunks] == [torch.float16, torch.float16]
    assert [c.tolist() for c in chunks] == [[1.0, 2.0], [3.0, 4.5]]


def test_copy_same_dtype_yields_views_of_the_file(src):
    s = Streamer(CPU, chunk_elements=2)
    flat = src.reader.flat("w")
    chunks = list(s.copy("w", src, torch.float32))
    assert [c.data_ptr() for c in chunks] == [flat[0:2].data_ptr(), flat[2:4].data_ptr()]
    assert [c.dtype for c in chunks] == [torch.float32, torch.float32]


def test_copy_names_the_kind_found_in_the_bad_chunk(tmp_path):
    path = write_model(tmp_path / "m", {"w": torch.tensor([1.0, float("inf"), float("nan"), 1.0])})
    s = Streamer(CPU, chunk_elements=2)
    with pytest.raises(MergeError) as err:
        list(s.copy("w", Input(str(path), path, CheckpointReader(path)), torch.float32))
    assert str(err.value) == f"model {path}: tensor 'w' contains Inf (first at flat index 1)"


# ---- writing --------------------------------------------------------------------------------------------


def produce_arange(name):
    yield torch.arange(4, dtype=torch.float32)


SPECS = [TensorSpec("w", torch.float32, (4,))]


def test_stream_to_checkpoint_refuses_an_existing_output_by_default(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputExistsError) as err:
        stream_to_checkpoint(out, SPECS, produce_arange, progress=False)
    assert str(err.value) == f"{out} already exists; pass --force to replace it"


def test_stream_to_checkpoint_defaults_write_one_shard_with_a_progress_bar(tmp_path, capsys):
    out = stream_to_checkpoint(tmp_path / "out", SPECS, produce_arange)
    assert CheckpointReader(out).get("w").tolist() == [0.0, 1.0, 2.0, 3.0]
    err = capsys.readouterr().err
    assert re.search(r"(^|\r)merge: +0%\|.*\| 0\.00/16\.0 ", err), err


def test_stream_to_checkpoint_writes_an_empty_safetensors_file(tmp_path):
    out = stream_to_checkpoint(tmp_path / "empty.safetensors", [], produce_arange, progress=False)
    assert out.is_file()
    assert len(CheckpointReader(out)) == 0


def test_writer_thread_is_a_named_daemon():
    seen = []
    write_in_background(iter([("w", torch.zeros(1))]), lambda n, c: seen.append(threading.current_thread()))
    assert [(t.name, t.daemon) for t in seen] == [("asr-analogy-writer", True)]


def run_with_deadline(fn, seconds=20.0):
    """Run ``fn`` on a daemon thread; return its exception, or fail if it has not ended by then (a hang)."""
    result = []

    def target():
        try:
            fn()
            result.append(None)
        except BaseException as exc:  # noqa: BLE001
            result.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert result, "write_in_background hung"
    return result[0]


def test_writer_failure_with_a_full_queue_stops_without_hanging():
    fourth = threading.Event()

    def items():
        for i in range(10):
            if i == 3:
                fourth.set()
            yield "w", i

    def write(name, i):
        fourth.wait(10)
        raise OSError("disk full")

    exc = run_with_deadline(lambda: write_in_background(items(), write))
    assert isinstance(exc, OSError) and str(exc) == "disk full"


def test_writer_queue_holds_two_chunks_while_one_is_written():
    produced = []
    release = threading.Event()

    def items():
        for i in range(6):
            produced.append(i)
            yield "w", i

    def write(name, i):
        release.wait(60)

    done = threading.Thread(target=lambda: write_in_background(items(), write), daemon=True)
    done.start()
    for _ in range(100):  # one chunk in write, two queued, one waiting to be queued
        if len(produced) >= 4:
            break
        threading.Event().wait(0.05)
    count = len(produced)
    release.set()
    done.join(60)
    assert count == 4
