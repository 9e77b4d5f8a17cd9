"""Each method's own parameters: an undeclared, misplaced, out-of-range or non-finite parameter is refused
before any work, naming the method, the key and (for per-model parameters) the model; merge configs are read
strictly; the library leaves the process allocator alone."""

import pytest

from asr_analogy.errors import ConfigError
from asr_analogy.merge import METHODS, load_merge_config, merge, parse_merge_config

NAN, INF = float("nan"), float("inf")


def _cfg(method, shared=None, per_model=None):
    cfg = {"merge_method": method, "models": [{"model": "m1", "parameters": per_model or {}}]}
    if METHODS[method].needs_base:
        cfg["base_model"] = "b"
    if method == "slerp":
        shared = {"t": 0.5, **(shared or {})}
    cfg["parameters"] = shared or {}
    return cfg


def _refused(cfg, *parts):
    with pytest.raises(ConfigError) as err:
        parse_merge_config(cfg, "cfg.yaml")
    for part in parts:
        assert part in str(err.value), (part, str(err.value))
    return str(err.value)


# (method, a parameter it does not take)
UNDECLARED = [
    ("linear", "lambda"),
    ("linear", "density"),
    ("task_arithmetic", "density"),
    ("task_arithmetic", "consensus"),
    ("magnitude_prune", "consensus"),
    ("ties", "gamma"),
    ("dare_linear", "gamma"),
    ("dare_ties", "t"),
    ("breadcrumbs", "consensus"),
    ("breadcrumbs_ties", "epsilon"),
    ("slerp", "weight"),
]


def test_the_table_covers_every_method():
    assert {m for m, _ in UNDECLARED} == set(METHODS)


@pytest.mark.parametrize("method,key", UNDECLARED)
def test_a_parameter_the_method_does_not_take_is_refused(method, key):
    _refused(_cfg(method, shared={key: 0.5}), "cfg.yaml", f"'parameters.{key}'", f"method {method}")
    msg = _refused(_cfg(method, per_model={key: 0.5}), f"'models[0].parameters.{key}'", f"method {method}", "model 'm1'")
    assert "it takes: " + METHODS[method].param_names() in msg
    cfg = _cfg(method)
    cfg["overrides"] = [{"pattern": "x", "parameters": {key: 0.5}}]
    _refused(cfg, f"'overrides[0].parameters.{key}'", f"method {method}")


# (method, where: "shared" or "model", key, value, what the message says about it)
OUT_OF_RANGE = [
    ("ties", "model", "density", 1.5, "a number in (0, 1]"),
    ("ties", "model", "density", 0.0, "a number in (0, 1]"),
    ("magnitude_prune", "shared", "density", -0.1, "a number in (0, 1]"),
    ("dare_linear", "model", "density", 2, "a number in (0, 1]"),
    ("dare_ties", "shared", "density", [0.5, 1.2], "a number in (0, 1]"),  # one end of a gradient
    ("breadcrumbs", "model", "gamma", 1.0, "a number in [0, 1)"),
    ("breadcrumbs_ties", "model", "gamma", -0.01, "a number in [0, 1)"),
    ("slerp", "shared", "t", 1.5, "a number in [0, 1]"),
    ("slerp", "shared", "t", -0.2, "a number in [0, 1]"),
    ("ties", "shared", "consensus", "median", "one of sum, count"),
    ("dare_ties", "shared", "rescale", "l3", "one of true, false"),
    ("task_arithmetic", "shared", "normalize", "maybe", "true or false"),
    ("linear", "model", "weight", "heavy", "a finite number"),
    ("task_arithmetic", "shared", "lambda", True, "a finite number"),
    ("ties", "model", "density", [{"filter": "mlp", "value": 0.5}, {"value": 3.0}], "a number in (0, 1]"),
]


@pytest.mark.parametrize("method,where,key,value,allowed", OUT_OF_RANGE)
def test_a_value_out_of_range_is_refused(method, where, key, value, allowed):
    cfg = _cfg(method, **({"shared": {key: value}} if where == "shared" else {"per_model": {key: value}}))
    block = "parameters" if where == "shared" else "models[0].parameters"
    msg = _refused(cfg, "cfg.yaml", f"'{block}.{key}'", f"method {method}", f"must be {allowed}")
    assert ("model 'm1'" in msg) == (where == "model")


