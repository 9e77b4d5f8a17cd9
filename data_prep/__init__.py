"""Corpus preparers: one module per corpus, each with ``prepare(...)`` returning the path of its manifest.

| module         | input                                                          | CLI                            |
|----------------|----------------------------------------------------------------|--------------------------------|
| ivr_prompts    | Debian asterisk-core-sounds-en(-wav): real 8 kHz IVR prompts   | asr-analogy prep ivr-prompts   |
| tabular        | CSV/TSV of audio path + transcript                             | asr-analogy prep csv           |
| audiofolder    | audio files + metadata.csv/jsonl (file_name, transcription)    | asr-analogy prep audiofolder   |
| hf_dataset     | a save_to_disk Hugging Face dataset, or a hub id               | asr-analogy prep hf-dataset    |
| nemo_jsonl     | NeMo manifests, Lhotse cuts or recordings + supervisions       | asr-analogy prep nemo          |
| slurp          | a local copy of the SLURP release (18 scenarios as domains)    | asr-analogy prep slurp         |

Every preparer writes ``OUT_DIR/manifest.jsonl``, ``OUT_DIR/manifests/{domain}.{split}.jsonl``,
``OUT_DIR/skipped.jsonl`` and ``OUT_DIR/prepared.json`` atomically (see ``data_prep._common``).
"""
