"""Strict YAML loading and --set overrides."""

import pytest

from asr_analogy.errors import ConfigError
from asr_analogy.io.yaml_file import deep_merge, load_yaml, parse_overrides


def test_duplicate_key_is_refused_with_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("method: ties\nparameters:\n  density: 0.5\n  density: 0.9\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'density' is given twice \(first on line 3\).*line 4"):
        load_yaml(p)


def test_same_key_in_different_mappings_is_fine(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: {x: 1}\nb: {x: 2}\n")
    assert load_yaml(p) == {"a": {"x": 1}, "b": {"x": 2}}


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe bad", "not UTF-8 text"),
    (b"- a\n- b\n", "expected a mapping at the top level, got list"),
    (b"a: [1, 2\n", "not valid YAML"),
])
def test_bad_files(tmp_path, content, message):
    p = tmp_path / "c.yaml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_yaml(p)


def test_missing_and_empty(tmp_path):
    with pytest.raises(ConfigError, match="recipe config .* does not exist"):
        load_yaml(tmp_path / "nope.yaml", "recipe config")
    (tmp_path / "e.yaml").write_text("")
    assert load_yaml(tmp_path / "e.yaml") == {}


def test_parse_overrides_nests_and_parses_values():
    got = parse_overrides(["finetune.max_steps=5", "domains.targets=[a, b]", "finetune.lr=0.25", "name="])
    assert got == {"finetune": {"max_steps": 5, "lr": 0.25}, "domains": {"targets": ["a", "b"]}, "name": None}


@pytest.mark.parametrize("item, message", [("nokey", "expected KEY=VALUE"), ("=3", "empty key"),
                                           ("a=[1", "not valid YAML")])
def test_parse_overrides_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides([item])


def test_deep_merge_keeps_base():
    base = {"a": {"x": 1, "y": 2}, "b": 1}
    assert deep_merge(base, {"a": {"y": 3}, "c": 4}) == {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}
    assert base == {"a": {"x": 1, "y": 2}, "b": 1}
