import errno
import os
import socket
import stat
import subprocess
import sys

import pytest

from asr_analogy.io.atomic import _alive, _host, atomic_dir, atomic_file, clean_stale_temporaries


@pytest.fixture
def dead_pid():
    """The id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture
def echo_child():
    """A running process this test owns that answers one line on stdin with "alive"."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline(); print('alive')"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield child
    child.kill()
    child.wait()
    child.stdin.close()
    child.stdout.close()


def test_host_keeps_letters_digits_dots_and_underscores(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "Node-7.Lab_x/ü " + "y" * 40)
    # "-", "/", "ü" and " " become "_"; cut at 40 characters
    assert _host() == "Node_7.Lab_x___" + "y" * 25
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert _host() == "host"


def test_asking_whether_a_writer_lives_sends_it_no_signal(echo_child):
    assert _alive(echo_child.pid)
    echo_child.stdin.write(b"still there?\n")
    echo_child.stdin.flush()
    assert echo_child.stdout.readline() == b"alive\n"  # a real signal (say SIGHUP) would have ended it first


def test_a_writer_owned_by_someone_else_counts_as_alive(tmp_path, monkeypatch, dead_pid):
    def not_permitted(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_permitted)
    assert _alive(dead_pid)
    theirs = tmp_path / f".out.tmp-{_host()}-{dead_pid}-abc"
    theirs.mkdir()
    assert clean_stale_temporaries(tmp_path / "out") == []
    assert theirs.is_dir()


@pytest.mark.parametrize("new_in_place", [False, True])
def test_an_old_output_comes_back_only_when_its_replacement_is_missing(tmp_path, dead_pid, new_in_place):
    """A replacement killed between its two renames: the old output goes back in place unless the new one is."""
    if new_in_place:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "weights.bin").write_bytes(b"new weights")
    old = tmp_path / f".out.old-{_host()}-{dead_pid}-abc"
    (old / "x").mkdir(parents=True)
    (old / "x" / "weights.bin").write_bytes(b"old weights")
    assert clean_stale_temporaries(tmp_path / "out") == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (b"new weights" if new_in_place else b"old weights")


def test_a_half_written_temporary_never_becomes_the_output(tmp_path, dead_pid):
    tmp = tmp_path / f".out.tmp-{_host()}-{dead_pid}-abc"
    (tmp / "x").mkdir(parents=True)  # a temporary whose content happens to be named like an old output's
    (tmp / "x" / "weights.bin").write_bytes(b"half written")
    stale_file = tmp_path / f".out.tmp-{_host()}-{dead_pid}-def"
    stale_file.write_bytes(b"half")
    assert sorted(clean_stale_temporaries(tmp_path / "out")) == sorted([tmp, stale_file])
    assert list(tmp_path.iterdir()) == []


def test_a_leftover_removed_meanwhile_by_another_process_is_no_error(tmp_path, monkeypatch, dead_pid):
    stale = tmp_path / f".out.tmp-{_host()}-{dead_pid}-abc"
    stale.write_bytes(b"half")
    real_kill = os.kill

    def other_cleaner_first(pid, sig):  # another run removes the leftover while this one checks its writer
        if pid == dead_pid:
            stale.unlink()
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", other_cleaner_first)
    assert clean_stale_temporaries(tmp_path / "out") == [stale]
    assert list(tmp_path.iterdir()) == []


def test_a_leftover_that_cannot_be_removed_does_not_stop_the_write(tmp_path, monkeypatch, dead_pid):
    stale = tmp_path / f".out.tmp-{_host()}-{dead_pid}-abc"
    stale.mkdir()
    (stale / "part").write_bytes(b"x")

    def busy(path, *args, **kwargs):  # e.g. a file still open on NFS keeps its folder from going
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))

    monkeypatch.setattr(os, "rmdir", busy)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("a")
    assert (tmp_path / "out" / "a").read_text() == "a"


def test_a_folder_that_refuses_fsync_does_not_fail_the_write(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def no_folder_fsync(fd):  # some network file systems refuse fsync on a folder
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", no_folder_fsync)
    with atomic_file(tmp_path / "f.txt") as fh:
        fh.write("x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "g").write_text("y")
    assert (tmp_path / "f.txt").read_text() == "x" and (tmp_path / "d" / "g").read_text() == "y"

