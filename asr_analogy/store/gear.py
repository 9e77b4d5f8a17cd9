"""A local store of task vectors, content-addressed, each entry a folder the Hugging Face Hub accepts as is.

Layout of the store directory (``--store DIR``, else ``$ASR_ANALOGY_STORE``, else ``~/.cache/asr_analogy/store``
under ``$XDG_CACHE_HOME`` when set)::

    index.json                        {"version": 1, "entries": {NAME: {...record...}}}
    .lock                             fcntl lock held while the index is read and rewritten
    vectors/<sha256>/task_vector.safetensors   the vector's bytes; <sha256> is their SHA-256
    vectors/<sha256>/README.md                 model card (``store.card``) with the record

A record holds ``sha256`` (of the vector file), ``card_sha256``, ``base_fingerprint`` (the full fingerprint of
the base, ``io.checkpoint``), ``base_name``, ``architecture``, ``method``, ``compression``, ``provenance``
(how it was made, with ``--meta`` keys such as ``data`` or ``steps``), ``metrics``, ``license``, ``created``
(UTC, ISO 8601) and ``nbytes``. Two names may share one folder (the same bytes); the card keeps the first
add's description. ``index.json`` is replaced atomically under the lock, so concurrent ``add``/``rm`` never
lose or corrupt entries; vector bytes are copied (and hashed in the same pass) before the lock is taken.
Sharing an entry is ``hf upload REPO DIR/vectors/<sha256>``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from asr_analogy.errors import CheckpointError, ConfigError, MergeError, OutputExistsError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.checkpoint import CheckpointReader, fingerprint_mismatch
from asr_analogy.io.hashing import file_sha256
from asr_analogy.merge.vector_format import read_vector_metadata, vector_provenance

ENV = "ASR_ANALOGY_STORE"
VECTOR_FILE = "task_vector.safetensors"
CARD_FILE = "README.md"
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
METHODS = ("task_arithmetic", "ties", "dare_ties", "dare_linear", "magnitude_prune", "breadcrumbs", "breadcrumbs_ties")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KNOWN = {"base_name", "base_model", "architecture", "metrics", "license", "licence"}


def store_dir(store: str | os.PathLike | None = None) -> Path:
    """The store directory: ``store``, else ``$ASR_ANALOGY_STORE``, else the user cache."""
    if store:
        return Path(store).expanduser()
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "asr_analogy" / "store"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the store's exclusive lock (fcntl) for the block."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_index(root: Path) -> dict:
    path = root / INDEX_FILE
    if not path.exists():
        return {"version": 1, "entries": {}}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: store index is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("entries"), dict):
        raise CheckpointError(f"{path}: store index has no 'entries' mapping")
    return index


def _write_index(root: Path, index: dict) -> None:
    with atomic_file(root / INDEX_FILE) as fh:
        json.dump(index, fh, indent=1, sort_keys=True)
        fh.write("\n")


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` and return the SHA-256 of the bytes copied (one pass)."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(16 << 20):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ConfigError(f"store name {name!r}: use letters, digits, '.', '_' and '-' (no ':' or '/'), "
                          "starting with a letter or digit")
    return name


def _architecture(base: str | None) -> str:
    """``architectures[0]`` (else ``model_type``) of the base's config.json, when the base path still exists."""
    config = Path(base) / "config.json" if base else None
    if config is None or not config.is_file():
        return ""
    with contextlib.suppress(OSError, ValueError, TypeError, IndexError):
        data = json.loads(config.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return str((data.get("architectures") or [data.get("model_type") or ""])[0])
    return ""


def _record(meta: Mapping[str, str], user: Mapping, sha: str, nbytes: int) -> dict:
    """The index record of a vector from its file metadata and the user's ``--meta`` values."""
    provenance = vector_provenance(meta)
    base = provenance.get("base") if isinstance(provenance.get("base"), str) else None
    if not isinstance(user.get("metrics") or {}, Mapping):
        raise ConfigError("--meta metrics takes named values: metrics.KEY=VALUE (e.g. metrics.wer=12.3)")
    extra = {k: v for k, v in user.items() if k not in _KNOWN}
    return {
        "sha256": sha,
        "base_fingerprint": meta.get("base_fingerprint", ""),
        "base_name": str(user.get("base_name") or (Path(base).name if base else "")),
        "base_model": str(user.get("base_model") or ""),
        "architecture": str(user.get("architecture") or _architecture(base)),
        "method": meta.get("method", ""),
        "compression": meta.get("compression", ""),
        "provenance": {**provenance, **extra},
        "metrics": dict(user.get("metrics") or {}),
        "license": str(user.get("license") or user.get("licence") or ""),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "nbytes": nbytes,
    }


def add(name: str, vector: str | os.PathLike, *, store: str | os.PathLike | None = None,
        meta: Mapping | None = None, force: bool = False) -> dict:
    """Add the task-vector file ``vector`` (a ``.safetensors`` file, full or compressed) as ``name``. ``meta``:
    ``base_name``, ``base_model`` (a hub id), ``architecture``, ``metrics`` (a mapping), ``license`` and any
    other keys, recorded in the provenance (e.g. ``data``, ``steps``). Adding the same bytes again under a name
    that holds them is a no-op; a name holding other bytes is refused unless ``force``. Returns the record."""
    from asr_analogy.store.card import model_card

    _check_name(name)
    src = Path(vector)
    if not src.is_file():
        raise CheckpointError(f"{vector}: not a file (the store takes one .safetensors task-vector file)")
    vmeta = read_vector_metadata(src)
    root = store_dir(store)
    objects = root / "vectors"
    objects.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=objects))
    try:
        sha = _copy_hashing(src, tmp / VECTOR_FILE)
        record = _record(vmeta, dict(meta or {}), sha, (tmp / VECTOR_FILE).stat().st_size)
        model_card(name, record).save(tmp / CARD_FILE)
        with _locked(root):
            index = _read_index(root)
            old = index["entries"].get(name)
            if old is not None and old["sha256"] != sha and not force:
                raise OutputExistsError(f"store entry {name!r} already holds another vector ({old['sha256'][:12]}); "
                                        "pass --force to replace it, or choose another name")
            folder = objects / sha
            if not folder.exists():
                os.replace(tmp, folder)
            record["card_sha256"] = file_sha256(folder / CARD_FILE)
            index["entries"][name] = record
            _write_index(root, index)  # the index first: it never names a folder that is gone
            if old is not None and old["sha256"] != sha:
                _drop_unused(root, index, old["sha256"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"name": name, **record}


def _drop_unused(root: Path, index: dict, sha: str) -> None:
    if not any(e["sha256"] == sha for e in index["entries"].values()):
        shutil.rmtree(root / "vectors" / sha, ignore_errors=True)


def list_entries(store: str | os.PathLike | None = None) -> list[dict]:
    """Every entry's record with its ``name``, sorted by name."""
    entries = _read_index(store_dir(store))["entries"]
    return [{"name": n, **entries[n]} for n in sorted(entries)]


def show(name: str, store: str | os.PathLike | None = None) -> dict:
    """The record of ``name`` with ``name``, ``path`` (the vector file) and ``folder``; ``ConfigError`` when
    the store has no such entry."""
    root = store_dir(store)
    entries = _read_index(root)["entries"]
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"store {root}: no entry {name!r} (entries: {known})")
    folder = root / "vectors" / entries[name]["sha256"]
    return {"name": name, **entries[name], "folder": str(folder), "path": str(folder / VECTOR_FILE)}


