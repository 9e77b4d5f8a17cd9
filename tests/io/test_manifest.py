import json

import pytest

from asr_analogy.errors import ManifestError
from asr_analogy.io.manifest import read_jsonl, read_manifest, write_manifest


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_relative_paths(tmp_path):
    audio = tmp_path / "wav" / "a.wav"
    audio.parent.mkdir()
    audio.write_bytes(b"")
    recs = [{"audio_filepath": str(audio), "text": "héllo", "duration": 1.5, "domain": "vm", "source": "real"}]
    path = write_manifest(recs, tmp_path / "m.jsonl")
    raw = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert raw["audio_filepath"] == "wav/a.wav"  # written relative to the manifest
    back = read_manifest(path)
    assert back == [dict(recs[0], audio_filepath=str(audio.resolve()))]


def test_paths_outside_manifest_dir_stay_absolute(tmp_path):
    other = tmp_path / "elsewhere" / "b.wav"
    path = write_manifest([{"audio_filepath": str(other), "text": "x"}], tmp_path / "sub" / "m.jsonl")
    assert json.loads(path.read_text())["audio_filepath"] == str(other)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"m.jsonl:2: not valid JSON"),
        ('["a", "b"]', r"m.jsonl:2: expected a JSON object"),
        ('{"text": "x"}', r"m.jsonl:2: missing required field 'audio_filepath'"),
        ('{"audio_filepath": "a.wav"}', r"m.jsonl:2: missing required field 'text'"),
        ('{"audio_filepath": "a.wav", "text": 3}', r"m.jsonl:2: field 'text' must be a string"),
        ('{"audio_filepath": "a.wav", "text": "x", "duration": "long"}', r"m.jsonl:2: field 'duration'"),
        ('{"audio_filepath": "a.wav", "text": "x", "source": "tts"}', r"m.jsonl:2: field 'source' must be one of"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = _write_lines(tmp_path / "m.jsonl", ['{"audio_filepath": "ok.wav", "text": "fine"}', line])
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")


def test_blank_lines_ignored_and_duration_coerced(tmp_path):
    path = _write_lines(tmp_path / "m.jsonl", ['{"audio_filepath": "/a.wav", "text": "x", "duration": "2"}', "", "  "])
    assert read_manifest(path) == [{"audio_filepath": "/a.wav", "text": "x", "duration": 2.0}]


def test_non_utf8_line_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"audio_filepath": "a.wav", "text": "fine"}\n{"audio_filepath": "b.wav", "text": "caf\xe9"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not UTF-8 text \(byte 0xe9 at column 41\)"):
        read_manifest(path)


def test_read_jsonl_reads_gzip_and_skips_blank_lines(tmp_path):
    import gzip

    path = tmp_path / "m.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"a": 1}\n\n{"b": "\u00e9"}\n')
    assert read_jsonl(path) == [{"a": 1}, {"b": "\u00e9"}]
