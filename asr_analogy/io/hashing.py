"""Content hashes of files, read in blocks (bounded memory)."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, block: int = 16 << 20) -> str:
    """The SHA-256 of a file's bytes, hex, read ``block`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
