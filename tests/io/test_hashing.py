import hashlib

import pytest

from asr_analogy.io.hashing import file_sha256

ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256("abc"), FIPS 180-2
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256("")


@pytest.mark.parametrize("block", [1, 2, 3, 16 << 20])
def test_file_sha256_is_the_digest_of_the_bytes_whatever_the_block(tmp_path, block):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path, block=block) == ABC
    assert file_sha256(str(path), block=block) == ABC


def test_file_sha256_of_an_empty_file_and_of_bytes_that_are_not_text(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == EMPTY
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")  # not UTF-8: read as bytes
    assert file_sha256(tmp_path / "bin") == hashlib.sha256(b"\xff\xfe\x00").hexdigest()