def verify(name: str | None = None, store: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Re-hash the vector file and the card of ``name`` (every entry when None): ``{name: [problems]}``, an
    empty list for an intact entry. Any changed, missing or added byte is a problem."""
    targets = [show(name, store)] if name is not None else [show(e["name"], store) for e in list_entries(store)]
    report = {}
    for entry in targets:
        problems = []
        for what, path, want in (("vector", Path(entry["path"]), entry["sha256"]),
                                 ("card", Path(entry["folder"]) / CARD_FILE, entry.get("card_sha256", ""))):
            if not path.is_file():
                problems.append(f"{what} {path} is missing")
            elif file_sha256(path) != want:
                problems.append(f"{what} {path} changed (SHA-256 differs from the recorded {want[:12]}...)")
        report[entry["name"]] = problems
    return report


def rm(name: str, store: str | os.PathLike | None = None) -> None:
    """Remove entry ``name``; its folder goes too when no other name holds the same bytes."""
    root = store_dir(store)
    with _locked(root):
        index = _read_index(root)
        if name not in index["entries"]:
            raise ConfigError(f"store {root}: no entry {name!r}")
        sha = index["entries"].pop(name)["sha256"]
        _write_index(root, index)
        _drop_unused(root, index, sha)


def parse_gear(item: str) -> tuple[str, float]:
    """``"NAME"`` -> (NAME, 1.0); ``"NAME:0.5"`` -> (NAME, 0.5)."""
    name, sep, weight = item.partition(":")
    try:
        return _check_name(name), float(weight) if sep else 1.0
    except ValueError:
        raise ConfigError(f"{item!r}: expected NAME or NAME:WEIGHT with a number as WEIGHT") from None


def equip(base: str | os.PathLike, gear: Sequence[str], out: str | os.PathLike, *,
          store: str | os.PathLike | None = None, method: str = "task_arithmetic", density: float | None = None,
          lam: float | None = None, allow_other_base: bool = False, force: bool = False, progress: bool = True,
          **merge_kwargs) -> Path:
    """Write ``base + lambda * combine(weight_i * vector_i)`` for the entries ``gear`` (``NAME[:WEIGHT]``) to ``out``
    through ``merge.merge`` (``vector:`` entries: streamed, atomic). ``method``: a delta-combining merge method
    (``METHODS``), with ``density`` where it sparsifies and ``lam`` its lambda. Refuses (``MergeError``) an
    entry recorded against a base whose full fingerprint differs from ``base``'s unless ``allow_other_base``."""
    from asr_analogy.merge import merge

    if not gear:
        raise ConfigError("equip needs at least one store entry (NAME or NAME:WEIGHT)")
    if method not in METHODS:
        raise ConfigError(f"equip: method {method!r} does not combine task vectors (use one of {', '.join(METHODS)})")
    chosen = [(show(name, store), weight) for name, weight in map(parse_gear, gear)]
    if not allow_other_base and any(e["base_fingerprint"] for e, _ in chosen):
        with CheckpointReader(base) as reader:
            actual = reader.fingerprint()
        for entry, _ in chosen:
            why = fingerprint_mismatch(entry["base_fingerprint"], actual) if entry["base_fingerprint"] else None
            if why:
                raise MergeError(f"store entry {entry['name']!r} does not belong to base {base}: {why}; "
                                 "pass --allow-other-base to equip it anyway")
    params = {k: v for k, v in (("density", density), ("lambda", lam)) if v is not None}
    config = {
        "merge_method": method,
        "base_model": str(base),
        "models": [{"vector": entry["path"], "parameters": {"weight": weight}} for entry, weight in chosen],
        "allow_other_base": True,  # checked above, against every entry (the base is hashed once)
        **({"parameters": params} if params else {}),
    }
    note = "Equipped from the asr-analogy task-vector store: " + ", ".join(
        f"`{entry['name']}` (weight {weight:g})" for entry, weight in chosen) + "."
    return merge(config, out, force=force, progress=progress, card={"note": note, "tags": ["task-vector"]},
                 **merge_kwargs)
