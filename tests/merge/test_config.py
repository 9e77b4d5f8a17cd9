"""Merge YAML: mergekit files run unchanged; unknown or unsupported keys are errors naming key and file."""

import textwrap

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import load_merge_config, merge
from asr_analogy.merge.config import evaluate_setting, layer_positions, parse_merge_config


def write_yaml(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_mergekit_yaml_runs_unchanged_with_paths_relative_to_the_config(models, tmp_path):
    cfg = write_yaml(tmp_path / "ties.yml", """\
        models:
          - model: a
            parameters:
              weight: 1.0
              density: 0.75
          - model: b
            parameters:
              weight: 0.5
              density: 0.75
        merge_method: ties
        base_model: base
        parameters:
          normalize: true
          int8_mask: true
        dtype: float32
        out_dtype: bfloat16
        tokenizer_source: base
        """)
    out = load_state_dict(merge(cfg, tmp_path / "out", progress=False))
    # same numbers as test_methods.test_ties_trims_by_density_and_normalizes_by_agreeing_weights
    assert out["layer.w"].dtype == torch.bfloat16
    assert_close(out["layer.w"], torch.tensor([2.0, 3.0, 1.0, 2.0], dtype=torch.bfloat16))
    saved = (tmp_path / "out" / "merge_config.yaml").read_text()
    assert "merge_method: ties" in saved and "density: 0.75" in saved


@pytest.mark.parametrize(
    "text,message",
    [
        ("merge_method: ties\nbase_model: x\nmodels: [{model: y}]\nfoo: 1\n", "unknown key 'foo'"),
        ("merge_method: ties\nbase_model: x\nmodels: [{model: y, paramters: {weight: 1}}]\n", "unknown key 'models.0.paramters'"),
        ("merge_method: ties\nbase_model: x\nmodels: [{model: y, parameters: {wieght: 1}}]\n", "unknown parameter 'models[0].parameters.wieght'"),
        ("merge_method: ties\nbase_model: x\nmodels: [{model: y}]\nparameters: {lamda: 1}\n", "unknown parameter 'parameters.lamda'"),
        ("merge_method: della\nbase_model: x\nmodels: [{model: y}]\n", "merge_method 'della' is not supported"),
        ("merge_method: ties\nmodels: [{model: y}]\n", "needs base_model"),
        ("slices:\n  - sources: [{model: y, layer_range: [0, 2]}]\nmerge_method: linear\n", "'slices': layer slices"),
        ("merge_method: linear\nmodels: [{model: y}]\ntokenizer_source: union\n", "only tokenizer_source: base"),
        ("merge_method: linear\nmodels: [{model: y}]\ninclude: ['(']\n", "invalid regular expression"),
        ("merge_method: linear\nmodels: [{model: y}]\ndtype: float8\n", "unknown dtype"),
        ("analogy: {a: x, b: y, c: z, lamda: 0.5}\n", "unknown key 'analogy.lamda'"),
        ("analogy: {a: x, c: z}\n", "give either a and b, or pairs"),
        ("merge_method: linear\nmodels: [{model: y}, {model: y}]\n", "listed more than once"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_config_errors_name_key_and_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_merge_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_config_and_missing_model(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_merge_config(tmp_path / "none.yaml")
    cfg = write_yaml(tmp_path / "c.yaml", "merge_method: linear\nmodels: [{model: ./not_here}]\n")
    with pytest.raises(CheckpointError, match="'./not_here': path does not exist"):
        merge(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_hub_ids_fail_clearly_when_offline(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", "merge_method: linear\nmodels: [{model: someorg/some-model}]\n")
    with pytest.raises(CheckpointError, match="someorg/some-model.*not available from the hub"):
        merge(cfg, tmp_path / "out", progress=False)


def test_setting_evaluation_follows_mergekit():
    cfg = parse_merge_config({
        "merge_method": "ties", "base_model": "x", "models": [{"model": "y"}],
        "parameters": {"density": [{"filter": "mlp", "value": 0.3}, {"pattern": r"layers\.1\.", "value": 0.6}, {"value": 0.9}]},
    })
    setting = cfg.parameters["density"]
    assert evaluate_setting(setting, "model.layers.0.mlp.up", 0.0) == 0.3
    assert evaluate_setting(setting, "model.layers.1.self_attn.q", 0.0) == 0.6
    assert evaluate_setting(setting, "model.norm", 0.0) == 0.9
    assert evaluate_setting([0.0, 1.0, 0.0], "x", 0.25) == 0.5  # gradient: t * (n - 1) = 0.5
    assert evaluate_setting([True, False], "x", 0.9) is True  # discrete lists pick int(t * (n - 1))
    assert layer_positions(["m.layers.0.w", "m.layers.3.w", "m.norm", "enc.layers.1.w", "enc.layers.0.w"]) == {
        "m.layers.0.w": 0.0, "m.layers.3.w": 1.0, "m.norm": 0.0, "enc.layers.1.w": 1.0, "enc.layers.0.w": 0.0}
