"""CSV/TSV importer: header detection, delimiters, column choice, skips, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from data_prep import tabular
from data_prep._common import CorpusError
from tests.data_prep._audio import snapshot, write_tone


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    write_tone(root / "wavs" / "a.wav", 0.5, 16000)
    write_tone(root / "wavs" / "b.wav", 0.3, 8000, channels=2)
    (root / "wavs" / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    return root


def _skips(out: Path) -> dict[str, str]:
    return {e["id"]: e["reason"] for e in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}


def test_csv_with_header_references_files_in_place(corpus, tmp_path):
    (corpus / "list.csv").write_text(
        'path,text,domain\nwavs/a.wav,"Hello, world",banking\nwavs/b.wav,good bye,\n'
        "wavs/missing.wav,never here,x\nwavs/broken.wav,broken,x\nwavs/a.wav,   ,x\n"
    )
    out = tmp_path / "out"
    manifest = tabular.prepare(corpus / "list.csv", out, split="test", echo=None)
    recs = read_manifest(manifest)
    assert [(r["text"], r.get("domain"), r["split"], r["source"]) for r in recs] == [
        ("Hello, world", "banking", "test", "real"),
        ("good bye", None, "test", "real"),
    ]
    assert "domain" not in recs[1]  # an empty cell and no --domain: no field
    assert recs[0]["audio_filepath"] == str((corpus / "wavs" / "a.wav").resolve())
    assert recs[0]["duration"] == pytest.approx(0.5) and recs[1]["duration"] == pytest.approx(0.3)
    # the fifth row repeats a.wav's id with empty text: empty text is reported first
    assert _skips(out) == {"wavs/missing.wav": "missing_audio", "wavs/broken.wav": "unreadable_audio",
                           "wavs/a.wav": "empty_text"}
    assert not (out / "audio").exists()


def test_tsv_without_header_positional_columns(corpus, tmp_path):
    (corpus / "list.tsv").write_text("wavs/a.wav\tone two\nwavs/b.wav\tthree\n")
    recs = read_manifest(tabular.prepare(corpus / "list.tsv", tmp_path / "out", domain="d", echo=None))
    assert [(Path(r["audio_filepath"]).name, r["text"], r["domain"]) for r in recs] == [
        ("a.wav", "one two", "d"), ("b.wav", "three", "d")]


def test_ljspeech_style_pipe_table_ids_without_suffix(corpus, tmp_path):
    (corpus / "metadata.csv").write_text('a|He said "yes", twice.|he said yes twice\nb|Second one.|second one\n')
    recs = read_manifest(tabular.prepare(corpus / "metadata.csv", tmp_path / "out", audio_root=corpus / "wavs",
                                         text_column=2, echo=None))
    assert [(r["id"], Path(r["audio_filepath"]).name, r["text"]) for r in recs] == [
        ("a", "a.wav", "he said yes twice"), ("b", "b.wav", "second one")]


def test_named_columns_semicolon_and_resample(corpus, tmp_path):
    (corpus / "t.csv").write_text("clip;words;speaker\nwavs/b.wav;stereo eight k;sam\n")
    out = tmp_path / "out"
    recs = read_manifest(tabular.prepare(corpus / "t.csv", out, path_column="clip", text_column="words",
                                         resample=True, echo=None))
    assert len(recs) == 1 and recs[0]["speaker"] == "sam" and recs[0]["text"] == "stereo eight k"
    info = sf.info(recs[0]["audio_filepath"])
    assert Path(recs[0]["audio_filepath"]).parent == (out / "audio").resolve()
    # 0.3 s at 8 kHz stereo = 2400 frames -> 4800 frames at 16 kHz mono
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 4800)


def test_detect_header():
    assert tabular.detect_header(["audio_filepath", "text"])
    assert tabular.detect_header(["clip", "words"], "clip", None)
    assert not tabular.detect_header(["wavs/a.wav", "hello"])


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        ("path,text\nwavs/a.wav,hi\n", {"text_column": "transcript"},
         r"no text column 'transcript'; the header has \['path', 'text'\]"),
        ("file_id,words\nwavs/a.wav,hi\n", {"path_column": "file_id"},
         r"no text column \(looked for text, transcript"),
        ("wavs/a.wav,hi\n", {"text_column": "words", "header": False},
         r"has no header row, so the text column 'words' cannot be found by name"),
        ("", {}, r"holds no rows"),
    ],
)
def test_bad_tables_raise_and_write_nothing(corpus, tmp_path, content, kwargs, message):
    (corpus / "bad.csv").write_text(content)
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match=message):
        tabular.prepare(corpus / "bad.csv", out, echo=None, **kwargs)
    assert snapshot(out) == {} and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_no_usable_row_is_an_error(corpus, tmp_path):
    (corpus / "t.csv").write_text("path,text\nwavs/missing.wav,hi\nwavs/a.wav,\nshort\n")
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match="no usable utterance.*1 empty_text, 1 malformed_row, 1 missing_audio"):
        tabular.prepare(corpus / "t.csv", out, echo=None)
    assert not out.exists()


def test_cli_csv(corpus, tmp_path):
    (corpus / "t.csv").write_text("path,text\nwavs/a.wav,hello there\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["prep", "csv", str(corpus / "t.csv"), str(out), "--domain", "d", "--split", "dev"])
    assert res.exit_code == 0, res.output
    assert "1 utterances" in res.output
    assert read_manifest(out / "manifest.jsonl")[0]["split"] == "dev"
    res = CliRunner().invoke(main, ["prep", "csv", str(corpus / "t.csv"), str(tmp_path / "o2"), "--text-column", "x"])
    assert res.exit_code == 2 and "error:" in res.output and "no text column 'x'" in res.output
    assert not (tmp_path / "o2").exists()


def test_unquoted_extra_commas_go_to_the_skip_report(corpus, tmp_path):
    (corpus / "t.csv").write_text("path,text\nwavs/a.wav,hello there\nwavs/b.wav,yes, no, maybe\n")
    out = tmp_path / "out"
    recs = read_manifest(tabular.prepare(corpus / "t.csv", out, echo=None))
    assert [r["text"] for r in recs] == ["hello there"]  # not "yes" for b.wav
    [skip] = map(json.loads, (out / "skipped.jsonl").read_text().splitlines())
    assert skip == {"id": "t.csv:3", "reason": "malformed_row",
                    "detail": "4 fields, expected 2 (an unquoted delimiter inside a field?)"}


def test_unterminated_quote_does_not_swallow_rows_into_a_transcript(corpus, tmp_path):
    (corpus / "t.csv").write_text('path,text\nwavs/a.wav,"hello\nwavs/b.wav,good bye\nwavs/a.wav,again\n')
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match="no usable utterance.*1 malformed_row"):
        tabular.prepare(corpus / "t.csv", out, echo=None)
    assert not out.exists()
    (corpus / "t.csv").write_text('path,text\nwavs/b.wav,fine\nwavs/a.wav,"hello\nwavs/b.wav,good bye\n')
    recs = read_manifest(tabular.prepare(corpus / "t.csv", out, echo=None))
    assert [r["text"] for r in recs] == ["fine"]
    [skip] = map(json.loads, (out / "skipped.jsonl").read_text().splitlines())
    assert skip["id"] == "t.csv:3" and skip["reason"] == "malformed_row"
    assert skip["detail"].startswith("a quoted field runs from line 3 to line 4 (unterminated quote?)")
