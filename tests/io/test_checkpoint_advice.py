"""Page advice of the lazy reader: which byte ranges ``prefetch`` and ``release`` hand to ``madvise``, by hand.

A float32 tensor of 3000 entries (12000 bytes) starts ``offset`` bytes into its file; with 4096-byte pages,
prefetch asks for whole pages around the range, release drops only the whole pages inside it.
"""

import mmap

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.io.checkpoint import CheckpointReader

PAGE = mmap.PAGESIZE


class _Spy:
    def __init__(self, log):
        self.log = log

    def madvise(self, flag, start, length):
        self.log.append((flag, start, length))


@pytest.fixture
def reader(tmp_path, monkeypatch):
    save_file({"a": torch.zeros(5), "w": torch.arange(3000, dtype=torch.float32)}, tmp_path / "m.safetensors")
    r = CheckpointReader(tmp_path / "m.safetensors")
    calls = []
    monkeypatch.setattr(r, "_map", lambda i: _Spy(calls))
    yield r, calls, r._entries["w"][1].offset
    r.close()


def _down(x):
    return x // PAGE * PAGE


def _up(x):
    return -(-x // PAGE) * PAGE


def test_prefetch_asks_for_the_pages_around_the_tensor(reader):
    r, calls, offset = reader
    r.prefetch("w")
    begin, end = _down(offset), offset + 12000
    assert calls == [(mmap.MADV_WILLNEED, begin, end - begin)]


def test_release_drops_only_whole_pages_inside_the_range(reader):
    r, calls, offset = reader
    r.release("w")  # the whole tensor
    r.release("w", 500, 2900)  # bytes offset + 2000 .. offset + 11600
    r.release("w", 0, 10)  # 40 bytes: no whole page inside
    assert calls == [
        (mmap.MADV_DONTNEED, _up(offset), _down(offset + 12000) - _up(offset)),
        (mmap.MADV_DONTNEED, _up(offset + 2000), _down(offset + 11600) - _up(offset + 2000)),
    ]
    assert _down(offset + 11600) > _up(offset + 2000)  # the second range holds a whole page


def test_no_advice_without_a_flag_or_for_torch_files(reader, tmp_path, monkeypatch):
    r, calls, _ = reader
    monkeypatch.delattr(mmap, "MADV_DONTNEED")
    r.release("w")
    assert calls == []
    torch.save({"w": torch.zeros(3000)}, tmp_path / "pytorch_model.bin")
    with CheckpointReader(tmp_path / "pytorch_model.bin") as t:
        monkeypatch.setattr(t, "_map", lambda i: _Spy(calls))
        t.prefetch("w")
        t.release("w", 0, 3000)
    assert calls == []
