import os

import pytest

from asr_analogy.errors import OutputExistsError
from asr_analogy.io.atomic import atomic_dir, atomic_file


def _siblings(path):
    return sorted(p.name for p in path.iterdir())


def test_atomic_file_writes_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_file(target) as fh:
        fh.write("hello")
        assert not target.exists()  # nothing at the final path until the block ends
    assert target.read_text() == "hello"
    assert _siblings(tmp_path) == ["out.txt"]


def test_atomic_file_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as fh:
            fh.write("new, half written")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["out.txt"]


def test_atomic_dir_refuses_existing_without_force(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.bin").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="already exists.*--force"):
        with atomic_dir(out):
            pytest.fail("body must not run")
    assert (out / "keep.bin").read_bytes() == b"x"
    assert _siblings(tmp_path) == ["model"]


def test_atomic_dir_replaces_with_force_only_when_complete(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.bin").write_bytes(b"old")
    with pytest.raises(ValueError):
        with atomic_dir(out, force=True) as tmp:
            (tmp / "new.bin").write_bytes(b"new")
            raise ValueError("failed midway")
    assert _siblings(out) == ["old.bin"]
    with atomic_dir(out, force=True) as tmp:
        (tmp / "new.bin").write_bytes(b"new")
    assert _siblings(out) == ["new.bin"]
    assert _siblings(tmp_path) == ["model"]


def test_atomic_dir_creates_parents(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("1")
    assert (out / "f").read_text() == "1"
    assert not any(n.startswith(".") for n in os.listdir(out.parent))


def test_outputs_get_umask_permissions_not_tempfile_ones(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "f.txt") as fh:
            fh.write("x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_atomic_dir_yields_an_absolute_temp_path_for_a_relative_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_dir("out") as tmp:
        assert tmp.is_absolute()
    assert (tmp_path / "out").is_dir()


@pytest.fixture
def live_child():
    """A running process this test owns (never the test runner's parent: a liveness check that sent a real
    signal would reach a process outside the test; the mutation run's runner was ended that way)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield child
    child.stdin.close()
    child.kill()
    child.wait()


def test_stale_temporaries_of_dead_writers_are_cleaned_and_no_others(tmp_path, live_child):
    import subprocess
    import sys

    from asr_analogy.io.atomic import _host, atomic_dir, clean_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = _host()
    stale = tmp_path / f".out.tmp-{host}-{dead_pid}-abc"
    stale.mkdir()
    (stale / "model-00001.safetensors").write_bytes(b"x" * 100)
    stale_file = tmp_path / f".out.old-{host}-{dead_pid}-def"
    stale_file.write_text("x")
    live = tmp_path / f".out.tmp-{host}-{live_child.pid}-ghi"  # a running process: never touched
    live.mkdir()
    other_host = tmp_path / f".out.tmp-{host}x-{dead_pid}-jkl"  # another machine's: cannot be proven dead
    other_host.mkdir()
    other_output = tmp_path / f".outer.tmp-{host}-{dead_pid}-mno"  # another output's
    other_output.mkdir()
    unnamed = tmp_path / ".out.tmp-q1w2e3"  # not in this module's naming: cannot be proven
    unnamed.mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("a")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out", live.name, other_host.name, other_output.name, unnamed.name])
    assert clean_stale_temporaries(tmp_path / "out") == []
    assert live_child.poll() is None  # asking whether the writer lives sends it no signal


def test_atomic_file_cleans_a_folder_once_per_process(tmp_path):
    import subprocess
    import sys

    from asr_analogy.io.atomic import _host

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = tmp_path / f".a.wav.tmp-{_host()}-{dead}-abc"  # another output's leftover in the same folder
    stale.write_bytes(b"x" * 10)
    with atomic_file(tmp_path / "b.wav", "wb") as fh:
        fh.write(b"b")
    assert not stale.exists()
    later = tmp_path / f".c.wav.tmp-{_host()}-{dead}-def"
    later.write_bytes(b"x")
    with atomic_file(tmp_path / "d.wav", "wb") as fh:  # the folder was listed once already in this process
        fh.write(b"d")
    assert later.exists() and sorted(p.name for p in tmp_path.iterdir()) == [later.name, "b.wav", "d.wav"]


def test_temporary_dir_is_a_hidden_sibling_with_usual_permissions(tmp_path):
    import stat

    from asr_analogy.io.atomic import _host, temporary_dir

    old = os.umask(0o022)
    try:
        tmp = temporary_dir(tmp_path / "deep" / "er" / "out")  # its parents are made
    finally:
        os.umask(old)
    assert tmp.parent == tmp_path / "deep" / "er" and tmp.is_dir()
    assert tmp.name.startswith(f".out.tmp-{_host()}-{os.getpid()}-")
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o755
    again = temporary_dir(tmp_path / "deep" / "er" / "out")  # an existing folder is fine; a live one stays
    assert again != tmp and tmp.is_dir()


@pytest.mark.parametrize("out,relation", [("in", "is"), ("in/sub/x", "lies inside"), (".", "contains")])
def test_refuse_overlap_names_the_relation(tmp_path, monkeypatch, out, relation):
    from asr_analogy.io.atomic import refuse_overlap

    (tmp_path / "in").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputExistsError) as info:
        refuse_overlap(out, [None, "hub/model-id", "in"])
    assert str(info.value) == (f"output {out} {relation} the input in; choose an output path apart from the inputs "
                               "(nothing was written)")
    with pytest.raises(OutputExistsError, match=f"^merged {out} {relation} the input in;"):
        refuse_overlap(out, ["in"], what="merged")


def test_refuse_overlap_lets_apart_paths_through(tmp_path):
    from asr_analogy.io.atomic import refuse_overlap

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    refuse_overlap(tmp_path / "b" / "out", [tmp_path / "a", None, tmp_path / "missing"])
    refuse_overlap(tmp_path / "ab", [tmp_path / "a"])  # a shared name prefix is not containment
    with pytest.raises(OutputExistsError, match="lies inside the input"):  # a later input still counts
        refuse_overlap(tmp_path / "b" / "out", [tmp_path / "a", tmp_path / "b"])
