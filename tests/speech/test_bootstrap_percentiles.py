"""The bootstrap interval is the 2.5th and 97.5th percentile of resampled corpus error rates (95 %).

The expectation repeats the documented resampling with numpy: ``default_rng(seed)`` draws a
(n_resamples, n_utterances) matrix of utterance indices with replacement; each row gives one corpus rate
sum(errors) / sum(reference words); the interval is ``np.quantile`` of those rates at (1 - level) / 2 and
1 - (1 - level) / 2.
"""

import numpy as np
import pytest

from asr_analogy.speech.metrics import bootstrap_ci, evaluate

ERRORS = np.array([0, 1, 0, 2, 0, 0, 3, 1, 0, 0])
LENGTHS = np.array([4, 5, 3, 6, 2, 5, 4, 3, 5, 4])  # 41 words, 7 errors: WER 7/41


def _resampled_rates(n_resamples, seed):
    idx = np.random.default_rng(seed).integers(0, len(ERRORS), size=(n_resamples, len(ERRORS)))
    return ERRORS[idx].sum(axis=1) / LENGTHS[idx].sum(axis=1)


@pytest.mark.parametrize("seed", [0, 7])
def test_95_percent_interval_is_the_2_5_and_97_5_percentiles(seed):
    rates = _resampled_rates(1000, seed)
    expected = tuple(np.quantile(rates, [0.025, 0.975]))
    narrower = tuple(np.quantile(rates, [0.05, 0.95]))
    assert expected[0] < narrower[0] and narrower[1] < expected[1]  # the data tell the two apart
    assert bootstrap_ci(ERRORS, LENGTHS, n_resamples=1000, seed=seed) == pytest.approx(expected, rel=1e-12)


def test_level_sets_the_percentiles():
    rates = _resampled_rates(500, 3)
    assert bootstrap_ci(ERRORS, LENGTHS, 500, 3, level=0.90) == pytest.approx(tuple(np.quantile(rates, [0.05, 0.95])), rel=1e-12)
    assert bootstrap_ci(ERRORS, LENGTHS, 500, 3, level=0.50) == pytest.approx(tuple(np.quantile(rates, [0.25, 0.75])), rel=1e-12)


def test_evaluate_reports_the_same_95_percent_interval():
    # one word per utterance, each either right (0 errors) or substituted (1 error)
    errors_1 = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0])
    recs = [{"text": "yes", "hypothesis": "no" if e else "yes"} for e in errors_1]
    s = evaluate(recs, normalizer="none", by=None, bootstrap=400, seed=5)
    idx = np.random.default_rng(5).integers(0, len(errors_1), size=(400, len(errors_1)))
    rates = errors_1[idx].sum(axis=1) / len(errors_1)
    assert s["wer"] == pytest.approx(4 / 12)
    assert np.quantile(rates, 0.025) < np.quantile(rates, 0.05)  # the data tell 2.5 % from 5 % apart
    assert s["wer_ci95"] == pytest.approx(tuple(np.quantile(rates, [0.025, 0.975])), rel=1e-12)
