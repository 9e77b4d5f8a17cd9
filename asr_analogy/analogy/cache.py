"""Cached JSON results: a result is reused while it records the spec it was computed from, else recomputed.

Every cache of the recipe (a fine-tuned job, a λ sweep, a system's metrics, the test λ curve, an exported model)
is a JSON file that stores its *spec* (the inputs that determine it) next to the result. ``cached_result(path,
spec, compute)`` returns the stored result when ``path`` records ``spec``, and otherwise calls ``compute()``,
stores its result together with ``spec`` (atomically) and returns it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from asr_analogy.io.atomic import atomic_file


def short_hash(obj: Any) -> str:
    """12 hex digits of the SHA-1 of ``obj`` as sorted JSON (non-JSON values by ``str``)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON at ``path`` (atomically)."""
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stored_result(path: Path, spec: Any, *, key: str = "spec") -> dict | None:
    """The result stored at ``path`` when it records ``spec`` under ``key``; None when absent or stale.

    ``spec`` None: the path itself names the spec (a content hash in the file name), so any stored file is valid.
    """
    path = Path(path)
    if not path.is_file():
        return None
    stored = read_json(path)
    if spec is not None and stored.get(key) != spec:
        return None
    return stored


def cached_result(path: Path, spec: Any, compute: Callable[[], dict], *, key: str = "spec") -> dict:
    """The result at ``path`` if it records ``spec`` (see ``stored_result``), else ``compute()`` stored with it."""
    stored = stored_result(path, spec, key=key)
    if stored is not None:
        return stored
    result = dict(compute())
    if spec is not None:
        result[key] = spec
    write_json(path, result)
    return result
