"""``merge`` and ``analogy_merge`` argument by argument: defaults, where the config's name appears in
messages and overlap checks, the model card's name and method line, task-vector provenance and the zeros
of a tensor left out of a merge of task vectors. Hand values on the 4-entry models of conftest.

base w = [1, 2, 3, 4]; a = [2, 2, 1, 4.5]; b = [0.5, 3, 4, 2]; c = [0, 1, 3.5, 3.5].
"""

from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from asr_analogy.errors import ConfigError, OutputExistsError
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import analogy_merge, api, merge, vector
from asr_analogy.merge.config import parse_merge_config
from asr_analogy.merge.stream import Input
from asr_analogy.merge.vector_format import read_vector_metadata, vector_provenance

T = torch.tensor


class Stop(Exception):
    """Raised by a recording stand-in to end a merge once the recorded call has happened."""


def slerp_of_three(models) -> dict:
    """A config that parses but is refused while planning: slerp takes the base and one other model."""
    return {"merge_method": "slerp", "base_model": str(models["base"]), "parameters": {"t": 0.5},
            "models": [{"model": str(models["a"])}, {"model": str(models["b"])}]}


SLERP_OF_THREE = "slerp needs base_model and exactly one other model, got 2"


def test_merge_shows_progress_by_default(models, tmp_path, capfd):
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    merge(config, tmp_path / "bar")
    shown = capfd.readouterr().err
    merge(config, tmp_path / "quiet", progress=False)
    assert "merge" in shown and capfd.readouterr().err == ""


def test_merge_threads_on_the_cpu_only(models, tmp_path, monkeypatch):
    seen = []

    @contextmanager
    def record(n):
        seen.append(n)
        raise Stop

    monkeypatch.setattr(api, "torch_threads", record)
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    for kwargs in ({}, {"threads": 3}, {"threads": None}):
        with pytest.raises(Stop):
            merge(config, tmp_path / "out", progress=False, **kwargs)
    assert seen == [1, 3, None]  # the default is one thread
    monkeypatch.setattr(api, "resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(Stop):
        merge(config, tmp_path / "out", progress=False, threads=3)
    assert seen[-1] is None  # on a GPU the CPU thread count is left alone


def test_the_device_asked_for_is_the_device_resolved(models, tmp_path, monkeypatch):
    seen = []

    def record(device):
        seen.append(device)
        raise Stop

    monkeypatch.setattr(api, "resolve_device", record)
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    with pytest.raises(Stop):
        merge(config, tmp_path / "out", progress=False, device="cuda:3")
    with pytest.raises(Stop):
        merge(config, tmp_path / "out", progress=False)
    with pytest.raises(Stop):
        analogy_merge(models["c"], [(models["a"], models["b"])], 1.0, tmp_path / "out", device="cuda:5")
    assert seen == ["cuda:3", "cpu", "cuda:5"]


def test_an_unknown_out_dtype_is_named_as_such(models, tmp_path):
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    with pytest.raises(ConfigError) as info:
        merge(config, tmp_path / "out", out_dtype="float8")
    assert str(info.value) == "unknown out_dtype 'float8' (float32, float64, float16, bfloat16)"


def test_messages_name_the_config_file_or_config(models, tmp_path):
    data = slerp_of_three(models)
    for config in (data, parse_merge_config(data)):
        with pytest.raises(ConfigError) as info:
            merge(config, tmp_path / "out", progress=False)
        assert str(info.value) == f"<config>: {SLERP_OF_THREE}"
    path = tmp_path / "slerp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        merge(path, tmp_path / "out", progress=False)
    assert str(info.value) == f"{path}: {SLERP_OF_THREE}"


def test_the_config_file_is_an_input_but_a_config_given_as_data_is_not(models, tmp_path, monkeypatch):
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "merge.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(OutputExistsError, match=r"^output .*configs contains the input .*merge\.yaml;"):
        merge(path, folder, force=True, progress=False)
    assert path.exists()
    # A config given as data has no file: a folder that happens to be called "<config>" is no input.
    monkeypatch.chdir(tmp_path)
    Path("<config>").mkdir()
    for data in (config, parse_merge_config(config)):
        out = merge(data, Path("<config>") / "merged", force=True, progress=False)
        assert load_state_dict(out)["layer.w"].tolist() == [2.0, 2.0, 1.0, 4.5]


def test_the_card_names_the_output_and_the_method(models, tmp_path):
    config = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    out = merge(config, tmp_path / "merged", progress=False)
    text = (out / "README.md").read_text()
    assert "\n# merged\n" in text
    assert "Merged with asr-analogy (`task_arithmetic`) from the config below (also in `merge_config.yaml`)" in text
    # Only a lower-case .safetensors output is a single file without a card.
    out = merge(config, tmp_path / "merged.SAFETENSORS", progress=False)
    assert (out / "README.md").is_file() and "\n# merged.SAFETENSORS\n" in (out / "README.md").read_text()


def test_a_card_names_a_hub_input_by_its_id_else_by_its_path(tmp_path):
    snapshot = tmp_path / "hub" / "models--org--toy" / "snapshots" / "abc123"
    local = tmp_path / "org" / "toy"
    cases = [
        (Input("org/toy@main", snapshot, None), "org/toy"),
        (Input("org/toy", snapshot, None), "org/toy"),
        (Input("org/toy", local, None), str(local)),  # a local folder named like a Hub id
        (Input(str(snapshot), snapshot, None), str(snapshot)),  # a snapshot given by its path
    ]
    assert [api._card_ref(model) for model, _ in cases] == [want for _, want in cases]


def test_a_vector_merge_records_the_provenance_asked_for(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    config = {"merge_method": "task_arithmetic", "models": [{"vector": str(tau)}]}
    out = merge(config, tmp_path / "sum.safetensors", progress=False, provenance={"kind": "ensemble", "note": "x"})
    made = vector_provenance(read_vector_metadata(out))
    assert made["kind"] == "ensemble" and made["note"] == "x" and made["method"] == "task_arithmetic"


def test_a_tensor_left_out_of_a_vector_merge_is_zeros_in_the_out_dtype(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    config = {"merge_method": "task_arithmetic", "models": [{"vector": str(tau)}], "include": ["layer.count"]}
    out = merge(config, tmp_path / "sum.safetensors", progress=False, out_dtype="float64", chunk_elements=2)
    w = load_state_dict(out)["layer.w"]
    assert w.dtype == torch.float64 and w.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_analogy_merge_records_seed_0_and_unit_weights(models, tmp_path):
    out = analogy_merge(models["c"], [(models["a"], models["b"])], 1.0, tmp_path / "out", progress=False)
    # The default seed (0) and weight (1.0) are left out of the record; lambda 1 and the method too.
    assert (out / "merge_config.yaml").read_text() == (
        f"analogy:\n  c: {models['c']}\n  pairs:\n  - a: {models['a']}\n    b: {models['b']}\n")
