"""Perplexity against hand-computed values."""

import math

import pytest
import torch

from asr_analogy.textlm.perplexity import perplexity, sequence_nll
from tests.textlm.conftest import save_tiny_llama


def test_sequence_nll_by_hand():
    # V = 2, one row of 3 tokens [0, 1, 0]: token 1 is predicted from logits [0, 0] (p = 1/2), token 0 from
    # [ln 3, 0] (p = 3/4); the last position's logits predict nothing.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]], dtype=torch.float64)
    ids = torch.tensor([[0, 1, 0]])
    assert float(sequence_nll(logits, ids)) == pytest.approx(math.log(2) + math.log(4 / 3), abs=1e-12)


class _FixedLogits(torch.nn.Module):
    """Returns the same logits [rows, T, V] whatever the input (V = 2, see the test)."""

    def forward(self, input_ids):
        rows, t = input_ids.shape
        step = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64)  # p(token 0) = 3/4, p(token 1) = 1/4 at every position
        return type("Out", (), {"logits": step.expand(rows, t, 2)})()


def test_perplexity_by_hand_over_batches():
    # Two rows of 3 tokens: predicted tokens [1, 0] and [0, 0] -> NLL ln 4 + 3 ln(4/3) over 4 tokens.
    blocks = torch.tensor([[0, 1, 0], [1, 0, 0]])
    got = perplexity(_FixedLogits(), blocks, batch_size=1)
    nll = (math.log(4) + 3 * math.log(4 / 3)) / 4
    assert got.tokens == 4
    assert got.nll_per_token == pytest.approx(nll, abs=1e-12)
    assert got.perplexity == pytest.approx(math.exp(nll), abs=1e-12)


def test_a_model_with_zero_weights_has_the_vocabulary_size_as_perplexity(tmp_path):
    # All weights 0: every logit is 0, every token has probability 1/320, so the perplexity is 320 exactly.
    model_dir = save_tiny_llama(tmp_path / "zero", zero=True)
    blocks = torch.tensor([[5, 17, 2, 299, 40], [1, 1, 1, 1, 1]])
    got = perplexity(model_dir, blocks, batch_size=2)
    assert got.tokens == 8
    assert got.perplexity == pytest.approx(320.0, rel=1e-9)


def test_perplexity_refuses_rows_that_predict_nothing():
    with pytest.raises(ValueError, match="expected"):
        perplexity(_FixedLogits(), torch.tensor([[0], [1]]))
