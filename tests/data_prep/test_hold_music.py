"""Fetching the real hold music: apt-get download of asterisk-moh-opsound-wav only, cached, no apt-get update
unless asked; the tracks listed in sorted order."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from data_prep import hold_music, ivr_prompts
from data_prep._common import CorpusError


def _fake_deb(path: Path) -> None:
    """A .deb in the Python unpacker's reach: an ar archive whose data.tar holds one moh track."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"RIFF-not-really-audio"
        info = tarfile.TarInfo("./usr/share/asterisk/moh/track.wav")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    header = f"{'data.tar/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
    path.write_bytes(b"!<arch>\n" + header + body + (b"\n" if len(body) % 2 else b""))


def test_download_fetches_only_the_music_package_once(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, cwd=None, **kwargs):
        calls.append(cmd)
        if cmd[:2] == ["apt-get", "download"]:
            for pkg in cmd[2:]:
                _fake_deb(Path(cwd) / f"{pkg}_2.03-1.1_all.deb")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        raise AssertionError(f"unexpected command {cmd}")

    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: None if cmd == "dpkg" else "/usr/bin/" + cmd)
    monkeypatch.setattr(ivr_prompts.subprocess, "run", fake_run)
    tree = hold_music.download(tmp_path / "cache", echo=None)
    assert calls == [["apt-get", "download", "asterisk-moh-opsound-wav"]]
    assert [p.name for p in hold_music.music_files(tree)] == ["track.wav"]
    assert hold_music.download(tmp_path / "cache", echo=None) == tree and len(calls) == 1  # cached


def test_stale_lists_are_not_updated_unless_asked(tmp_path, monkeypatch):
    def fake_run(cmd, cwd=None, **kwargs):
        assert cmd[1] != "update"
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package asterisk-moh-opsound-wav\n")

    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(ivr_prompts.subprocess, "run", fake_run)
    monkeypatch.setattr(ivr_prompts.os, "geteuid", lambda: 0)
    with pytest.raises(CorpusError, match=r"apt does not know asterisk-moh-opsound-wav yet.*--apt-update"):
        hold_music.download(tmp_path / "cache", echo=None)


def test_music_files_are_sorted_and_an_empty_folder_says_what_to_do(tmp_path):
    for name in ("b.wav", "a.wav", "notes.txt"):
        (tmp_path / "m" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "m" / "sub" / name).write_bytes(b"x")
    assert [p.name for p in hold_music.music_files(tmp_path / "m")] == ["a.wav", "b.wav"]
    with pytest.raises(CorpusError, match=r"holds no \.wav file \(fetch asterisk-moh-opsound-wav with `make noise`"):
        hold_music.music_files(tmp_path / "empty")
