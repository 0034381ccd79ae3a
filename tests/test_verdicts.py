"""The one verdict rule at its boundaries, the paired interval against hand values, and the seed count
against published sample-size tables."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dbs_theory.measure.verdicts import (
    Claim,
    Interval,
    all_of,
    error_verdict,
    fit_verdict,
    interval_from_se,
    negate,
    paired_interval,
    power,
    seeds_needed,
    verdict,
)

T975_1 = 12.706204736174698  # Student t, 97.5% quantile, 1 degree of freedom (printed tables: 12.706)
T975_3 = 3.182446305284263  # 3 degrees of freedom (tables: 3.182)


def test_paired_interval_of_two_seeds_by_hand():
    iv = paired_interval([0.01, 0.03])
    sd = math.sqrt(((0.01 - 0.02) ** 2 + (0.03 - 0.02) ** 2) / 1)
    assert iv.mean == pytest.approx(0.02)
    assert iv.hi - iv.mean == pytest.approx(T975_1 * sd / math.sqrt(2), rel=1e-9)
    assert iv.n == 2 and iv.mean - iv.lo == pytest.approx(iv.hi - iv.mean)


def test_one_seed_borrows_a_measured_spread_with_its_degrees_of_freedom():
    iv = paired_interval([0.05], sd=0.01, dof=3)
    assert (iv.lo, iv.hi) == pytest.approx((0.05 - T975_3 * 0.01, 0.05 + T975_3 * 0.01))
    known = paired_interval([0.05], sd=0.01)  # a spread known exactly: the normal quantile
    assert known.hi - 0.05 == pytest.approx(1.959963985 * 0.01)
    alone = paired_interval([0.05])
    assert not alone.identified and verdict(alone) == "inconclusive"
    assert "nan" not in alone.text() and "no interval" in alone.text()


def test_nan_differences_are_dropped_not_averaged():
    iv = paired_interval([0.01, math.nan, 0.03])
    assert iv.n == 2 and iv.mean == pytest.approx(0.02)
    empty = paired_interval([math.nan])
    assert empty.n == 0 and verdict(empty) == "inconclusive" and "not identified" in empty.text()


@pytest.mark.parametrize(
    "lo, hi, positive, effect, want",
    [
        (1e-12, 0.02, True, None, "holds"),  # excludes zero in the claimed direction
        (0.0, 0.02, True, None, "inconclusive"),  # touches zero: not excluded
        (-0.02, -1e-12, True, None, "does not hold"),  # excludes zero the other way
        (-0.02, 0.0, True, None, "inconclusive"),
        (-0.01, 0.0099, True, 0.01, "does not hold"),  # the claimed effect size is ruled out
        (-0.01, 0.01, True, 0.01, "inconclusive"),  # the effect size is still inside
        (-0.02, -1e-12, False, None, "holds"),  # a claimed decrease
        (1e-12, 0.02, False, None, "does not hold"),
        (-0.0099, 0.01, False, 0.01, "does not hold"),  # a decrease of 0.01 is ruled out
        (math.nan, math.nan, True, None, "inconclusive"),
    ],
)
def test_verdict_boundaries(lo, hi, positive, effect, want):
    assert verdict(Interval((lo + hi) / 2, lo, hi, 3), positive, effect) == want


def test_negation_swaps_only_decided_verdicts():
    assert [negate(v) for v in ("holds", "does not hold", "inconclusive")] == ["does not hold", "holds", "inconclusive"]


@pytest.mark.parametrize(
    "parts, want",
    [
        (("holds", "holds"), "holds"),
        (("holds", "inconclusive"), "inconclusive"),
        (("holds", "does not hold"), "does not hold"),
        (("inconclusive", "does not hold"), "does not hold"),
    ],
)
def test_a_conjunction_holds_only_when_every_part_does(parts, want):
    assert all_of(*parts) == want


def test_interval_from_a_standard_error():
    iv = interval_from_se(0.03, 0.01, n=1)
    assert (iv.lo, iv.hi) == pytest.approx((0.03 - 0.0195996, 0.03 + 0.0195996), abs=1e-6)
    assert not interval_from_se(0.03, math.nan, n=1).identified


def test_a_claim_refuses_an_unknown_verdict_and_keeps_its_interval():
    with pytest.raises(ValueError, match="maybe"):
        Claim("c", "m", "maybe")
    d = Claim("c", "m", "holds", paired_interval([0.01, 0.03])).as_dict()
    assert d["verdict"] == "holds" and d["interval"]["n"] == 2


@pytest.mark.parametrize("d, n", [(1.0, 10), (0.5, 34)])
def test_seeds_needed_matches_published_sample_sizes(d, n):
    # one-sample (paired) t-test, two-sided alpha 0.05, power 0.8: Cohen d = 1 -> 10, d = 0.5 -> 34
    # (G*Power and Cohen's tables); sd = 1 / d in units of the effect
    assert seeds_needed(sd=1.0 / d, effect=1.0) == n
    assert power(n, 1.0 / d, 1.0) >= 0.8 > power(n - 1, 1.0 / d, 1.0)


def test_seeds_needed_refuses_what_cannot_be_computed():
    with pytest.raises(ValueError, match="effect"):
        seeds_needed(0.01, 0.0)
    with pytest.raises(ValueError, match="more than"):
        seeds_needed(1.0, 1e-4, max_n=1000)
    assert seeds_needed(0.0, 0.01) == 2  # no noise: the fewest seeds that give an interval


@settings(max_examples=40, deadline=None)
@given(st.floats(0.001, 0.1), st.floats(0.001, 0.1), st.integers(2, 200))
def test_power_grows_with_seeds_and_effect(sd, effect, n):
    assert power(n + 1, sd, effect) >= power(n, sd, effect) - 1e-12
    assert power(n, sd, 2 * effect) >= power(n, sd, effect) - 1e-12


def test_interval_covers_at_its_level_over_paired_seeds():
    rng = np.random.default_rng(5)
    cover = [(iv.lo <= 0.02 <= iv.hi) for iv in (paired_interval(rng.normal(0.02, 0.03, 4)) for _ in range(2000))]
    assert 0.935 <= np.mean(cover) <= 0.965


@pytest.mark.parametrize(
    "r3, rh, want",
    [
        ([0.91, 0.90, 0.92], [0.85, 0.85, 0.99], "holds"),  # median 0.91 >= R2_MIN 0.9, better at 2 of 3
        ([0.96, 0.8999, 0.89], [0.85, 0.85, 0.85], "inconclusive"),  # better everywhere but median 0.8999 < 0.9
        ([0.99, 0.99], [0.98, 0.995], "inconclusive"),  # better at exactly half: no majority either way
        ([0.99, 0.99, 0.99], [0.995, 0.995, 0.98], "does not hold"),  # worse at 2 of 3
        ([np.nan, 0.99], [0.5, np.nan], "inconclusive"),  # no target with both values
    ],
)
def test_fit_verdict_boundaries(r3, rh, want):
    assert fit_verdict(r3, rh) == want


def test_fit_verdict_without_a_rival_needs_only_the_median():
    assert fit_verdict([0.9, 0.9]) == "holds" and fit_verdict([0.8999, 0.9, 0.89]) == "inconclusive"


def test_one_r2_bar_for_the_table_and_the_verdicts():
    from dbs_theory.measure import tabulate, verdicts

    assert tabulate.R2_MIN is verdicts.R2_MIN == 0.9
    assert fit_verdict([]) == "inconclusive"


@pytest.mark.parametrize(
    "err, want",
    [
        (0.0499, "holds"),
        (0.05, "inconclusive"),
        (0.0999, "inconclusive"),
        (0.1, "does not hold"),
        (math.nan, "inconclusive"),
    ],
)
def test_error_verdict_boundaries(err, want):
    assert error_verdict(err, 0.05, 0.10) == want
    assert error_verdict(0.4, 0.4, 0.4) == "does not hold"  # one tolerance: at it is a miss


@pytest.mark.parametrize(
    "lo, hi, want",
    [
        (0.01, 0.0499, "holds"),
        (0.01, 0.05, "inconclusive"),
        (0.0999, 0.2, "inconclusive"),
        (0.1, 0.2, "does not hold"),
        (math.nan, math.nan, "inconclusive"),
    ],
)
def test_an_error_interval_must_lie_wholly_on_one_side(lo, hi, want):
    """The mean error's interval: below the good tolerance holds, at or above the bad one fails."""
    assert error_verdict(Interval((lo + hi) / 2, lo, hi, 5), 0.05, 0.10) == want


