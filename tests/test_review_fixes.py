"""Refusals found by an outside read: inputs named only as copy_files_from, non-finite vectors given to compress
and diagnose, store metadata of the wrong shape, a debug switch set to 0, and a swap that fails half-way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.atomic import atomic_dir, clean_stale_temporaries
from tests.merge.conftest import save_tiny_llamas


@pytest.fixture(scope="module")
def llamas(tmp_path_factory):
    return save_tiny_llamas(tmp_path_factory.mktemp("llamas"))


def _files(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merge_refuses_to_replace_its_copy_files_from_folder(llamas, tmp_path):
    from asr_analogy.merge import merge

    extra = tmp_path / "tokenizer_source"
    extra.mkdir()
    (extra / "config.json").write_text((llamas["base"] / "config.json").read_text())
    (extra / "weights.bin").write_bytes(b"precious")
    cfg = {"merge_method": "task_arithmetic", "base_model": str(llamas["base"]),
           "models": [{"model": str(llamas["ft0"])}], "copy_files_from": str(extra)}
    before = _files(extra)
    with pytest.raises(OutputExistsError, match="is the input"):
        merge(cfg, extra, force=True, progress=False)
    assert _files(extra) == before


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_compress_and_diagnose_refuse_a_non_finite_vector(llamas, tmp_path, bad):
    from safetensors.torch import load_file, save_file

    from asr_analogy.merge import read_vector_metadata, vector
    from asr_analogy.merge.compressed import compress
    from asr_analogy.store.diagnose import diagnose

    tau = vector(llamas["ft0"], llamas["base"], tmp_path / "tau.safetensors", progress=False)
    tensors, meta = load_file(tau), read_vector_metadata(tau)
    name = sorted(tensors)[1]
    tensors[name].view(-1)[7] = bad
    save_file(tensors, tmp_path / "bad.safetensors", metadata=meta)
    for method in ("int8", "int4", "topk:0.1", "lowrank:4"):
        with pytest.raises(MergeError, match=rf"tensor {name!r} contains (NaN|Inf)"):
            compress(tmp_path / "bad.safetensors", tmp_path / f"c-{method}.safetensors", method, progress=False)
        assert not (tmp_path / f"c-{method}.safetensors").exists()
    with pytest.raises(MergeError, match=rf"tensor {name!r} holds NaN or Inf"):
        diagnose([tau, tmp_path / "bad.safetensors"], progress=False)


def test_store_metadata_of_the_wrong_shape_is_one_line(llamas, tmp_path):
    from asr_analogy.merge import vector

    tau = vector(llamas["ft0"], llamas["base"], tmp_path / "tau.safetensors", progress=False)
    result = CliRunner().invoke(main, ["store", "add", "x", str(tau), "--store", str(tmp_path / "s"),
                                       "--meta", "metrics=5"])
    assert result.exit_code == 2 and "--meta metrics takes named values" in result.output
    result = CliRunner().invoke(main, ["store", "add", "x", str(tau), "--store", str(tmp_path / "s"),
                                       "--meta", "nokey"])
    assert result.exit_code == 2 and "--meta 'nokey': expected KEY=VALUE" in result.output


def test_debug_switch_set_to_zero_keeps_errors_to_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ASR_ANALOGY_DEBUG", "0")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    monkeypatch.setenv("ASR_ANALOGY_DEBUG", "1")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing.jsonl")])
    assert result.exit_code != 2 and result.exception is not None


def test_a_swap_that_fails_half_way_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("old")
    real_replace, calls = os.replace, []

    def second_rename_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(OSError):
        with atomic_dir(out, force=True) as tmp:
            (tmp / "a").write_text("new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_killed_swap_is_restored_by_the_next_run(tmp_path):
    import subprocess
    import sys

    from asr_analogy.io.atomic import _host

    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    old = tmp_path / f".out.old-{_host()}-{pid}-zz"
    (old / "x").mkdir(parents=True)
    (old / "x" / "a").write_text("old")  # killed between its two renames: the output is only here
    clean_stale_temporaries(tmp_path / "out")
    assert (tmp_path / "out" / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
