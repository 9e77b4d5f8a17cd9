"""Options of `prep` that would silently mislabel a corpus are refused: a split that is not train/dev/test, an
empty or multi-character delimiter. Nothing is written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main


@pytest.mark.parametrize("extra, message", [
    (["--split", "trian"], "'trian' is not a split; use one of train, dev, test"),
    (["--delimiter", ""], "'': give one character"),
    (["--delimiter", ";;"], "';;': give one character"),
])
def test_prep_csv_refuses_bad_options(tmp_path, extra, message):
    table = tmp_path / "t.csv"
    table.write_text("path,text\na.wav,hi\n")
    before = table.read_bytes()
    result = CliRunner().invoke(main, ["prep", "csv", str(table), str(tmp_path / "out"), *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists() and table.read_bytes() == before


def test_a_split_alias_is_accepted(tmp_path):
    from asr_analogy.cli.data import _known_split

    assert _known_split(None, None, "validation") == "validation"  # data_prep maps it to dev
