"""Model references (local paths, hub ids) and parameter settings evaluated per tensor, by hand."""

import huggingface_hub
import pytest

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.merge.config import Condition, evaluate_setting, layer_positions, resolve_model

SIDE = ["*.json", "*.txt", "*.model", "tokenizer*", "*.jinja"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A stand-in for the hub: records every download and returns a snapshot folder with ``files``."""
    calls = []
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()

    def download(repo_id, *, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, allow_patterns))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    return calls, snapshot


def test_hub_id_with_revision_downloads_safetensors_and_side_files(hub):
    calls, snapshot = hub
    (snapshot / "model.safetensors").write_bytes(b"")
    assert resolve_model("someorg/some-model@v1.0") == snapshot
    assert calls == [("someorg/some-model", "v1.0", ["*.safetensors", *SIDE])]


def test_hub_id_without_safetensors_falls_back_to_bin_files(hub):
    calls, snapshot = hub
    assert resolve_model("someorg/some-model@v2") == snapshot
    assert calls == [("someorg/some-model", "v2", ["*.safetensors", *SIDE]),
                     ("someorg/some-model", "v2", ["*.bin", *SIDE])]


def test_hub_id_without_revision_asks_for_the_default_branch(hub):
    calls, snapshot = hub
    (snapshot / "model.safetensors").write_bytes(b"")
    assert resolve_model("someorg/some-model") == snapshot
    assert calls == [("someorg/some-model", None, ["*.safetensors", *SIDE])]


def test_hub_failure_names_the_model_and_the_error(monkeypatch):
    def offline(repo_id, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError) as err:
        resolve_model("someorg/some-model")
    assert str(err.value) == "model 'someorg/some-model': not a local path, and not available from the hub (OSError: no network)"


def test_a_missing_plain_path_is_not_looked_up_on_the_hub(hub, tmp_path, monkeypatch):
    calls, _ = hub
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:
        resolve_model("not_here", config_dir=tmp_path)
    assert str(err.value) == "model 'not_here': path does not exist"
    assert calls == []


def test_a_single_condition_is_evaluated_like_a_list_of_one():
    assert evaluate_setting(Condition(filter="attn", value=0.3), "layers.0.attn.q", 0.0) == 0.3
    assert evaluate_setting(Condition(filter="attn", value=0.3), "layers.0.mlp.up", 0.0) is None


def test_discrete_lists_pick_int_t_times_n_minus_1():
    assert evaluate_setting(["a", "b", "c"], "x", 0.5) == "b"  # int(0.5 * 2) = 1
    assert evaluate_setting(["a", "b", "c"], "x", 1.0) == "c"  # int(1.0 * 2) = 2


def test_numeric_gradient_interpolates_between_neighbours():
    # t = 0.75 over 3 points: x = 1.5, between 2 and 4 halfway: 0.5 * 2 + 0.5 * 4 = 3
    assert evaluate_setting([1, 2, 4], "x", 0.75) == 3.0


def test_a_condition_value_may_be_a_gradient():
    setting = [Condition(filter="attn", value=[1, 3]), Condition(value=0.0)]
    assert evaluate_setting(setting, "layers.1.attn.q", 0.5) == 2.0  # halfway between 1 and 3
    assert evaluate_setting(setting, "layers.1.mlp.up", 0.5) == 0.0


def test_an_unexpected_setting_names_the_value():
    with pytest.raises(ConfigError) as err:
        evaluate_setting({"a": 1}, "x", 0.0)
    assert str(err.value) == "unexpected parameter value {'a': 1}"


def test_a_single_layer_stack_sits_at_t_1():
    assert layer_positions(["enc.layers.0.w", "enc.norm"]) == {"enc.layers.0.w": 1.0, "enc.norm": 0.0}
