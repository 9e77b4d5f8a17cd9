"""``tools/mutation.py`` picks the fast tests for what it mutates: a package's own, a file's package's, and it
refuses a module it has no tests for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_file_inside_a_scope_gets_its_package_tests(tool):
    assert tool.tests_for(["asr_analogy/merge/compressed.py"]) == ["tests/merge"]
    assert tool.tests_for(["asr_analogy/merge"]) == ["tests/merge"]
    assert tool.tests_for(["asr_analogy/analogy/vectors.py"]) == ["tests/analogy/test_vectors.py",
                                                                  "tests/analogy/test_vectors_records.py"]


def test_a_module_without_known_tests_is_refused(tool):
    with pytest.raises(SystemExit, match="no tests are known for asr_analogy/speech/tts.py"):
        tool.tests_for(["asr_analogy/speech/tts.py"])
    with pytest.raises(SystemExit, match="no tests are known for asr_analogy/merger"):
        tool.tests_for(["asr_analogy/merger"])  # a prefix of the name is not a parent folder