def test_the_power_table_from_paired_seeds():
    pytest.importorskip("torch")
    from validate.experiments.power import spread_table

    a = np.array([3.00, 3.03, 2.97, 3.01])
    b = a + np.array([0.010, 0.013, 0.008, 0.011])  # the seed noise cancels in the difference
    spread, rows = spread_table(a, b)
    assert spread["sd_paired"] == pytest.approx(np.std(b - a, ddof=1))
    assert spread["sd_single"] == pytest.approx(math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
    assert spread["sd_paired_hi"] > spread["sd_paired"]  # a 95% upper bound from 3 degrees of freedom
    for r in rows:
        assert r["paired"] <= r["unpaired"] and r["paired"] <= r["paired_conservative"]
        assert r["paired"] == seeds_needed(spread["sd_paired"], r["effect"])
    assert [r["unpaired"] for r in rows] == sorted([r["unpaired"] for r in rows], reverse=True)


def test_the_prediction_error_gain_is_positive_for_the_better_predictor():
    pytest.importorskip("torch")
    from validate.experiments.predict import error_gain

    real = np.array([100.0, 200.0, 400.0, 800.0])
    good = real * np.array([1.01, 0.99, 1.02, 0.98])
    bad = real * np.array([1.5, 0.6, 1.4, 0.7])
    iv = error_gain(bad, good, real)  # the second predictor is the better one
    assert iv.n == 4 and iv.lo > 0 and verdict(iv) == "holds"
    assert iv.mean == pytest.approx(np.mean(np.abs(np.log(bad / real)) - np.abs(np.log(good / real))))
    assert verdict(error_gain(good, bad, real)) == "does not hold"
    assert error_gain([np.nan, 1, 2, 3], good, real).n == 3  # a missing prediction drops its case
