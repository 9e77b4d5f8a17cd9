"""Inputs of the bad-input sweep: tiny models saved with save_pretrained, a vector, a small corpus, tables,
manifests and text files, all under one folder whose every byte is hashed before and after each case."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np


def tree_hash(root: Path) -> str:
    """sha256 over the relative names and bytes of every file under ``root`` (symlinks not followed)."""
    h = hashlib.sha256()
    if root.is_file():
        h.update(root.read_bytes())
        return h.hexdigest()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def _llama(root: Path) -> None:
    from tests.merge.conftest import save_tiny_llamas

    save_tiny_llamas(root)


def _whisper(root: Path) -> None:
    from asr_analogy.speech.models.whisper import tiny_whisper

    model, processor = tiny_whisper(seed=0)
    model.save_pretrained(root / "whisper")
    processor.save_pretrained(root / "whisper")


def _ivr_tree(root: Path) -> None:
    from asr_analogy.io.audio import write_wav

    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    doc = root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    lines = ["vm-goodbye: Goodbye.", "vm-next: Press 6 to play the next message.", "digits/1: one",
             "digits/2: two", "conf-locked: The conference is now locked.", "queue-thankyou: Thank you"]
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    for i, line in enumerate(lines):
        name = line.split(":")[0]
        t = np.arange(int(8000 * (0.3 + 0.05 * i))) / 8000
        write_wav(sounds / f"{name}.wav", (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)


def build(fx: Path) -> dict[str, Path]:
    """Every input of the sweep under ``fx`` (built once; reused when already there)."""
    from asr_analogy.merge import vector
    from tests.analogy.conftest import make_corpus

    done = fx / ".built"
    if not done.exists():
        fx.mkdir(parents=True, exist_ok=True)
        _llama(fx)
        _whisper(fx)
        corpus = make_corpus(fx / "corpus")
        vector(fx / "ft0", fx / "base", fx / "tau.safetensors", progress=False)
        vector(fx / "ft1", fx / "base", fx / "tau1.safetensors", progress=False)
        recs = [json.loads(line) for line in corpus.read_text().splitlines()]
        small = [r for r in recs if r["domain"] == "alpha" and r["split"] == "test"]
        for r in small:
            r["audio_filepath"] = str((corpus.parent / r["audio_filepath"]).resolve())
        (fx / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in small))
        (fx / "empty.jsonl").write_text("")
        hyps = [{"id": r["id"], "audio_filepath": r["audio_filepath"], "text": r["text"], "domain": r["domain"],
                 "hypothesis": r["text"].split()[0]} for r in small]
        (fx / "hyps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hyps))
        (fx / "hyps_dup.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hyps + hyps[:1]))
        (fx / "hyps_latin1.jsonl").write_bytes(b'{"id": "x", "audio_filepath": "a.wav", "text": "caf\xe9", '
                                                b'"hypothesis": "cafe"}\n')
        (fx / "sentences.txt").write_text("press one for sales\nplease hold\n")
        (fx / "sentences_latin1.txt").write_bytes(b"caf\xe9 au lait\nplease hold\n")
        (fx / "long_line.txt").write_text(" ".join(["word"] * 480) + "\n")
        wav = [r["audio_filepath"] for r in small]
        (fx / "audio").mkdir()
        for i, w in enumerate(wav):
            (fx / "audio" / f"clip{i}.wav").write_bytes(Path(w).read_bytes())
        (fx / "table.csv").write_text("path,text\n" + "".join(f"audio/clip{i}.wav,{small[i]['text']}\n"
                                                             for i in range(len(wav))))
        (fx / "table_extra_commas.csv").write_text(
            "path,text\naudio/clip0.wav,press one\naudio/clip1.wav,press, one, now\naudio/clip2.wav,two\n")
        (fx / "table_open_quote.csv").write_text(
            'path,text\naudio/clip0.wav,one\naudio/clip1.wav,"press one\naudio/clip2.wav,three\n')
        (fx / "table_latin1.csv").write_bytes(b"path,text\naudio/clip0.wav,caf\xe9\n")
        (fx / "table_missing_audio.csv").write_text("path,text\naudio/nope.wav,hello\n")
        (fx / "table_header_only.csv").write_text("path,text\n")
        af = fx / "audiofolder"
        af.mkdir()
        for i in range(len(wav)):
            (af / f"clip{i}.wav").write_bytes(Path(wav[i]).read_bytes())
        (af / "metadata.csv").write_text("file_name,transcription\n" + "".join(
            f"clip{i}.wav,{small[i]['text']}\n" for i in range(len(wav))))
        (fx / "audiofolder_empty").mkdir()
        (fx / "nemo.jsonl").write_text("".join(json.dumps({"audio_filepath": str(fx / "audio" / f"clip{i}.wav"),
                                                           "text": small[i]["text"], "duration": 1.0}) + "\n"
                                               for i in range(len(wav))))
        (fx / "nemo_latin1.jsonl").write_bytes(b'{"audio_filepath": "audio/clip0.wav", "text": "caf\xe9"}\n')
        (fx / "nemo_broken.jsonl").write_text('{"audio_filepath": "audio/clip0.wav", "text": "a"\n')
        (fx / "notes.txt").write_text("a file, not a folder\n")
        _ivr_tree(fx / "ivr")
        done.write_text("ok\n")
    return {p.name: p for p in fx.iterdir()}
