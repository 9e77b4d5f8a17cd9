"""``Param`` value by value: how a flag is read from text or 0/1, how a choice and a range are written in a
message, where a closed lower end lies, and how a method lists its parameter names."""

import pytest

from asr_analogy.merge.params import CHOICE, FLAG, Method, Param

FLAG_P = Param("normalize", False, "x", kind=FLAG)
CHOICE_P = Param("mode", "sum", "x", kind=CHOICE, choices=("sum", "Max", True, 2))
CLOSED = Param("density", 1.0, "x", low=0.0, high=1.0)


@pytest.mark.parametrize("value, want", [
    ("true", True), ("false", False), ("TRUE", True), ("False", False), (1, True), (0, False),
    (1.0, True), (0.0, False), (True, True), (False, False),
])
def test_a_flag_reads_true_and_false_in_any_case_and_0_or_1(value, want):
    assert FLAG_P.convert(value) is want


@pytest.mark.parametrize("value", [2, -1, 0.5, "yes", "1", None])
def test_a_flag_refuses_anything_else(value):
    with pytest.raises(ValueError) as err:
        FLAG_P.convert(value)
    assert str(err.value) == f"must be true or false, got {value!r}"


def test_a_choice_is_written_as_given_but_a_boolean_in_lower_case():
    assert CHOICE_P.allowed() == "one of sum, Max, true, 2"
    assert CHOICE_P.check("max") == "must be one of sum, Max, true, 2, got 'max'"


def test_a_closed_lower_end_is_allowed_and_just_below_it_is_not():
    assert CLOSED.check(0.0) is None and CLOSED.check(1.0) is None
    assert CLOSED.check(-1e-9) == "must be a number in [0, 1], got -1e-09"
    half_open = Param("density", 1.0, "x", low=0.0, high=1.0, low_open=True)
    assert half_open.check(0.0) == "must be a number in (0, 1], got 0.0"


def test_param_names_are_listed_with_commas():
    method = Method("toy", "deltas", lambda tp, streamer: iter(()), (FLAG_P, CLOSED), "")
    assert method.param_names() == "normalize, density"