@pytest.mark.parametrize(
    "method,where,key,value",
    [
        ("task_arithmetic", "model", "weight", NAN),
        ("linear", "model", "weight", -INF),
        ("ties", "shared", "lambda", NAN),
        ("dare_linear", "shared", "lambda", INF),
        ("ties", "model", "density", NAN),
        ("slerp", "shared", "t", NAN),
        ("task_arithmetic", "model", "weight", [0.0, NAN]),
        ("task_arithmetic", "model", "weight", "nan"),
    ],
)
def test_a_non_finite_value_is_refused(method, where, key, value):
    cfg = _cfg(method, **({"shared": {key: value}} if where == "shared" else {"per_model": {key: value}}))
    _refused(cfg, f".{key}'", f"method {method}", "must be finite")


def test_analogy_parameters_are_checked_against_the_analogy_method():
    analogy = {"a": "A", "b": "B", "c": "C"}
    _refused({"analogy": dict(analogy, method="ties", gamma=0.1)}, "'analogy.gamma'", "method ties")
    _refused({"analogy": dict(analogy, method="task_arithmetic", density=0.5)}, "'analogy.density'", "method task_arithmetic")
    _refused({"analogy": dict(analogy, method="ties", density=1.5)}, "'analogy.density'", "(0, 1]")
    _refused({"analogy": dict(analogy, **{"lambda": NAN})}, "'analogy.lambda'", "must be finite")
    pairs = [{"a": "A", "b": "B", "weight": INF}]
    _refused({"analogy": {"c": "C", "pairs": pairs}}, "'analogy.pairs[0].weight'", "pair 1", "must be finite")


def test_a_global_parameter_given_per_model_is_refused():
    _refused(_cfg("ties", per_model={"lambda": 0.5}), "'models[0].parameters.lambda'", "method ties", "is global")
    _refused(_cfg("slerp", per_model={"t": 0.5}), "'models[0].parameters.t'", "method slerp", "is global")


def test_a_required_parameter_left_out_is_refused():
    cfg = {"merge_method": "slerp", "base_model": "b", "models": [{"model": "m1"}]}
    _refused(cfg, "cfg.yaml", "method slerp needs parameter 't'")


def test_every_declared_default_is_allowed_and_documented():
    for method in METHODS.values():
        assert method.paper, method.name
        for p in method.params:
            assert p.doc, (method.name, p.name)
            assert p.default is None or p.check(p.default) is None, (method.name, p.name)


def test_refused_before_any_work(tmp_path):
    cfg = {"merge_method": "ties", "base_model": str(tmp_path / "none"), "models": [{"model": str(tmp_path / "none2")}],
           "parameters": {"density": 1.5}}
    with pytest.raises(ConfigError, match="density"):  # not "path does not exist": parameters come first
        merge(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_yaml_nan_and_duplicate_keys_are_refused_naming_the_key(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("merge_method: ties\nbase_model: b\nmodels:\n  - model: m1\n    parameters: {weight: .nan}\n")
    with pytest.raises(ConfigError, match=r"'models\[0\]\.parameters\.weight' \(model 'm1'\) of method ties must be finite"):
        load_merge_config(path)
    path.write_text("merge_method: ties\nbase_model: b\nmodels: [{model: m1}]\nmerge_method: linear\n")
    with pytest.raises(ConfigError, match=r"m\.yaml.*'merge_method' is given twice \(first on line 1\)"):
        load_merge_config(path)
    path.write_text("merge_method: ties\nbase_model: b\nmodels: [{model: m1, parameters: {density: 0.5, density: 0.7}}]\n")
    with pytest.raises(ConfigError, match="'density' is given twice"):
        load_merge_config(path)
    path.write_bytes(b"merge_method: linear\nmodels: [{model: caf\xe9}]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_merge_config(path)
