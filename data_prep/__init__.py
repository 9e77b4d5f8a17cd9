"""Corpus preparers: one module per corpus, one contract (as in lhotse's recipes), and ``PREPARERS``, their table.

Each module offers ``prepare(corpus, out_dir, **options) -> Path`` (``OUT_DIR/manifest.jsonl``) and, where the
corpus can be fetched, ``download(target_dir, ...) -> Path`` (a ``corpus`` for ``prepare``). Imports only
``asr_analogy.errors`` and ``asr_analogy.io``.

| name         | corpus (prepare's first argument)                                | CLI                          |
|--------------|------------------------------------------------------------------|------------------------------|
| ivr_prompts  | unpacked asterisk-core-sounds-en(-wav), or the two .deb files;    | asr-analogy prep ivr-prompts |
|              | None: ``download()`` (apt-get download) into a cache first        |                              |
| tabular      | a CSV/TSV file of audio path + transcript                        | asr-analogy prep csv         |
| audiofolder  | a folder of audio + metadata.csv/jsonl (file_name, transcription) | asr-analogy prep audiofolder |
| hf_dataset   | a save_to_disk Hugging Face dataset folder, or a hub id          | asr-analogy prep hf-dataset  |
| nemo_jsonl   | a NeMo manifest, Lhotse cuts, or Lhotse recordings (+ supervisions) | asr-analogy prep nemo      |
| slurp        | a local copy of the SLURP release (18 scenarios as domains)      | asr-analogy prep slurp       |

``data_prep.hold_music`` is no preparer: it fetches real hold music (Debian ``asterisk-moh-opsound-wav``) for the
recipe's real-recording conditions (``corpus.degrade: "music:snr_db=5"``, ``make noise``).

Every preparer writes ``OUT_DIR/manifest.jsonl``, ``OUT_DIR/manifests/{domain}.{split}.jsonl``,
``OUT_DIR/skipped.jsonl`` and ``OUT_DIR/prepared.json`` atomically (see ``data_prep._common``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from data_prep import audiofolder, hf_dataset, ivr_prompts, nemo_jsonl, slurp, tabular


@dataclass(frozen=True)
class Preparer:
    """One corpus: its ``prepare`` and, where it can be fetched, its ``download``."""

    prepare: Callable[..., Path]
    download: Callable[..., Path] | None = None  # with it, prepare(None, out_dir, cache_dir=...) fetches first
    domains: frozenset[str] | None = None  # the domains a corpus with a fixed layout always has (None: unknown)


PREPARERS: dict[str, Preparer] = {
    "ivr_prompts": Preparer(ivr_prompts.prepare, ivr_prompts.download,
                            frozenset(d for _, d, _ in ivr_prompts.DOMAIN_TABLE if d)),
    "tabular": Preparer(tabular.prepare),
    "audiofolder": Preparer(audiofolder.prepare),
    "hf_dataset": Preparer(hf_dataset.prepare),
    "nemo_jsonl": Preparer(nemo_jsonl.prepare),
    "slurp": Preparer(slurp.prepare),
}
