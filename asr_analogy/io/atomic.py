"""Atomic outputs: write into a temporary sibling, then rename into place.

A process killed midway leaves at most a hidden ``.<name>.tmp-<host>-<pid>-*`` sibling, never a partial output
at the final path. Such leftovers are removed when they are provably stale (made on this host by a process that
no longer runs: ``clean_stale_temporaries``): by the next ``atomic_dir`` write of the same output, and by a
process's first ``atomic_file`` write into the same folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from asr_analogy.errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def _prefix(path: Path, kind: str) -> str:
    """``.<name>.<kind>-<host>-<pid>-``: the temporaries of one process, recognisable by a later run."""
    return f".{path.name}.{kind}-{_host()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(path: str | os.PathLike, *, every_output: bool = False) -> list[Path]:
    """Remove the temporaries that killed writes of ``path`` left beside it: only those named by this module
    for this host whose process is gone (a live writer's, or another host's, are never touched). With
    ``every_output``, those of every output in ``path``'s folder. Returns them."""
    path = Path(path).absolute()
    if not path.parent.is_dir():
        return []
    name = ".+" if every_output else re.escape(path.name)
    pattern = re.compile(rf"^\.(?P<name>{name})\.(?P<kind>tmp|old)-{re.escape(_host())}-(?P<pid>\d+)-[^/]+$")
    removed = []
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        output = path.parent / m["name"]
        if m["kind"] == "old" and (entry / "x").exists() and not output.exists():
            os.replace(entry / "x", output)  # a replacement killed between its two renames: keep the old output
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


_CLEANED_FOLDERS: set[Path] = set()


def _clean_folder_once(path: Path) -> None:
    """``clean_stale_temporaries`` for every output of ``path``'s folder, once per folder and process: files
    are written by the thousand into one folder (audio, TTS caches), and one listing of it is enough."""
    folder = path.absolute().parent
    if folder not in _CLEANED_FOLDERS:
        _CLEANED_FOLDERS.add(folder)
        clean_stale_temporaries(path, every_output=True)


def temporary_dir(path: str | os.PathLike) -> Path:
    """A new hidden folder beside ``path`` named as this module's temporaries of ``path``
    (``.<name>.tmp-<host>-<pid>-*``), after removing the stale ones of killed runs; the caller removes it."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path, "tmp"), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the final folders the usual permissions
    return tmp


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file beside ``path``; on clean exit, fsync and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_folder_once(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path, "tmp"), dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the final file the usual permissions
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on clean exit, rename it to ``path``.

    Refuses (``OutputExistsError``) when ``path`` exists and ``force`` is false; this check happens before
    anything is written. With ``force``, the old directory is replaced only after the new one is complete.
    On an exception the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path).absolute()  # the yielded temp dir is absolute, so paths recorded inside it never go stale
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path, "tmp"), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the final directory the usual permissions
    old = None
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path, "old"), dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if old is not None and (old / "x").exists() and not path.exists():
            os.replace(old / "x", path)  # the swap failed half-way: the old output goes back in place
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_overlap(out: str | os.PathLike, inputs, what: str = "output") -> None:
    """Refuse an output path that is, contains, or lies inside any of ``inputs`` (paths resolved, symlinks
    followed), whether or not it exists yet and whatever ``--force`` says: replacing it could destroy an input.
    Inputs that are not local paths (hub ids) are ignored. Raises ``OutputExistsError`` naming both paths."""
    target = Path(out).expanduser().resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).expanduser()
        if not source.exists():
            continue
        source = source.resolve()
        if target == source:
            relation = "is"
        elif target.is_relative_to(source):
            relation = "lies inside"
        elif source.is_relative_to(target):
            relation = "contains"
        else:
            continue
        raise OutputExistsError(f"{what} {out} {relation} the input {item}; choose an output path apart from the "
                                "inputs (nothing was written)")
