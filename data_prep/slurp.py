"""SLURP (Bastianelli et al., EMNLP 2020), from a local copy of the release; the paper recipe's corpus.

Layout read (the GitHub repository plus the two audio archives from Zenodo unpacked under ``audio/``)::

    SLURP_DIR/dataset/slurp/{train,devel,test,train_synthetic}.jsonl
    SLURP_DIR/audio/slurp_real/*.flac      recordings of train/devel/test (headset and far-field)
    SLURP_DIR/audio/slurp_synth/*.flac     TTS recordings of train_synthetic

(``slurp_real/`` and ``slurp_synth/`` directly under SLURP_DIR, or under ``audio_dir``, work too.) Each JSONL
line is one sentence with ``slurp_id``, ``sentence``, ``scenario``, ``intent`` and a ``recordings`` list of
``{"file": ...}``; every recording becomes one utterance: id = file name without suffix, text = sentence,
domain = scenario (the 18 of ``SCENARIOS``), split train/dev/test (``devel`` -> dev; ``train_synthetic`` ->
train), source ``real``, or ``synthetic`` for ``train_synthetic``. ``headset_only`` keeps the close-talk
recordings (``*-headset.flac``) of the real subsets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

from asr_analogy.io.manifest import iter_jsonl
from asr_analogy.io.skips import SkipReport
from data_prep._common import CorpusError, Entry, write_corpus

CORPUS = "slurp"
SUBSETS = ("train", "devel", "test", "train_synthetic")
SCENARIOS = (
    "alarm", "audio", "calendar", "cooking", "datetime", "email", "general", "iot", "lists",
    "music", "news", "play", "qa", "recommendation", "social", "takeaway", "transport", "weather",
)
_SPLIT = {"train": "train", "devel": "dev", "test": "test", "train_synthetic": "train"}


def _audio_folder(root: Path, audio_dir: Path | None, name: str) -> Path:
    bases = [audio_dir] if audio_dir is not None else [root / "audio", root]
    for base in bases:
        if (base / name).is_dir():
            return base / name
    raise CorpusError(
        f"no {name}/ folder under {' or '.join(str(b) for b in bases)}; download SLURP's audio "
        f"(scripts/download_audio.sh) and unpack {name}.tar.gz there"
    )


def read_subset(path: Path) -> list[dict]:
    """Lines of a SLURP JSONL file; raises ``CorpusError`` naming the file and line when malformed."""
    rows = []
    for lineno, row in iter_jsonl(path, error=CorpusError, what="SLURP dataset file"):
        for key in ("sentence", "scenario", "recordings"):
            if key not in row:
                raise CorpusError(f"{path}:{lineno}: missing field '{key}' (is this a SLURP dataset file?)")
        rows.append(row)
    return rows


def subset_entries(rows: list[dict], subset: str, audio: Path, headset_only: bool,
                   skips: SkipReport) -> Iterator[Entry]:
    synthetic = subset == "train_synthetic"
    for row in rows:
        for rec in row["recordings"]:
            name = str(rec.get("file", ""))
            utt_id = Path(name).stem or f"{subset}/{row.get('slurp_id')}"
            if headset_only and not synthetic and "-headset" not in name:
                continue
            fields = {
                "domain": row["scenario"],
                "split": _SPLIT[subset],
                "source": "synthetic" if synthetic else "real",
                "slurp_id": row.get("slurp_id"),
                "intent": row.get("intent"),
            }
            yield Entry(id=utt_id, text=row["sentence"], audio=audio / name if name else None, fields=fields)


def prepare(
    slurp_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    subsets: Sequence[str] = SUBSETS,
    audio_dir: str | os.PathLike | None = None,
    headset_only: bool = False,
    resample: bool = False,
    force: bool = False,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """Import SLURP ``subsets`` into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    The flac files are referenced in place (they are 16 kHz already) unless ``resample``. Recordings whose file
    is missing or unreadable are skipped into ``skipped.jsonl``; a missing dataset file or audio folder is an
    error and writes nothing.
    """
    root = Path(slurp_dir)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise CorpusError(f"unknown SLURP subset {unknown}; choose from {list(SUBSETS)}")
    adir = Path(audio_dir) if audio_dir is not None else None
    skips = SkipReport()
    parts = []
    for subset in subsets:
        path = root / "dataset" / "slurp" / f"{subset}.jsonl"
        if not path.is_file():
            raise CorpusError(f"{path} does not exist; give the folder of a SLURP checkout (with dataset/slurp/)")
        audio = _audio_folder(root, adir, "slurp_synth" if subset == "train_synthetic" else "slurp_real")
        parts.append((read_subset(path), subset, audio))

    def entries() -> Iterator[Entry]:
        for rows, subset, audio in parts:
            yield from subset_entries(rows, subset, audio, headset_only, skips)

    total = sum(len(r["recordings"]) for rows, _, _ in parts for r in rows)
    options = {"slurp_dir": str(root.resolve()), "subsets": list(subsets),
               "audio_dir": str(adir) if adir else None, "headset_only": headset_only, "resample": resample}
    return write_corpus(entries(), out_dir, corpus=CORPUS, options=options, force=force, resample=resample,
                        skips=skips, echo=echo, total=total)
