"""transcribe appends records batch by batch; a run killed midway and resumed gives the same file as an
uninterrupted one, decoding only what was missing; a torn last line is dropped, a foreign file refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ManifestError
from asr_analogy.io.manifest import read_manifest, write_manifest
from asr_analogy.speech import transcribe as transcribe_module
from asr_analogy.speech.transcribe import transcribe

REPO = Path(__file__).resolve().parents[2]

KILL_AT_SECOND_BATCH = """
import os, signal, sys
from asr_analogy.speech import transcribe as t
decode, calls = t._whisper_batch, []
def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the first batch is on disk; die before the second is
        os.kill(os.getpid(), signal.SIGKILL)
    return decode(*args, **kwargs)
t._whisper_batch = dying
t.transcribe(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=2, device="cpu", progress=False)
"""


@pytest.fixture(scope="module")
def manifest(speech_manifest, tmp_path_factory) -> Path:
    """Five records, three batches of two at most: ids, one record without id (keyed by its audio path), one
    unreadable clip."""
    recs = read_manifest(speech_manifest)
    root = tmp_path_factory.mktemp("resume")
    rows = [{**recs[0], "id": "a"}, {**recs[1], "id": "b"}, {k: v for k, v in recs[2].items()},
            {"audio_filepath": str(root / "missing.wav"), "text": "gone", "id": "m"}, {**recs[2], "id": "c"}]
    return write_manifest(rows, root / "manifest.jsonl")


@pytest.fixture(scope="module")
def uninterrupted(tiny_whisper_dir, manifest, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("whole") / "hyps.jsonl"
    transcribe(tiny_whisper_dir, manifest, out, batch_size=2, device="cpu", progress=False)
    return out.read_bytes()


def _count_decoded(monkeypatch) -> list[int]:
    """Patch the Whisper batch decoder to record the size of every batch it decodes."""
    sizes, decode = [], transcribe_module._whisper_batch

    def counting(model, processor, fe, audios, *args):
        sizes.append(len(audios))
        return decode(model, processor, fe, audios, *args)

    monkeypatch.setattr(transcribe_module, "_whisper_batch", counting)
    return sizes


def test_a_killed_run_resumed_gives_the_same_file(tiny_whisper_dir, manifest, uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "hyps.jsonl"
    proc = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_BATCH, str(tiny_whisper_dir), str(manifest), str(out)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # The first batch (the two longest clips) is on disk, whole lines, in the order decoded.
    partial = [json.loads(line) for line in out.read_text().splitlines()]
    whole = [json.loads(line) for line in uninterrupted.decode().splitlines()]
    longest = sorted(whole, key=lambda r: -(r.get("duration") or 0))[:2]
    assert len(partial) == 2 and all(r["hypothesis"] for r in partial)
    assert [r.get("id") for r in partial] == [r.get("id") for r in longest]
    # A kill in the middle of a write leaves a torn last line: dropped on resume, never kept.
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"audio_filepath": "x.wav", "hypoth')
    sizes = _count_decoded(monkeypatch)
    r = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(manifest), str(out), "--batch-size", "2",
                                  "--device", "cpu", "--resume"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == uninterrupted
    assert sizes == [2]  # the second batch only; the third is the unreadable clip alone, the first is on disk
    # Resuming a finished file decodes nothing and leaves it as it is.
    r = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(manifest), str(out), "--batch-size", "2",
                                  "--resume"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == uninterrupted and sizes == [2]


def test_a_batch_cut_in_the_middle_is_completed_in_its_own_batch(tiny_whisper_dir, manifest, uninterrupted, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "hyps.jsonl"
    lines = uninterrupted.decode().splitlines(keepends=True)
    first = [json.loads(line) for line in lines]
    order = sorted(range(5), key=lambda i: -(first[i].get("duration") or 0))
    # batch 1 whole, then batch 2 cut after its first record, in the middle of its second
    out.write_text("".join(lines[i] for i in order[:3]) + lines[order[3]][:10], encoding="utf-8")
    sizes = _count_decoded(monkeypatch)
    transcribe(tiny_whisper_dir, manifest, out, batch_size=2, device="cpu", progress=False, resume=True)
    assert out.read_bytes() == uninterrupted
    assert sizes == [2]  # batch 2 decoded whole, as in the uninterrupted run; only its missing record is added


def test_resume_refuses_the_output_of_another_manifest(tiny_whisper_dir, manifest, tmp_path):
    out = tmp_path / "hyps.jsonl"
    foreign = json.dumps({"audio_filepath": "/elsewhere/x.wav", "text": "", "id": "zz", "hypothesis": "hi"}) + "\n"
    out.write_text(foreign, encoding="utf-8")
    with pytest.raises(ManifestError, match="holds 1 record.* the manifest does not have .first: zz"):
        transcribe(tiny_whisper_dir, manifest, out, device="cpu", progress=False, resume=True)
    assert out.read_text(encoding="utf-8") == foreign
    out.write_text("not json\n" + foreign, encoding="utf-8")
    with pytest.raises(ManifestError, match="hyps.jsonl:1: not a transcript record"):
        transcribe(tiny_whisper_dir, manifest, out, device="cpu", progress=False, resume=True)


def test_cli_asks_for_resume_or_force(tiny_whisper_dir, manifest, tmp_path):
    out = tmp_path / "hyps.jsonl"
    out.write_text("", encoding="utf-8")
    r = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(manifest), str(out)])
    assert r.exit_code == 2 and "pass --resume to continue it or --force to replace it" in r.output
    r = CliRunner().invoke(main, ["transcribe", str(tiny_whisper_dir), str(manifest), str(out), "--resume", "--force"])
    assert r.exit_code == 2 and "give one" in r.output
    assert out.read_text(encoding="utf-8") == ""
