"""Text domains: files found, split by file with a seed, tokenized into rows."""

import gzip

import pytest
import torch

from asr_analogy.errors import ConfigError
from asr_analogy.textlm.corpus import DomainSpec, domain_files, read_text, split_files, token_blocks


def test_domain_files_filters_and_drops_repeated_contents(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("x" * 20)
    (tmp_path / "sub" / "b.md.gz").write_bytes(gzip.compress(b"y" * 20))
    (tmp_path / "sub" / "copy.md").write_text("x" * 20)  # same text as a.md: kept once, at a.md
    (tmp_path / "short.md").write_text("z" * 5)  # under min_chars
    (tmp_path / "bin.md").write_bytes(b"\xff" * 30)  # not UTF-8
    (tmp_path / "other.txt").write_text("w" * 20)  # no pattern matches
    spec = DomainSpec(str(tmp_path), ("*.md", "*.md.gz"), min_chars=10)
    assert [p.relative_to(tmp_path).as_posix() for p in domain_files(spec)] == ["a.md", "sub/b.md.gz"]
    assert read_text(tmp_path / "sub" / "b.md.gz") == "y" * 20
    flat = DomainSpec(str(tmp_path), ("*.md", "*.md.gz"), recursive=False, min_chars=10)
    assert [p.name for p in domain_files(flat)] == ["a.md"]
    with pytest.raises(ConfigError, match="no file of at least 100 characters"):
        domain_files(DomainSpec(str(tmp_path), ("*.md",), min_chars=100))


def test_split_is_by_file_seeded_and_independent_of_input_order(tmp_path):
    files = [tmp_path / f"f{i}" for i in range(10)]
    splits = split_files(files, seed=0, dev=0.2, test=0.3)
    assert {k: len(v) for k, v in splits.items()} == {"test": 3, "dev": 2, "train": 5}
    assert sorted(p for v in splits.values() for p in v) == sorted(files)  # each file in exactly one split
    assert split_files(list(reversed(files)), seed=0, dev=0.2, test=0.3) == splits
    assert split_files(files, seed=1, dev=0.2, test=0.3) != splits
    # pinned: random.Random(0).shuffle of f0..f9 gives f7 f8 f1 | f5 f3 | f4 f2 f0 f9 f6 (test | dev | train)
    assert [p.name for p in splits["test"]] == ["f1", "f7", "f8"]
    assert [p.name for p in splits["dev"]] == ["f3", "f5"]
    with pytest.raises(ConfigError, match="split 'dev' gets no file"):
        split_files(files[:2], seed=0, dev=0.1, test=0.5)


class _CharTokenizer:
    """Token id = character code - 96 ('a' = 1), end of text = 0."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) - 96 for c in text]}


def test_token_blocks_by_hand(tmp_path):
    (tmp_path / "1.txt").write_text("abcde")
    (tmp_path / "2.txt").write_text("fgh")
    files = [tmp_path / "1.txt", tmp_path / "2.txt"]
    # ids: a b c d e <eos> f g h <eos> = 1 2 3 4 5 0 6 7 8 0, cut into rows of 4 (the last 2 dropped)
    got = token_blocks(files, _CharTokenizer(), block_size=4, max_blocks=10)
    torch.testing.assert_close(got, torch.tensor([[1, 2, 3, 4], [5, 0, 6, 7]]))
    # at most 3 tokens per file: a b c <eos> f g h <eos>
    got = token_blocks(files, _CharTokenizer(), block_size=4, max_blocks=10, max_tokens_per_file=3)
    torch.testing.assert_close(got, torch.tensor([[1, 2, 3, 0], [6, 7, 8, 0]]))
    assert token_blocks(files, _CharTokenizer(), block_size=4, max_blocks=1).shape == (1, 4)
    with pytest.raises(ConfigError, match="fewer than one block of 20"):
        token_blocks(files, _CharTokenizer(), block_size=20, max_blocks=1)
