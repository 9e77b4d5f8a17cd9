"""JSONL manifests: the exact text written, the byte-order mark, and the exact messages of refusals."""

import gzip
import json

import pytest

from asr_analogy.errors import ManifestError
from asr_analogy.io.manifest import iter_jsonl, read_jsonl, read_manifest, write_manifest


class StoreError(ManifestError):
    """A caller's own error type."""


def _message(call, *args, **kwargs):
    with pytest.raises(ManifestError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_written_lines_keep_non_ascii_text_and_records_without_audio(tmp_path):
    path = write_manifest([{"text": "héllo wörld"}, {"audio_filepath": str(tmp_path / "a.wav"), "text": "x"}],
                          tmp_path / "m.jsonl")
    assert path.read_text(encoding="utf-8") == ('{"text": "héllo wörld"}\n'
                                                '{"audio_filepath": "a.wav", "text": "x"}\n')


def test_written_paths_stay_absolute_when_not_relative(tmp_path):
    audio = str(tmp_path / "a.wav")
    path = write_manifest([{"audio_filepath": audio, "text": "x"}], tmp_path / "m.jsonl", relative=False)
    assert json.loads(path.read_text(encoding="utf-8")) == {"audio_filepath": audio, "text": "x"}


def test_a_byte_order_mark_is_allowed_at_the_start_of_the_file_only(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    path.write_bytes(b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n')  # two files joined: the second one's mark mid-file
    assert _message(read_jsonl, path) == f"{path}:2: not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))"


def test_a_line_that_is_not_an_object_names_its_type(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    assert _message(read_jsonl, path) == f"{path}:2: expected a JSON object, got list"


def test_missing_files_are_named_as_manifests_by_default(tmp_path):
    missing = tmp_path / "nope.jsonl"
    assert _message(read_jsonl, missing) == f"manifest {missing} does not exist"
    assert _message(read_manifest, missing) == f"manifest {missing} does not exist"
    assert _message(lambda: list(iter_jsonl(missing))) == f"manifest {missing} does not exist"
    assert _message(read_jsonl, missing, what="skip list") == f"skip list {missing} does not exist"


def test_read_jsonl_raises_the_callers_error_type(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(StoreError) as info:
        read_jsonl(missing, error=StoreError, what="store index")
    assert str(info.value) == f"store index {missing} does not exist"


def test_a_truncated_gzip_is_reported_as_unreadable(tmp_path):
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:30])
    assert _message(read_jsonl, path, what="store index") == (
        f"cannot read store index {path}: Compressed file ended before the end-of-stream marker was reached")
