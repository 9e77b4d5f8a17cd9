"""λ selection edges with hand values: the tie tolerance, refusals word for word, the sentences that say how λ
was chosen, curves with and without CER."""

from __future__ import annotations

import pytest

from asr_analogy.analogy.lambdas import choose_lambda, mean_curve, select_lambda, sweep_lambda
from asr_analogy.errors import ConfigError


def test_ties_within_the_tolerance_go_to_the_smallest_lambda():
    # 0.25 + 1e-13 is within the default 1e-12 of 0.25: a tie, so the smaller λ 0.2 wins over 0.4
    assert choose_lambda([0.4, 0.2], [0.25, 0.25 + 1e-13]) == 0.2
    # 1e-11 above the minimum is no tie at the default tolerance, but is at 1e-10
    assert choose_lambda([0.4, 0.2], [0.25, 0.25 + 1e-11]) == 0.4
    assert choose_lambda([0.4, 0.2], [0.25, 0.25 + 1e-11], tol=1e-10) == 0.2
    assert choose_lambda([1], [0.5]) == 1.0 and isinstance(choose_lambda([1], [0.5]), float)


@pytest.mark.parametrize("lambdas,wers", [([0.0, 0.5], [0.1]), ([], [])])
def test_choose_lambda_refuses_a_ragged_or_empty_curve(lambdas, wers):
    with pytest.raises(ConfigError) as info:
        choose_lambda(lambdas, wers)
    assert str(info.value) == (f"a λ curve needs as many WERs as λ values (got {len(lambdas)} λ, "
                               f"{len(wers)} WERs)")


def test_mean_curve_of_three_and_cer_only_when_every_curve_has_it():
    curves = [{"lambdas": [0, 1], "wer": [0.3, 0.6]}, {"lambdas": [0, 1], "wer": [0.0, 0.3], "cer": [0.1, 0.2]},
              {"lambdas": [0, 1], "wer": [0.6, 0.0], "cer": [0.1, 0.2]}]
    assert mean_curve(curves) == {"lambdas": [0, 1], "wer": pytest.approx([0.3, 0.3])}
    assert mean_curve(curves[1:]) == {"lambdas": [0, 1], "wer": pytest.approx([0.3, 0.15]),
                                      "cer": pytest.approx([0.1, 0.2])}
    # the third grid differs from the first: refused even when the second matches
    with pytest.raises(ConfigError) as info:
        mean_curve(curves[:2] + [{"lambdas": [0, 2], "wer": [0, 0]}])
    assert str(info.value) == "λ curves to average use different grids"
    with pytest.raises(ConfigError) as info:
        mean_curve([])
    assert str(info.value) == "no λ curve to average (no pseudo-target domain?)"


def test_sweep_with_mappings_keeps_the_cer():
    state = {}
    curve = sweep_lambda(lambda lam: state.update(lam=lam),
                         lambda: {"wer": state["lam"] / 2, "cer": state["lam"] / 4, "other": 1},
                         (0, 1, 2))
    assert curve == {"lambdas": [0.0, 1.0, 2.0], "wer": [0.0, 0.5, 1.0], "cer": [0.0, 0.25, 0.5]}
    assert all(isinstance(x, float) for x in curve["lambdas"])
    plain = sweep_lambda(lambda lam: None, lambda: 0.5, [1])
    assert plain == {"lambdas": [1.0], "wer": [0.5]} and isinstance(plain["wer"][0], float)


def test_the_sentences_that_say_how_lambda_was_chosen():
    assert select_lambda("fixed", value=0.25) == (0.25, "fixed λ = 0.25")
    assert select_lambda("fixed", value=1) == (1.0, "fixed λ = 1")
    curves = [{"lambdas": [0, 0.5, 1], "wer": [0.3, 0.2, 0.1]}, {"lambdas": [0, 0.5, 1], "wer": [0.3, 0.2, 0.5]}]
    assert select_lambda("pseudo_target", pseudo_target_curves=curves, pseudo_targets=["gen", "dig"],
                         select_splits=["dev", "test"]) == (
        0.5, "pseudo-target: min WER on real dev/test audio of held-out source domain(s) gen, dig")
    assert select_lambda("pseudo_target", pseudo_target_curves=curves[:1], pseudo_targets=["gen"]) == (
        1.0, "pseudo-target: min WER on real dev audio of held-out source domain(s) gen")
    assert select_lambda("oracle", oracle_curve={"lambdas": [0, 1], "wer": [0.1, 0.5]}, target="vm") == (
        0.0, "ORACLE: min WER on target 'vm' real dev (not a valid selection)")


@pytest.mark.parametrize("mode,kwargs,message", [
    ("fixed", {}, "lambda mode 'fixed' needs lambda.value"),
    ("oracle", {}, "lambda mode 'oracle' needs the target dev curve"),
    ("best", {}, "unknown lambda mode 'best'; choose fixed, pseudo_target or oracle"),
    ("pseudo_target", {}, "no λ curve to average (no pseudo-target domain?)"),
])
def test_select_lambda_refusals(mode, kwargs, message):
    with pytest.raises(ConfigError) as info:
        select_lambda(mode, **kwargs)
    assert str(info.value) == message


def test_fixed_lambda_of_zero_is_a_value():
    assert select_lambda("fixed", value=0) == (0.0, "fixed λ = 0")


def test_exact_ties_count_without_a_tolerance():
    assert choose_lambda([0.4, 0.2, 0.6], [0.25, 0.25, 0.3], tol=0) == 0.2


def test_oracle_without_a_target_name():
    assert select_lambda("oracle", oracle_curve={"lambdas": [0.5], "wer": [0.1]}) == (
        0.5, "ORACLE: min WER on target '' real dev (not a valid selection)")
