"""Parameter groups by name and per-group scales, against hand-assigned Whisper names."""

from __future__ import annotations

import pytest

from asr_analogy.errors import ConfigError
from asr_analogy.ops.param_groups import canonical, describe_scale, encoder_layer_count, group_of, scales_for

NAMES = [
    "model.encoder.conv1.weight", "model.encoder.embed_positions.weight",
    "model.encoder.layers.0.fc1.weight", "model.encoder.layers.1.self_attn.k_proj.weight",
    "model.encoder.layers.2.fc2.bias", "model.encoder.layers.3.final_layer_norm.weight",
    "model.encoder.layer_norm.weight",
    "model.decoder.embed_tokens.weight", "model.decoder.layers.0.encoder_attn.q_proj.weight",
    "model.decoder.layers.3.fc1.weight", "proj_out.weight",
]


def test_encoder_layers_are_counted_from_encoder_names_only():
    assert encoder_layer_count(NAMES) == 4
    assert encoder_layer_count(["model.decoder.layers.7.fc1.weight"]) == 0


def test_layers_scheme_splits_the_encoder_in_halves_and_keeps_the_decoder_whole():
    groups = [group_of(n, "layers", 4) for n in NAMES]
    assert groups == ["encoder_low", "encoder_low", "encoder_low", "encoder_low", "encoder_high", "encoder_high",
                      "encoder_high", "decoder", "decoder", "decoder", "decoder"]
    # an odd count puts the middle layer low: ceil(5 / 2) = 3 layers below
    assert group_of("model.encoder.layers.2.fc1.weight", "layers", 5) == "encoder_low"
    assert group_of("model.encoder.layers.3.fc1.weight", "layers", 5) == "encoder_high"


def test_encdec_scheme_puts_cross_attention_in_the_decoder():
    groups = [group_of(n, "encdec", 4) for n in NAMES]
    assert groups == ["encoder"] * 7 + ["decoder"] * 4


def test_scales_for_gives_each_tensor_its_group_lambda():
    scale = {"scheme": "layers", "values": {"encoder_low": 0.2, "encoder_high": 0.6, "decoder": 1.0}}
    got = scales_for(NAMES, scale)
    assert [got[n] for n in NAMES] == [0.2, 0.2, 0.2, 0.2, 0.6, 0.6, 0.6, 1.0, 1.0, 1.0, 1.0]
    assert scales_for(NAMES[:2], 0.3) == {NAMES[0]: 0.3, NAMES[1]: 0.3}


def test_canonical_collapses_equal_groups_and_orders_values():
    assert canonical({"scheme": "encdec", "values": {"decoder": 0.4, "encoder": 0.4}}) == 0.4
    assert list(canonical({"scheme": "encdec", "values": {"decoder": 0.4, "encoder": 0.2}})["values"]) == [
        "encoder", "decoder"]
    assert describe_scale({"scheme": "encdec", "values": {"decoder": 0.4, "encoder": 0.2}}) == "encoder 0.2, decoder 0.4"


@pytest.mark.parametrize("bad", [{"scheme": "encdec", "values": {"encoder": 1.0}}, {"scheme": "rows", "values": {}},
                                 float("nan"), True, {"scheme": "encdec", "values": {"encoder": 1, "decoder": "x"}}])
def test_bad_scales_are_refused(bad):
    with pytest.raises(ConfigError):
        canonical(bad)


def test_a_group_scale_must_name_its_scheme():
    from asr_analogy.ops.param_groups import check_group_scale

    good = {"scheme": "encdec", "values": {"encoder": 0.5, "decoder": 0.2}}
    assert check_group_scale(good) is good
    for bad in (0.5, {"values": {"encoder": 0.5}}, {"scheme": "encdec", "values": {"encoder": 0.5}}):
        with pytest.raises(ConfigError):
            check_group_scale(bad)
