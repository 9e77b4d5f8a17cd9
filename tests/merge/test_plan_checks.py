"""Planning a merge (``asr_analogy.merge.plan``): the exact refusals of ``check_compatible`` and of the
layouts, the per-tensor parameter lookup of ``Resolver``, and the plan and metadata ``plan_merge`` returns."""

from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError, ConfigError, MergeError
from asr_analogy.io.checkpoint import CheckpointReader
from asr_analogy.merge.config import parse_merge_config
from asr_analogy.merge.methods import METHODS
from asr_analogy.merge.params import Param
from asr_analogy.merge.plan import Resolver, check_compatible, compute_dtype_for, open_inputs, plan_merge
from asr_analogy.merge.stream import Input
from asr_analogy.merge.vector_format import vector_metadata

from .conftest import write_model


def f32(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def _input(stack: ExitStack, path: Path) -> Input:
    return Input(str(path), path, stack.enter_context(CheckpointReader(path)))


def _vector_file(path: Path, tensors: dict, meta: dict | None = None) -> Path:
    meta = vector_metadata("subtract", "", len(tensors)) if meta is None else meta
    save_file(tensors, str(path), metadata=meta)
    return path


def _plan(data: dict, stack: ExitStack, config_dir=None, **kw):
    return plan_merge(parse_merge_config(data, config_dir=config_dir), stack, **kw)


# ---- open_inputs ---------------------------------------------------------------------------------------


def test_open_inputs_opens_a_path_once_and_goes_on_after_a_second_spelling(models):
    a, b = str(models["a"]), str(models["b"])
    with ExitStack() as stack:
        out = open_inputs([a, a + "/", b], stack)
        assert list(out) == [a, a + "/", b]
        assert out[a + "/"] is out[a]
        assert out[b].path == models["b"]


# ---- check_compatible ----------------------------------------------------------------------------------


@pytest.fixture
def layered(tmp_path):
    """An anchor with three float tensors whose names sort differently as text and naturally."""
    return write_model(tmp_path / "anchor", {"l.2.w": f32(1), "l.9.w": f32(1), "l.10.w": f32(1)})


def test_missing_tensors_are_named_in_natural_order(layered, tmp_path):
    other = write_model(tmp_path / "other", {"l.2.w": f32(1)})
    with ExitStack() as stack:
        anchor, inp = _input(stack, layered), _input(stack, other)
        with pytest.raises(MergeError) as err:
            check_compatible(anchor, [inp])
    assert str(err.value) == (f"model {other} has no tensor 'l.9.w', which base {layered} has "
                              "(2 tensor(s) missing)")


def test_extra_tensors_are_named_in_natural_order(tmp_path):
    anchor_path = write_model(tmp_path / "anchor", {"l.2.w": f32(1)})
    other = write_model(tmp_path / "other", {"l.2.w": f32(1), "l.9.w": f32(1), "l.10.w": f32(1)})
    with ExitStack() as stack:
        anchor, inp = _input(stack, anchor_path), _input(stack, other)
        with pytest.raises(MergeError) as err:
            check_compatible(anchor, [inp], role="model C")
    assert str(err.value) == (f"model {other} has tensor 'l.9.w', which model C {anchor_path} lacks "
                              "(2 extra tensor(s))")


def test_extra_tensors_of_a_vector_are_counted_as_floating_point(tmp_path):
    anchor_path = write_model(tmp_path / "anchor", {"w": f32(1)})
    vec = _vector_file(tmp_path / "v.safetensors", {"w": f32(1), "x": f32(1)})
    with ExitStack() as stack:
        anchor, inp = _input(stack, anchor_path), _input(stack, vec)
        with pytest.raises(MergeError) as err:
            check_compatible(anchor, [inp], vectors=True)
    assert str(err.value) == f"vector {vec} has tensor 'x', which base {anchor_path} lacks (1 extra floating-point tensor(s))"


def test_the_anchor_among_the_others_is_skipped_not_the_rest(layered, tmp_path):
    other = write_model(tmp_path / "other", {"l.2.w": f32(1), "l.9.w": f32(1), "l.10.w": f32(1, 2)})
    with ExitStack() as stack:
        anchor, inp = _input(stack, layered), _input(stack, other)
        with pytest.raises(MergeError) as err:
            check_compatible(anchor, [anchor, inp])
    assert str(err.value) == f"tensor 'l.10.w': shape [2] in model {other} but [1] in base {layered}"


@pytest.mark.parametrize("dtype, hint", [
    (torch.float16, " (set dtype: to merge models stored in different precisions)"),
    (torch.int32, ""),
])
def test_a_dtype_mismatch_is_refused_with_a_hint_between_float_precisions_only(tmp_path, dtype, hint):
    anchor_path = write_model(tmp_path / "anchor", {"w": f32(1)})
    other = write_model(tmp_path / "other", {"w": torch.tensor([1], dtype=dtype)})
    with ExitStack() as stack:
        anchor, inp = _input(stack, anchor_path), _input(stack, other)
        with pytest.raises(MergeError) as err:
            check_compatible(anchor, [inp])
        if dtype.is_floating_point:
            check_compatible(anchor, [inp], allow_dtype_mismatch=True)  # accepted when asked
        else:
            with pytest.raises(MergeError):
                check_compatible(anchor, [inp], allow_dtype_mismatch=True)
    assert str(err.value) == f"tensor 'w': dtype {dtype} in model {other} but torch.float32 in base {anchor_path}{hint}"


# ---- compute_dtype_for ---------------------------------------------------------------------------------


def test_compute_dtype_keeps_four_byte_and_wider_storage():
    assert compute_dtype_for(torch.int32, None) == torch.int32
    assert compute_dtype_for(torch.float64, None) == torch.float64
    assert compute_dtype_for(torch.bfloat16, None) == torch.float32
    assert compute_dtype_for(torch.int32, torch.float16) == torch.float16


# ---- Resolver ------------------------------------------------------------------------------------------


def test_a_tensor_without_a_layer_position_is_at_position_zero():
    resolver = Resolver("c.yaml", METHODS["task_arithmetic"], global_params={"lambda": [2.0, 6.0]})
    assert resolver.value(METHODS["task_arithmetic"].param("lambda"), "w") == 2.0


def test_overrides_and_global_settings_see_the_tensor_name_and_position():
    from asr_analogy.merge.config import Condition

    lam = METHODS["task_arithmetic"].param("lambda")
    by_name = [Condition(value=3.0, filter="attn"), Condition(value=5.0)]
    positions = {"l.0.attn": 0.0, "l.1.attn": 1.0, "l.0.mlp": 0.0, "l.1.mlp": 1.0}
    resolver = Resolver("c.yaml", METHODS["task_arithmetic"], global_params={"lambda": by_name},
                        overrides=[("mlp", {"lambda": [2.0, 4.0]}), ("attn", {"lambda": by_name})], positions=positions)
    assert [resolver.value(lam, n) for n in positions] == [3.0, 3.0, 2.0, 4.0]
    glob = Resolver("c.yaml", METHODS["task_arithmetic"], global_params={"lambda": by_name}, positions=positions)
    assert [glob.value(lam, n) for n in ("l.0.attn", "l.1.mlp")] == [3.0, 5.0]
    ramp = Resolver("c.yaml", METHODS["task_arithmetic"], global_params={"lambda": [2.0, 4.0]}, positions=positions)
    assert [ramp.value(lam, n) for n in ("l.0.mlp", "l.1.mlp")] == [2.0, 4.0]


def test_a_required_parameter_missing_names_source_method_and_tensor():
    resolver = Resolver("c.yaml", METHODS["slerp"])
    with pytest.raises(ConfigError) as err:
        resolver.value(METHODS["slerp"].param("t"), "w")
    assert str(err.value) == "c.yaml: slerp: parameter 't' is required (tensor 'w')"


def test_a_required_per_model_parameter_missing_names_the_model():
    need = Param("scale", None, "a per-model scale", per_model=True)
    with pytest.raises(ConfigError) as err:
        Resolver("c.yaml", METHODS["ties"]).value(need, "w", "m1")
    assert str(err.value) == "c.yaml: ties: parameter 'scale' is required for model m1 (tensor 'w')"


def test_a_refused_value_names_source_method_model_and_tensor():
    consensus = METHODS["ties"].param("consensus")
    resolver = Resolver("c.yaml", METHODS["ties"], global_params={"consensus": "x"})
    with pytest.raises(ConfigError) as err:
        resolver.value(consensus, "w")
    assert str(err.value) == "c.yaml: ties: parameter 'consensus' for tensor 'w' must be one of sum, count, got 'x'"
    with pytest.raises(ConfigError) as err:
        resolver.value(consensus, "w", "m1")
    assert str(err.value) == ("c.yaml: ties: parameter 'consensus' for model m1 for tensor 'w' "
                              "must be one of sum, count, got 'x'")


# ---- layouts and plan_merge ----------------------------------------------------------------------------


def _labels(inputs) -> list[str]:
    return [i.label for i in inputs]


def test_linear_averages_the_base_too_when_it_is_not_among_the_models(models):
    base, a, b = (str(models[k]) for k in ("base", "a", "b"))
    with ExitStack() as stack:
        plan = _plan({"merge_method": "linear", "base_model": base, "models": [{"model": a}, {"model": b}]}, stack)
        assert plan.method is METHODS["linear"]
        assert _labels(plan.tensors[1].inputs) == [a, b, base]
        assert plan.tensors[1].terms == []
        assert plan.tensors[1].source == "<config>"
        assert plan.copy_files_from == models["base"]
        assert plan.metadata == {"merge_method": "linear"}
    with ExitStack() as stack:
        plan = _plan({"merge_method": "linear", "base_model": base, "models": [{"model": a}, {"model": base}]}, stack)
        assert _labels(plan.tensors[1].inputs) == [a, base]


def test_a_tensor_that_is_not_merged_is_copied_from_the_anchor_in_its_own_dtype(models):
    base, a = str(models["base"]), str(models["a"])
    with ExitStack() as stack:
        plan = _plan({"merge_method": "task_arithmetic", "base_model": base, "models": [{"model": a}]}, stack,
                     out_dtype=torch.float16, source="c.yaml")
        count, w = plan.tensors  # the anchor's order: natural order of the names
        assert (w.name, w.out_dtype, _labels(w.inputs), len(w.terms), w.source) == (
            "layer.w", torch.float16, [base, a, base], 1, "c.yaml")
        assert (count.name, count.method, count.out_dtype, count.compute_dtype) == ("layer.count", None, torch.int64, torch.int64)
        assert (_labels(count.inputs), count.terms, count.params, count.source) == ([base], [], {}, "c.yaml")


def test_a_pair_method_with_two_models_is_refused_naming_the_config(models):
    base, a, b = (str(models[k]) for k in ("base", "a", "b"))
    cfg = {"merge_method": "slerp", "base_model": base, "models": [{"model": a}, {"model": b}], "parameters": {"t": 0.5}}
    with ExitStack() as stack, pytest.raises(ConfigError) as err:
        _plan(cfg, stack, source="c.yaml")
    assert str(err.value) == "c.yaml: slerp needs base_model and exactly one other model, got 2"


def test_a_missing_required_parameter_names_the_config(models):
    base, a = str(models["base"]), str(models["a"])
    with ExitStack() as stack, pytest.raises(ConfigError) as err:
        _plan({"merge_method": "slerp", "base_model": base, "models": [{"model": a}],
               "parameters": {"t": [{"filter": "other", "value": 0.5}]}}, stack, source="c.yaml")
    assert str(err.value) == "c.yaml: slerp: parameter 't' is required (tensor 'layer.w')"


def test_a_model_given_as_a_vector_is_refused_naming_it(models):
    base, a = str(models["base"]), str(models["a"])
    with ExitStack() as stack, pytest.raises(CheckpointError) as err:
        _plan({"merge_method": "task_arithmetic", "base_model": base, "models": [{"vector": a}]}, stack)
    assert str(err.value) == f"{a}: not a task vector (no asr_analogy_kind=task_vector in its metadata)"


def test_vectors_alone_are_checked_against_the_first_vector(tmp_path):
    v1 = str(_vector_file(tmp_path / "v1.safetensors", {"layer.w": f32(1, 2)}))
    v2 = str(_vector_file(tmp_path / "v2.safetensors", {"x": f32(1, 2)}))
    with ExitStack() as stack, pytest.raises(MergeError) as err:
        _plan({"merge_method": "task_arithmetic", "models": [{"vector": v1}, {"vector": v2}]}, stack)
    assert str(err.value) == f"vector {v2} has no tensor 'layer.w', which vector {v1} has (1 tensor(s) missing)"


def test_a_merge_of_vectors_alone_plans_a_task_vector(tmp_path):
    kind_only = {"asr_analogy_kind": "task_vector"}  # no base fingerprint recorded
    v1 = str(_vector_file(tmp_path / "v1.safetensors", {"layer.w": f32(1, 2)}, kind_only))
    v2 = str(_vector_file(tmp_path / "v2.safetensors", {"layer.w": f32(3, 4)}, kind_only))
    cfg = {"merge_method": "task_arithmetic", "models": [{"vector": v1}, {"vector": v2}]}
    with ExitStack() as stack:
        plan = _plan(cfg, stack, provenance={"by": "test"})
        assert plan.copy_files_from is None
        assert plan.tensors[0].delta_only
        assert plan.metadata == {
            "asr_analogy_kind": "task_vector", "method": "merge:task_arithmetic", "base_fingerprint": "",
            "finetuned_fingerprint": "", "tensor_count": "1",
            "provenance": f'{{"by": "test", "inputs": ["{v1}", "{v2}"], "kind": "merge", "method": "task_arithmetic"}}',
        }
    side = write_model(tmp_path / "side", {"w": f32(0)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ExitStack() as stack:  # files to copy: looked up next to the config as well
        plan = _plan({**cfg, "copy_files_from": "side"}, stack, config_dir=tmp_path)
        assert plan.copy_files_from == side


def test_copy_files_from_a_model_next_to_the_config(models, tmp_path):
    base, a = str(models["base"]), str(models["a"])
    with ExitStack() as stack:
        plan = _plan({"merge_method": "task_arithmetic", "base_model": base, "models": [{"model": a}],
                      "copy_files_from": "c"}, stack, config_dir=tmp_path)
        assert plan.copy_files_from == tmp_path / "c"


def test_an_analogy_is_checked_against_model_c_and_recorded_as_an_analogy(models, tmp_path):
    base, a, c = (str(models[k]) for k in ("base", "a", "c"))
    with ExitStack() as stack:
        plan = _plan({"analogy": {"c": c, "a": base, "b": a}}, stack)
        assert plan.metadata == {"merge_method": "analogy/task_arithmetic"}
    short = str(write_model(tmp_path / "short", {"layer.w": f32(1, 2, 3, 4)}))
    with ExitStack() as stack, pytest.raises(MergeError) as err:
        _plan({"analogy": {"c": c, "a": base, "b": short}}, stack)
    assert str(err.value) == f"model {short} has no tensor 'layer.count', which model C {c} has (1 tensor(s) missing)"
