"""Merge configs as users read them back: the YAML written next to a merge, and the exact error messages."""

import pytest
import torch

from asr_analogy.errors import ConfigError
from asr_analogy.merge import load_merge_config
from asr_analogy.merge.config import parse_dtype, parse_merge_config


def test_to_yaml_writes_aliases_in_field_order_without_defaults_or_nones():
    cfg = parse_merge_config({"analogy": {"a": "A", "b": "B", "c": "C", "lambda": 0.5}, "seed": 0})
    # `lambda` (not lambda_), c before a (field order, not sorted), no seed / weight: 1.0 / method defaults,
    # no None-valued keys (density, gamma, ...).
    assert cfg.to_yaml() == "analogy:\n  c: C\n  a: A\n  b: B\n  pairs:\n  - a: A\n    b: B\n  lambda: 0.5\n"


def test_to_yaml_writes_conditions_as_plain_mappings():
    cfg = parse_merge_config({
        "merge_method": "ties", "base_model": "base", "seed": 3,
        "models": [{"model": "m", "parameters": {"weight": [{"filter": "attn", "value": [1, 3]}]}}],
        "parameters": {"density": 0.5},
    })
    assert cfg.to_yaml() == (
        "merge_method: ties\nbase_model: base\nmodels:\n- model: m\n  parameters:\n    weight:\n"
        "    - value:\n      - 1\n      - 3\n      filter: attn\nparameters:\n  density: 0.5\nseed: 3\n")


def test_unknown_top_level_parameter_names_no_model():
    with pytest.raises(ConfigError) as err:
        parse_merge_config({"merge_method": "linear", "models": [{"model": "m"}], "parameters": {"densty": 0.5}}, "c.yml")
    assert str(err.value) == ("c.yml: unknown parameter 'parameters.densty' for method linear "
                              "(it takes: weight, normalize)")


def test_global_parameter_set_per_model_is_refused_with_the_model_named():
    with pytest.raises(ConfigError) as err:
        parse_merge_config({"merge_method": "linear", "models": [{"model": "m", "parameters": {"normalize": False}}]},
                           "c.yml")
    assert str(err.value) == ("c.yml: parameter 'models[0].parameters.normalize' (model 'm') of method linear "
                              "is global, not per model: set it in the top-level parameters")


@pytest.mark.parametrize("setting", [
    {"filter": "attn", "pattern": "attn", "value": 0.5},
    [{"filter": "attn", "pattern": "attn", "value": 0.5}, {"value": 1.0}],
])
def test_condition_with_filter_and_pattern_is_refused(setting):
    with pytest.raises(ConfigError) as err:
        parse_merge_config({"merge_method": "linear", "models": [{"model": "m"}], "parameters": {"weight": setting}},
                           "c.yml")
    assert str(err.value) == "c.yml: 'parameters.weight': a condition takes filter or pattern, not both"


def test_non_mapping_config_names_the_default_source_and_the_type():
    with pytest.raises(ConfigError) as err:
        parse_merge_config(["models"])
    assert str(err.value) == "<config>: expected a mapping at the top level, got list"


def test_load_errors_call_the_file_a_merge_config(tmp_path):
    path = tmp_path / "none.yaml"
    with pytest.raises(ConfigError) as err:
        load_merge_config(path)
    assert str(err.value) == f"merge config {path} does not exist"


def test_parse_dtype_reads_torch_prefixed_names_and_names_the_setting():
    assert parse_dtype("torch.float16") is torch.float16
    assert parse_dtype("bf16") is torch.bfloat16
    with pytest.raises(ConfigError) as err:
        parse_dtype("torch.float8", "out_dtype")
    assert str(err.value) == "unknown out_dtype 'torch.float8' (float32, float64, float16, bfloat16)"
