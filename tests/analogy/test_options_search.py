"""Vector options: option parsing, the coordinate search over groups (a hand-traced case), and θ_C + per-group λ·v
written into a loaded model (hand-computed tensors)."""

from __future__ import annotations

import pytest
import torch

from asr_analogy.analogy.options import coordinate_search, option_slug, parse_option
from asr_analogy.analogy.vectors import LambdaModel
from asr_analogy.errors import ConfigError


def test_options_parse_and_name_files():
    assert parse_option("encdec") == ("encdec",) and parse_option("topk:0.2") == ("topk", 0.2)
    assert option_slug("topk:0.2") == "topk0.2" and option_slug("layers") == "layers"
    for bad in ("topk:0", "topk:1.5", "topk:x", "rows", "encdec:1"):
        with pytest.raises(ConfigError):
            parse_option(bad)


def test_coordinate_search_visits_groups_in_order_and_keeps_improvements():
    # WER = (enc - 0.8)^2 + dec^2 + 0.1; start at 0.4 on the grid 0, 0.4, 0.8
    def score(scale):
        v = scale["values"] if isinstance(scale, dict) else {"encoder": scale, "decoder": scale}
        return round((v["encoder"] - 0.8) ** 2 + v["decoder"] ** 2 + 0.1, 6)

    scale, tried = coordinate_search(score, "encdec", 0.4, [0.0, 0.4, 0.8])
    assert scale == {"scheme": "encdec", "values": {"encoder": 0.8, "decoder": 0.0}}
    # start (0.4, 0.4); encoder 0 (worse), 0.8 (better, kept); then decoder 0 (better, kept), 0.8 (worse)
    assert [t["wer"] for t in tried] == [0.42, 0.9, 0.26, 0.1, 0.74]
    assert tried[0]["scale"] == 0.4 and tried[2]["scale"] == {"scheme": "encdec", "values": {"encoder": 0.8, "decoder": 0.4}}


def test_coordinate_search_keeps_the_current_value_on_a_tie():
    scale, tried = coordinate_search(lambda s: 0.5, "layers", 0.2, [0.0, 0.2, 1.0])
    assert scale == 0.2 and len(tried) == 1 + 3 * 2


class _Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(2, 1, bias=False)
        self.decoder = torch.nn.Linear(2, 1, bias=False)


def test_lambda_model_applies_each_group_its_lambda():
    model = _Two()
    c = {"encoder.weight": torch.tensor([[1.0, 2.0]]), "decoder.weight": torch.tensor([[3.0, 4.0]])}
    model.load_state_dict(c)
    v = {"encoder.weight": torch.tensor([[10.0, 10.0]]), "decoder.weight": torch.tensor([[100.0, 100.0]])}
    lm = LambdaModel(model, c)
    lm.set({"scheme": "encdec", "values": {"encoder": 0.5, "decoder": -0.01}}, v)
    assert model.encoder.weight.tolist() == [[6.0, 7.0]] and model.decoder.weight.tolist() == [[2.0, 3.0]]
    lm.set(0.1, v)  # from θ_C again, never accumulated
    assert model.encoder.weight.tolist() == [[2.0, 3.0]] and model.decoder.weight.tolist() == [[13.0, 14.0]]
