"""Text domains from files on this machine, split by file, and cut into token blocks for a causal LM.

A domain is a folder and glob patterns (``DomainSpec``): e.g. the standard library's ``*.py`` files (folder
``stdlib``: this interpreter's, ``sysconfig.get_paths()["stdlib"]``) or the READMEs and Markdown/text files
under ``/usr/share/doc`` (``.gz`` ones decompressed). ``domain_files`` lists them (sorted, symlinks resolved,
identical contents kept once); ``split_files`` shuffles that list with a seed and cuts it into train / dev /
test *by file*, so no file contributes to two splits; ``token_blocks`` tokenizes files (an end-of-text token
after each) into rows of ``block_size`` token ids.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import hashlib
import os
import random
import sysconfig
from pathlib import Path
from typing import Sequence

from asr_analogy.errors import ConfigError

STDLIB = "stdlib"
"""``DomainSpec.root`` value naming this interpreter's standard-library folder."""


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """Where one text domain's files are."""

    root: str  # folder searched (``stdlib``: the running interpreter's standard library)
    patterns: tuple[str, ...]  # file-name globs, e.g. ("*.py",) or ("README*", "*.md", "*.md.gz")
    recursive: bool = True  # search sub-folders too
    min_chars: int = 500  # files with fewer characters (after decoding) are left out
    max_bytes: int = 1_000_000  # larger files (on disk) are left out

    def folder(self) -> Path:
        return Path(sysconfig.get_paths()["stdlib"]) if self.root == STDLIB else Path(self.root)


def read_text(path: str | os.PathLike) -> str | None:
    """The file as text (``.gz``: decompressed); None when it is not UTF-8."""
    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def domain_files(spec: DomainSpec) -> list[Path]:
    """The readable UTF-8 files of ``spec`` with at least ``min_chars`` characters, sorted by path, a content
    seen twice (the same README in two packages) kept at its first path. ``ConfigError`` when none is found."""
    folder = spec.folder()
    if not folder.is_dir():
        raise ConfigError(f"text domain folder {folder} does not exist")
    walk = folder.rglob("*") if spec.recursive else folder.iterdir()
    found, seen = [], set()
    for path in sorted(walk):
        if not any(fnmatch.fnmatch(path.name, p) for p in spec.patterns) or "__pycache__" in path.parts:
            continue
        try:
            if not path.is_file() or path.stat().st_size > spec.max_bytes:
                continue
            text = read_text(path)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        if text is None or len(text) < spec.min_chars:
            continue
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest not in seen:
            seen.add(digest)
            found.append(path)
    if not found:
        raise ConfigError(f"text domain {folder} {list(spec.patterns)}: no file of at least {spec.min_chars} characters")
    return found


def split_files(files: Sequence[Path], seed: int, dev: float, test: float) -> dict[str, list[Path]]:
    """``{"train", "dev", "test"}`` lists of ``files`` (each sorted): the list is sorted, shuffled with
    ``random.Random(seed)``, and its first ``round(test·n)`` files are test, the next ``round(dev·n)`` dev, the
    rest train. ``dev``, ``test``: fractions of the files; each split must get at least one file."""
    ordered = sorted(Path(f) for f in files)
    random.Random(seed).shuffle(ordered)
    n_test, n_dev = round(test * len(ordered)), round(dev * len(ordered))
    splits = {"test": ordered[:n_test], "dev": ordered[n_test:n_test + n_dev], "train": ordered[n_test + n_dev:]}
    empty = [k for k, v in splits.items() if not v]
    if empty:
        raise ConfigError(f"{len(ordered)} files with dev {dev} and test {test}: split {empty[0]!r} gets no file")
    return {k: sorted(v) for k, v in splits.items()}


def token_blocks(files: Sequence[Path], tokenizer, block_size: int, max_blocks: int,
                 max_tokens_per_file: int | None = None):
    """A ``LongTensor [n_blocks, block_size]`` of token ids: each file's text tokenized (at most
    ``max_tokens_per_file`` tokens of it, so many files contribute) followed by the end-of-text token,
    concatenated in the order given and cut into consecutive rows; the last partial row is dropped and at
    most ``max_blocks`` rows are kept. ``ConfigError`` when the files do not fill one row."""
    import torch

    eos = tokenizer.eos_token_id
    ids: list[int] = []
    need = block_size * max_blocks
    for path in files:
        tokens = tokenizer(read_text(path) or "", add_special_tokens=False)["input_ids"]
        ids.extend(tokens[:max_tokens_per_file] if max_tokens_per_file else tokens)
        if eos is not None:
            ids.append(eos)
        if len(ids) >= need:
            break
    n = min(len(ids) // block_size, max_blocks)
    if n == 0:
        raise ConfigError(f"{len(files)} files give {len(ids)} tokens, fewer than one block of {block_size}")
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)
