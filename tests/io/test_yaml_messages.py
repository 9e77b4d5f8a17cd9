"""Strict YAML and --set overrides: the exact messages a user reads, and what the loader keeps like safe_load."""

from pathlib import Path

import pytest
import yaml

from asr_analogy.errors import ConfigError
from asr_analogy.io.yaml_file import deep_merge, load_yaml, loads_yaml, parse_overrides


def _message(call, *args, **kwargs):
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_load_yaml_names_the_config_by_default(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert _message(load_yaml, missing) == f"config {missing} does not exist"
    assert _message(load_yaml, tmp_path) == f"config {tmp_path} is not a file"
    assert _message(load_yaml, tmp_path, "merge config") == f"merge config {tmp_path} is not a file"


def test_load_yaml_reports_an_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert _message(load_yaml, path, "recipe config") == f"recipe config {path}: cannot be read (Permission denied)"


def test_loads_yaml_names_a_string_by_default():
    assert _message(loads_yaml, "a: [1\n").startswith("<string>: not valid YAML (")


def test_a_self_referencing_anchor_loads_as_with_safe_load():
    text = "a: &x [1, *x]\n"
    got, ref = loads_yaml(text), yaml.safe_load(text)
    assert got["a"][0] == ref["a"][0] == 1
    assert got["a"][1] is got["a"]


def test_a_duplicate_after_an_unhashable_key_is_still_reported():
    message = _message(loads_yaml, "? [1]\n: a\nb: 1\nb: 2\n", "c.yaml")
    assert message.startswith("c.yaml: not valid YAML (key 'b' is given twice (first on line 3) ")


def test_parse_overrides_messages_name_the_option_and_item():
    assert _message(parse_overrides, ["nokey"]) == "--set 'nokey': expected KEY=VALUE (e.g. finetune.max_steps=20)"
    assert _message(parse_overrides, ["=3"], "--override") == "--override '=3': empty key"
    assert _message(parse_overrides, ["a=[1"]).startswith("--set 'a=[1': not valid YAML (")
    assert _message(parse_overrides, ["a=1", "a.b=2"]) == "--set 'a.b=2': 'a' was already set to a value"


def test_parse_overrides_splits_at_the_first_equals_sign_and_blank_values_are_none():
    assert parse_overrides(["note=x=1", "name=\t", "other= "]) == {"note": "x=1", "name": None, "other": None}


def test_deep_merge_shares_nothing_with_its_inputs():
    base = {"a": {"x": 1}, "b": {"kept": [1]}}
    over = {"a": {"y": 2}, "c": {"new": [1]}}
    out = deep_merge(base, over)
    assert out == {"a": {"x": 1, "y": 2}, "b": {"kept": [1]}, "c": {"new": [1]}}
    out["b"]["kept"].append(2)
    out["c"]["new"].append(2)
    assert base["b"] == {"kept": [1]} and over["c"] == {"new": [1]}


def test_deep_merge_replaces_a_dict_by_a_value_and_a_value_by_a_dict():
    assert deep_merge({"a": {"x": 1}, "b": 1}, {"a": 5, "b": {"y": 2}}) == {"a": 5, "b": {"y": 2}}
