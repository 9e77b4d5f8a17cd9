"""Operating-system errors end as one line naming what and where, exit status 2, no traceback (--debug shows it)."""

from __future__ import annotations

import errno
import os

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main


@pytest.fixture
def hyps(tmp_path):
    path = tmp_path / "hyps.jsonl"
    path.write_text('{"id": "a", "audio_filepath": "a.wav", "text": "press one", "hypothesis": "press one"}\n')
    return path


def test_disk_full_while_writing_is_one_line(hyps, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(fd):  # the first flush of a written file finds the disk full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "summary.json"))

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(main, ["evaluate", str(hyps), "--out", str(tmp_path / "summary.json")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: No space left on device: {tmp_path / 'summary.json'}"
    assert not (tmp_path / "summary.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hyps.jsonl"]  # no temporary left behind


def test_output_below_a_regular_file_is_one_line(hyps, tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = CliRunner().invoke(main, ["evaluate", str(hyps), "--out", str(tmp_path / "notes.txt" / "summary.json")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: File exists: {tmp_path / 'notes.txt'}"  # mkdir of the parent


def test_debug_shows_the_traceback(hyps, tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = CliRunner().invoke(main, ["--debug", "evaluate", str(hyps), "--out", str(tmp_path / "notes.txt" / "s.json")])
    assert isinstance(result.exception, FileExistsError)


def test_non_utf8_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"audio_filepath": "a.wav", "text": "caf\xe9", "hypothesis": "x"}\n')
    result = CliRunner().invoke(main, ["evaluate", str(bad)])
    assert result.exit_code == 2 and "not UTF-8" in result.output and str(bad) in result.output
    assert "Traceback" not in result.output


def test_evaluate_by_a_field_no_record_has_is_refused(hyps):
    result = CliRunner().invoke(main, ["evaluate", str(hyps), "--by", "speakr"])
    assert result.exit_code == 2 and f"error: {hyps}: no record has the field 'speakr' to group on (--by)" in result.output


def test_shorten_audio_context_names_the_option(tmp_path):
    (tmp_path / "m").mkdir()
    result = CliRunner().invoke(main, ["shorten-audio-context", str(tmp_path / "m"), str(tmp_path / "o"), "--seconds", "0"])
    assert result.exit_code == 2 and "'--seconds'" in result.output and not (tmp_path / "o").exists()
