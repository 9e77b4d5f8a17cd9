"""Inputs are never modified or deleted: every command that writes refuses an output that is, contains, or lies
inside one of its inputs, with or without --force, and writes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import OutputExistsError
from asr_analogy.io.atomic import refuse_overlap


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def inputs(tmp_path):
    """A model-like folder, a manifest, a table, a text file: all the command needs to reach its checks."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "a.wav", "text": "hi"}\n')
    (tmp_path / "t.csv").write_text("path,text\na.wav,hi\n")
    (tmp_path / "s.txt").write_text("hello\n")
    (tmp_path / "hyps.jsonl").write_text('{"text": "a", "hypothesis": "a"}\n')
    return tmp_path


CASES = [
    # (command line with {root}, which input the output collides with, relation)
    ("vector {root}/model {root}/model {root}/model --force", "is"),
    ("vector {root}/model {root}/model {root}/model/tau.safetensors", "lies inside"),
    ("apply-vector {root}/model {root}/m.jsonl {root} --force", "contains"),
    ("apply-vector {root}/model {root}/m.jsonl {root}/model --force", "is"),
    ("transcribe {root}/model {root}/m.jsonl {root}/m.jsonl --force", "is"),
    ("transcribe {root}/model {root}/m.jsonl {root}/model/hyps.jsonl", "lies inside"),
    ("evaluate {root}/hyps.jsonl --out {root}/hyps.jsonl", "is"),
    ("import-ct2 {root}/model {root}/model --force", "is"),
    ("shorten-audio-context {root}/model {root} --seconds 8 --force", "contains"),
    ("prep csv {root}/t.csv {root} --force", "contains"),
    ("prep audiofolder {root}/model {root}/model/out --force", "lies inside"),
    ("prep nemo {root}/m.jsonl {root} --force", "contains"),
    ("synthesize {root}/s.txt {root} --backend espeak --force", "contains"),
]


@pytest.mark.parametrize("line, relation", CASES, ids=[c[0].split(" {")[0] + f"-{i}" for i, c in enumerate(CASES)])
def test_an_output_overlapping_an_input_is_refused(inputs, line, relation):
    before = _tree_hash(inputs)
    result = CliRunner().invoke(main, line.format(root=inputs).split())
    assert result.exit_code == 2, result.output
    assert f" {relation} the input " in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    assert _tree_hash(inputs) == before


def test_finetune_output_dir_that_is_the_model_is_refused(inputs):
    cfg = inputs / "ft.yaml"
    cfg.write_text(f"model: {inputs / 'model'}\ntrain_manifest: {inputs / 'm.jsonl'}\n"
                   f"output_dir: {inputs / 'model'}\nmax_steps: 1\n")
    before = _tree_hash(inputs)
    result = CliRunner().invoke(main, ["finetune", str(cfg), "--force"])
    assert result.exit_code == 2 and "output_dir" in result.output and " is the input " in result.output
    assert _tree_hash(inputs) == before


def test_refuse_overlap_follows_symlinks_and_ignores_hub_ids(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputExistsError, match="is the input"):
        refuse_overlap(tmp_path / "link", [tmp_path / "real"])
    with pytest.raises(OutputExistsError, match="lies inside the input"):
        refuse_overlap(tmp_path / "link" / "out", [tmp_path / "real"])
    refuse_overlap(tmp_path / "elsewhere", [tmp_path / "real", "openai/whisper-tiny", None])  # no error
    refuse_overlap(tmp_path / "real2", [tmp_path / "real"])  # a shared name prefix is not containment
