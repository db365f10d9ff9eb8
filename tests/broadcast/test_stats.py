"""Rates, intervals and the variant test against known figures."""

import math

import pytest

from bot.broadcast.stats import BASELINE_CLICK, BASELINE_OPEN, compare, wilson


def test_kumamoto_baseline_rates_and_interval():
    assert round(BASELINE_OPEN * 100, 1) == 34.4 and round(BASELINE_CLICK * 100, 1) == 3.1
    click = wilson(671, 21416)
    # docs/alerts.md §4.1: the 95% interval of the 3.1% click rate is about 2.9-3.4%
    assert round(click.low * 100, 1) == 2.9 and round(click.high * 100, 1) == 3.4


def test_wilson_known_values_and_edges():
    r = wilson(10, 100)
    assert math.isclose(r.low, 0.0552, abs_tol=5e-4) and math.isclose(r.high, 0.1744, abs_tol=5e-4)
    zero = wilson(0, 50)
    assert zero.rate == 0.0 and zero.low == 0.0 and 0 < zero.high < 0.08
    assert wilson(0, 0).rate is None
    with pytest.raises(ValueError):
        wilson(5, 3)


def test_two_proportion_test_says_which_is_better():
    a, b = wilson(31, 1000), wilson(62, 1000)
    result = compare(a, b)
    assert result.verdict.startswith("B is better than A") and result.p_value < 0.01
    assert compare(b, a).verdict.startswith("A is better than B")
    same = compare(wilson(31, 1000), wilson(33, 1000))
    assert same.verdict.startswith("no difference yet") and same.p_value > 0.5
    assert compare(wilson(0, 0), a).verdict.startswith("no difference yet")
