"""Audiofolder importer: metadata.csv / metadata.jsonl, split subfolders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from data_prep import audiofolder
from data_prep._common import CorpusError
from tests.data_prep._audio import write_tone


def test_flat_folder_with_metadata_csv(tmp_path):
    root = tmp_path / "af"
    write_tone(root / "clips" / "x.wav", 0.4, 16000)
    write_tone(root / "y.flac", 0.2, 22050)
    (root / "metadata.csv").write_text(
        'file_name,transcription,speaker\nclips/x.wav,"turn it up, please",ann\ny.flac,hi there,\nnope.wav,gone,\n'
    )
    out = tmp_path / "out"
    recs = read_manifest(audiofolder.prepare(root, out, domain="media", echo=None))
    assert [(r["id"], r["text"], r.get("speaker"), r["domain"]) for r in recs] == [
        ("clips/x.wav", "turn it up, please", "ann", "media"), ("y.flac", "hi there", None, "media")]
    assert recs[1]["duration"] == pytest.approx(0.2, abs=1e-4)
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"]) for s in skipped] == [("nope.wav", "missing_audio")]


def test_split_subfolders_and_jsonl(tmp_path):
    root = tmp_path / "af"
    write_tone(root / "train" / "a.wav", 0.3, 16000)
    write_tone(root / "validation" / "b.wav", 0.3, 16000)
    (root / "train" / "metadata.jsonl").write_text(json.dumps({"file_name": "a.wav", "text": "alpha"}) + "\n")
    (root / "validation" / "metadata.csv").write_text("file_name,text\nb.wav,bravo\n")
    recs = read_manifest(audiofolder.prepare(root, tmp_path / "out", resample=True, echo=None))
    assert sorted((r["id"], r["split"], r["text"]) for r in recs) == [
        ("train/a.wav", "train", "alpha"), ("validation/b.wav", "dev", "bravo")]
    assert all(Path(r["audio_filepath"]).is_relative_to((tmp_path / "out").resolve()) for r in recs)


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, r"no metadata.csv or metadata.jsonl in .*af or in its split subfolders"),
        ({"metadata.csv": "path,text\na.wav,hi\n"},
         r"metadata.csv: no 'file_name' column; the columns are \['path', 'text'\]"),
        ({"metadata.csv": "file_name,label\na.wav,hi\n"}, r"no text column \(looked for transcription, text"),
        ({"metadata.jsonl": '{"file_name": "a.wav", "text": "hi"}\n{oops\n'}, r"metadata.jsonl:2: not valid JSON"),
    ],
)
def test_bad_folders_raise_and_write_nothing(tmp_path, files, message):
    root = tmp_path / "af"
    write_tone(root / "a.wav", 0.3, 16000)
    for name, content in files.items():
        (root / name).write_text(content)
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match=message):
        audiofolder.prepare(root, out, echo=None)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["af"]


def test_cli_audiofolder(tmp_path):
    root = tmp_path / "af"
    write_tone(root / "a.wav", 0.3, 16000)
    (root / "metadata.csv").write_text("file_name,sentence\na.wav,\n")
    res = CliRunner().invoke(main, ["prep", "audiofolder", str(root), str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "error: no usable utterance in the audiofolder corpus (skipped 1: 1 empty_text)" in res.output
    assert not (tmp_path / "out").exists()
    (root / "metadata.csv").write_text("file_name,sentence\na.wav,fine now\n")
    res = CliRunner().invoke(main, ["prep", "audiofolder", str(root), str(tmp_path / "out"), "--split", "test"])
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "out" / "manifest.jsonl")[0]["split"] == "test"
