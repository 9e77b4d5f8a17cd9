"""Reading tensors through the lazy reader: sizes, empty tensors, raw bytes, short and failed reads, page
advice at page boundaries, closing and reopening. Expected values are written out by hand."""

import mmap
import os

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint import CheckpointReader, StoredTensor

PAGE = mmap.PAGESIZE


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "m.safetensors"
    save_file({"w": torch.arange(6.0).reshape(2, 3), "e": torch.zeros(0, 2, dtype=torch.bfloat16),
               "one": torch.tensor([255], dtype=torch.uint8)}, p)
    return p


def test_sizes_and_repr(path):
    with CheckpointReader(path) as r:
        assert r.numel("w") == 6 and r.numel("e") == 0
        assert repr(r) == f"CheckpointReader({str(path)!r}, 3 tensors)"


def test_an_unknown_name_is_refused_with_the_file(path):
    with CheckpointReader(path) as r, pytest.raises(CheckpointError) as err:
        r.get("nope")
    assert str(err.value) == f"{path}: no tensor named 'nope'"


def test_an_empty_tensor_keeps_its_dtype(path):
    with CheckpointReader(path) as r:
        e = r.get("e")
        assert e.dtype == torch.bfloat16 and e.shape == (0, 2)


def test_raw_chunks_of_a_one_byte_tensor(path, tmp_path):
    torch.save({"one": torch.tensor([255], dtype=torch.uint8)}, tmp_path / "pytorch_model.bin")
    for source in (path, tmp_path / "pytorch_model.bin"):
        with CheckpointReader(source) as r:
            assert [c.tolist() for c in r.raw_chunks("one")] == [[255]]  # unsigned bytes


@pytest.fixture
def preadv_calls(monkeypatch):
    """os.preadv that hands back at most 4 bytes a call (as a slow or interrupted read may); it gives up after
    100 calls so a reader that never finishes fails instead of hanging."""
    real = os.preadv
    calls = []

    def short(fd, buffers, offset):
        calls.append(offset)
        if len(calls) > 100:
            raise RuntimeError("too many reads")
        return real(fd, [buffers[0][:4]], offset)

    monkeypatch.setattr(os, "preadv", short)
    return calls


def test_short_reads_are_continued_where_they_stopped(path, preadv_calls):
    with CheckpointReader(path) as r:
        out = torch.empty(4)
        r.read_into("w", 1, 5, out)
        assert out.tolist() == [1.0, 2.0, 3.0, 4.0]
        offset = r._entries["w"][1].offset
    assert preadv_calls == [offset + 4, offset + 8, offset + 12, offset + 16]


def test_one_byte_reads_are_not_taken_for_the_end_of_the_file(path, monkeypatch):
    real = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, buffers, offset: real(fd, [buffers[0][:1]], offset))
    with CheckpointReader(path) as r:
        assert [bytes(c) for c in r.raw_chunks("w")] == [torch.arange(6.0).numpy().tobytes()]


def test_a_file_cut_short_after_opening_names_file_and_tensor(path, preadv_calls):
    with CheckpointReader(path) as r:
        os.truncate(path, r._entries["w"][1].offset + 8)
        with pytest.raises(CheckpointError) as err:
            r.read_into("w", 0, 6, torch.empty(6))
        assert str(err.value) == f"{path}: file ended while reading tensor 'w' (truncated?)"
        with pytest.raises(CheckpointError) as err:
            list(r.raw_chunks("w"))
        assert str(err.value) == f"{path}: file ended while reading tensor 'w' (truncated?)"


def test_closing_with_tensors_still_viewing_the_file_and_reading_again(path):
    r = CheckpointReader(path)
    kept = r.get("w")
    r.close()  # the mapping cannot close while `kept` views it: no error
    assert kept.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert r.get("w").tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]  # files reopen on the next read
    out = torch.empty(2)
    r.read_into("w", 4, 6, out)
    assert out.tolist() == [4.0, 5.0]
    r.close()


class _Spy:
    def __init__(self, log, error=None):
        self.log, self.error = log, error

    def madvise(self, flag, start, length):
        self.log.append((flag, start, length))
        if self.error:
            raise self.error


def _placed(path, offset, monkeypatch, error=None, numel=3000):
    """A reader whose tensor "w" (``numel`` float32) is taken to start ``offset`` bytes into the file."""
    r = CheckpointReader(path)
    r._entries["w"] = (0, StoredTensor("w", torch.float32, (numel,), offset))
    calls = []
    monkeypatch.setattr(r, "_map", lambda i: _Spy(calls, error))
    return r, calls


def test_prefetch_rounds_down_to_the_page_before(path, monkeypatch):
    r, calls = _placed(path, 2 * PAGE - 4, monkeypatch)  # the first element ends a page
    r.prefetch("w")
    assert calls == [(mmap.MADV_WILLNEED, PAGE, 2 * PAGE - 4 + 12000 - PAGE)]


def test_release_from_the_start_of_a_page_aligned_tensor(path, monkeypatch):
    r, calls = _placed(path, PAGE, monkeypatch)
    r.release("w")  # bytes PAGE .. PAGE + 12000: the pages PAGE .. PAGE + 8192 when pages are 4096 bytes
    assert calls == [(mmap.MADV_DONTNEED, PAGE, (PAGE + 12000) // PAGE * PAGE - PAGE)]


def test_release_of_a_middle_range_in_bytes(path, monkeypatch):
    r, calls = _placed(path, 0, monkeypatch, numel=6000)
    r.release("w", 1100, 6000)  # bytes 4400 .. 24000: with 4096-byte pages, 8192 .. 20480
    begin = -(-4400 // PAGE) * PAGE
    assert calls == [(mmap.MADV_DONTNEED, begin, 24000 // PAGE * PAGE - begin)]


def test_release_of_a_range_that_holds_no_whole_page_advises_nothing(path, monkeypatch):
    r, calls = _placed(path, 0, monkeypatch)
    r.release("w", 1, PAGE // 4 + 5)  # bytes 4 .. PAGE + 20: rounded in, both ends are PAGE
    assert calls == []


@pytest.mark.parametrize("error", [OSError(22, "Invalid argument"), ValueError("madvise failed")])
def test_refused_advice_is_ignored(path, monkeypatch, error):
    r, calls = _placed(path, 0, monkeypatch, error)
    r.prefetch("w")
    r.release("w")
    assert [c[0] for c in calls] == [mmap.MADV_WILLNEED, mmap.MADV_DONTNEED]


def test_prefetch_without_madv_dontneed_still_advises(path, monkeypatch):
    r, calls = _placed(path, 0, monkeypatch)
    monkeypatch.delattr(mmap, "MADV_DONTNEED")
    r.prefetch("w")
    assert calls == [(mmap.MADV_WILLNEED, 0, 12000)]


def test_no_prefetch_where_the_system_has_no_madv_willneed(path, monkeypatch):
    r, calls = _placed(path, 0, monkeypatch)
    monkeypatch.delattr(mmap, "MADV_WILLNEED")
    r.prefetch("w")
    assert calls == []


def test_advice_on_the_real_mapping(path):
    with CheckpointReader(path) as r:
        r.prefetch("w")
        r.release("w")
        assert isinstance(r._maps[0], mmap.mmap)
        assert r.get("w").tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
