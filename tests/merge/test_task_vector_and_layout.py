"""TaskVector bookkeeping (fingerprints, method strings, provenance, the base check) and the layout of an
``analogy:`` config, plus the opt-in allocator tuning: hand values."""

from contextlib import ExitStack

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import MergeError
from asr_analogy.merge import TaskVector, merge, stream
from asr_analogy.merge.config import load_merge_config, parse_merge_config
from asr_analogy.merge.plan import _analogy_layout
from asr_analogy.io.checkpoint import load_state_dict

from .conftest import write_model

T = torch.tensor


def tv(values, fingerprint=None, method="finetuned - base", provenance=None):
    return TaskVector({"w": T(values)}, fingerprint, method, provenance)


def test_from_models_records_the_base_fingerprint_method_and_provenance(models):
    v = TaskVector.from_models(models["a"], models["base"], provenance={"by": "hand"})
    assert v.method == "finetuned - base" and v.provenance == {"by": "hand"}
    assert v.base_fingerprint == TaskVector.from_models(models["b"], models["base"]).base_fingerprint
    assert v.base_fingerprint and v.base_fingerprint != TaskVector.from_models(models["base"], models["a"]).base_fingerprint
    assert_close(v["layer.w"], T([1.0, 0.0, -2.0, 0.5]))
    named = TaskVector.from_models(models["a"], models["base"], method="a - base")
    assert named.method == "a - base" and named.provenance == {}


def test_combining_keeps_the_known_fingerprint_and_names_the_operation():
    assert (tv([1.0], "fp:1") + tv([2.0], None)).base_fingerprint == "fp:1"
    assert (tv([1.0], None) - tv([2.0], "fp:2")).base_fingerprint == "fp:2"
    assert (tv([1.0], None) + tv([2.0], None)).base_fingerprint is None
    s = tv([1.0], method="x") + tv([2.0], method="y")
    assert s.method == "(x) + (y)" and (tv([1.0], method="x") - tv([2.0], method="y")).method == "(x) - (y)"
    # a fingerprint on one side only is no conflict; two different ones are
    with pytest.raises(MergeError, match=r"^task vectors come from different bases \(fp:1 vs fp:2\)$"):
        tv([1.0], "fp:1") + tv([2.0], "fp:2")


def test_scaling_keeps_fingerprint_and_provenance():
    v = 2 * tv([1.0, -3.0], "fp:1", "x", {"kind": "syn2real"})
    assert (v.base_fingerprint, v.method, v.provenance) == ("fp:1", "2 * (x)", {"kind": "syn2real"})
    assert_close(v["w"], T([2.0, -6.0]))
    assert (tv([1.0]) * 0.5).method == "0.5 * (finetuned - base)"


def test_equality_is_identity():
    a = tv([1.0])
    assert a == a and not (a == tv([1.0])) and a != tv([1.0])


def test_apply_to_checks_the_base_unless_told_not_to(models):
    v = TaskVector.from_models(models["a"], models["base"])
    assert_close(v.apply_to(models["base"])["layer.w"],
                 T([2.0, 2.0, 1.0, 4.5]))  # the default scale is 1
    with pytest.raises(MergeError) as info:
        v.apply_to(models["c"])
    assert str(info.value).startswith(f"this task vector does not belong to base {models['c']}: fingerprint ")
    assert str(info.value).endswith("; pass check_base=False to apply it anyway")
    assert_close(v.apply_to(models["c"], check_base=False)["layer.w"], T([1.0, 1.0, 1.5, 4.0]))
    # a state dict has no fingerprint to check
    assert_close(v.apply_to({"layer.w": T([0.0, 0.0, 0.0, 0.0])}, 2.0)["layer.w"], T([2.0, 0.0, -4.0, 1.0]))


def test_analogy_layout(models):
    cfg = parse_merge_config({"analogy": {"c": str(models["c"]), "lambda": 0.7, "method": "ties", "density": 0.5,
                                          "consensus": "count",
                                          "pairs": [{"a": str(models["a"]), "b": str(models["b"]), "weight": 2.0},
                                                    {"a": str(models["base"]), "b": str(models["c"])}]}})
    with ExitStack() as stack:
        lay = _analogy_layout(cfg, stack)
        assert lay.method.name == "ties" and lay.role == "model C"
        assert [t.key for t in lay.terms] == ["pair 1", "pair 2"]
        assert [(t.plus.label, t.minus.label) for t in lay.terms] == [(str(models["b"]), str(models["a"])),
                                                                 (str(models["c"]), str(models["base"]))]
        assert lay.global_params == {"lambda": 0.7, "normalize": True, "density": 0.5, "consensus": "count"}
        assert lay.model_params == {"pair 1": {"weight": 2.0}, "pair 2": {"weight": 1.0}}
    cfg = parse_merge_config({"analogy": {"c": str(models["c"]), "a": str(models["a"]), "b": str(models["b"]),
                                          "lambda": 1.0, "normalize": False, "method": "breadcrumbs", "gamma": 0.1,
                                          "rescale": "l2"}})
    with ExitStack() as stack:
        assert _analogy_layout(cfg, stack).global_params == {"lambda": 1.0, "normalize": False, "gamma": 0.1,
                                                             "rescale": "l2"}


def test_analogy_paths_are_relative_to_the_config_file(models, tmp_path, monkeypatch):
    cfg = tmp_path / "analogy.yaml"
    cfg.write_text("analogy: {a: a, b: b, c: c, lambda: 0.5}\n")
    monkeypatch.chdir(models["a"])  # not the config's folder
    out = load_state_dict(merge(load_merge_config(cfg), tmp_path / "out", progress=False))
    assert_close(out["layer.w"], T([-0.75, 1.5, 5.0, 2.25]))  # c + 0.5 (b - a)


def test_tune_malloc_raises_both_thresholds_once(monkeypatch):
    import ctypes

    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(stream, "_MALLOC_TUNED", False)
    stream.tune_malloc()
    stream.tune_malloc()
    # M_MMAP_THRESHOLD (-3) to 32 MiB, M_TRIM_THRESHOLD (-1) to 256 MiB, once per process
    assert calls == [(-3, 32 * 1024 * 1024), (-1, 256 * 1024 * 1024)]
    assert stream._MALLOC_TUNED is True


def test_tune_malloc_without_mallopt_is_a_no_op(monkeypatch):
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a libc without mallopt
    monkeypatch.setattr(stream, "_MALLOC_TUNED", False)
    stream.tune_malloc()
    assert stream._MALLOC_TUNED is True


def test_is_task_vector_file(models, tmp_path):
    from asr_analogy.merge.task_vector import is_task_vector_file

    path = tv([1.0, 2.0]).save(tmp_path / "v.safetensors")
    assert is_task_vector_file(path) is True
    assert is_task_vector_file(models["a"] / "model.safetensors") is False  # a model, not a vector
    assert is_task_vector_file(tmp_path / "missing.safetensors") is False
