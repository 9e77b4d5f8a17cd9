"""``analogy_merge`` argument by argument, config error messages word for word (``_format_error`` on pydantic's
error records) and the ``*`` filter: hand values on the 4-entry models of conftest.

base w = [1, 2, 3, 4]; a = [2, 2, 1, 4.5]; b = [0.5, 3, 4, 2]; c = [0, 1, 3.5, 3.5]; b - a = [-1.5, 1, 3, -2.5].
"""

import inspect

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import ConfigError, OutputExistsError
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import analogy_merge
from asr_analogy.merge.config import Condition, _condition_matches, _format_error

from .conftest import write_model

T = torch.tensor


def test_analogy_merge_defaults():
    params = inspect.signature(analogy_merge).parameters
    assert {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty} == {
        "method": "task_arithmetic", "density": None, "include": None, "exclude": None, "force": False,
        "weights": None, "seed": 0, "dtype": None, "out_dtype": None, "shard_size": "5GB", "device": "cpu",
        "progress": True}


def test_analogy_merge_refusals(models, tmp_path):
    with pytest.raises(ConfigError) as info:
        analogy_merge(models["c"], [], 1.0, tmp_path / "out")
    assert str(info.value) == "analogy_merge needs at least one (a, b) pair"
    with pytest.raises(ConfigError) as info:
        analogy_merge(models["c"], [(models["a"], models["b"])], 1.0, tmp_path / "out", weights=[1.0, 2.0])
    assert str(info.value) == "analogy_merge: 2 weights for 1 pairs"
    assert not (tmp_path / "out").exists()


def test_analogy_merge_weights_density_and_outputs(models, tmp_path):
    pairs = [(models["a"], models["b"]), (models["base"], models["c"])]
    # weights 3 and 1, normalized: (3 (b - a) + (c - base)) / 4 = [-5.5, 2, 9.5, -8] / 4, added to c
    out = analogy_merge(models["c"], pairs, 1.0, tmp_path / "w", weights=[3.0, 1.0], shard_size=8,
                        out_dtype="float64")
    state = load_state_dict(out)
    assert state["layer.w"].dtype == torch.float64
    assert_close(state["layer.w"], T([0.0, 1.0, 3.5, 3.5], dtype=torch.float64) + T([-5.5, 2, 9.5, -8],
                 dtype=torch.float64) / 4)
    assert len(list(out.glob("model-*-of-*.safetensors"))) == 2  # 8-byte shards: one per tensor
    # magnitude_prune at density 0.5 on b - a keeps [0, 0, 3, -2.5]; the same output path again needs force
    with pytest.raises(OutputExistsError):
        analogy_merge(models["c"], pairs[:1], 1.0, tmp_path / "w", method="magnitude_prune", density=0.5)
    out = analogy_merge(models["c"], pairs[:1], 1.0, tmp_path / "w", method="magnitude_prune", density=0.5,
                        force=True, progress=False, dtype="float64")
    state = load_state_dict(out)
    assert state["layer.w"].dtype == torch.float64
    assert torch.equal(state["layer.w"], T([0.0, 1.0, 6.5, 1.0], dtype=torch.float64))


def test_analogy_merge_shows_progress_by_default(models, tmp_path, capfd):
    analogy_merge(models["c"], [(models["a"], models["b"])], 1.0, tmp_path / "bar")
    shown = capfd.readouterr().err
    analogy_merge(models["c"], [(models["a"], models["b"])], 1.0, tmp_path / "quiet", progress=False)
    assert shown and capfd.readouterr().err == ""


def test_analogy_merge_include_and_exclude(models, tmp_path):
    def two(name, scale):
        w = load_state_dict(models[name])["layer.w"] * scale
        return write_model(tmp_path / f"two_{name}", {"enc.w": w, "dec.w": 2 * w})

    a, b, c = two("a", 1.0), two("b", 1.0), two("c", 1.0)
    moved = {"enc.w": T([-1.5, 2.0, 6.5, 1.0]), "dec.w": T([-3.0, 4.0, 13.0, 2.0])}  # c + (b - a)
    kept = {"enc.w": T([0.0, 1.0, 3.5, 3.5]), "dec.w": T([0.0, 2.0, 7.0, 7.0])}  # c
    out = load_state_dict(analogy_merge(c, [(a, b)], 1.0, tmp_path / "inc", include=["enc"], progress=False))
    assert torch.equal(out["enc.w"], moved["enc.w"]) and torch.equal(out["dec.w"], kept["dec.w"])
    out = load_state_dict(analogy_merge(c, [(a, b)], 1.0, tmp_path / "exc", exclude=["enc"], progress=False))
    assert torch.equal(out["enc.w"], kept["enc.w"]) and torch.equal(out["dec.w"], moved["dec.w"])


class _Errors:
    """Stands in for pydantic's ValidationError: ``_format_error`` reads only ``errors()``."""

    def __init__(self, *records):
        self.records = [dict(zip(("type", "loc", "msg"), r)) for r in records]

    def errors(self):
        return self.records


def test_format_error_words():
    exc = _Errors(
        ("extra_forbidden", ("slices",), "Extra inputs are not permitted"),
        ("extra_forbidden", ("models", 0, "tokenizer"), "Extra inputs are not permitted"),
        ("value_error", ("parameters", "weight", "list[union[bool,int,float,str]]", 0, "function-after[f]",
                         "dict[str,float]", "union[a,b]"), "Value error, must be short"),
    )
    assert _format_error(exc, "m.yaml") == (
        "m.yaml: layer slices (frankenmerges) are not supported; use models:; "
        "m.yaml: unknown key 'models.0.tokenizer'; "
        "m.yaml: parameters.weight.0: must be short")


def test_format_error_keeps_three_distinct_lines():
    exc = _Errors(
        ("missing", (), "Value error, one"), ("missing", (), "Value error, one"),  # the same line once
        ("missing", ("x",), "value error, two"),  # only the exact prefix "Value error, " is dropped
        ("extra_forbidden", ("a", "chat_template"), "no"),  # a hint only for a top-level key
        ("missing", ("y",), "four"),
    )
    assert _format_error(exc, "s") == "s: one; s: x: value error, two; s: unknown key 'a.chat_template'"


@pytest.mark.parametrize("flt,name,matches", [
    ("*", "model.layers.0.w", True), (None, "x", True), ("attn", "layer.attn.q", True), ("attn", "mlp.w", False),
    ("*", "*", True), ("**", "a*", False),
])
def test_condition_filter(flt, name, matches):
    assert _condition_matches(Condition(filter=flt, value=1.0), name) is matches
