"""The schedule experiment's decision rules: which comparisons it makes, and when it adds seeds."""

import numpy as np
import pytest

pytest.importorskip("torch")

from dbs_theory.measure.verdicts import seeds_needed  # noqa: E402
from validate.experiments.schedule import NAMES, comparisons, seeds_to_add  # noqa: E402


def test_each_rule_is_compared_with_the_best_fixed_batch_and_the_papers_rule_by_seed():
    val = {
        "best": [3.0, 3.1, 3.2],
        "paper": [2.9, 3.0, 3.3],
        "calibrated": [2.8, 3.0, 3.1],
        "late-switch": [3.0, 3.1, 3.2],
    }
    comps = {(c.rule, c.baseline): c for c in comparisons(val)}
    assert set(comps) == {(r, b) for r in NAMES if r in val for b in ("best", "paper") if r != b}
    c = comps["calibrated", "best"]
    assert c.gains == pytest.approx((0.2, 0.1, 0.1))  # baseline minus rule, seed by seed: > 0 is a win
    assert c.sd == pytest.approx(np.std([0.2, 0.1, 0.1], ddof=1))
    assert comps["late-switch", "best"].gains == (0.0, 0.0, 0.0)


def _val(gains, n):
    """Arms whose calibrated-vs-best gains are ``gains`` and whose other comparisons are decided."""
    best = np.full(n, 3.0)
    return {"best": best, "paper": best - 0.5, "calibrated": best - np.asarray(gains), "late-switch": best - 0.5}


def test_no_seeds_are_added_when_every_comparison_is_decided():
    assert seeds_to_add(comparisons(_val([0.05, 0.051, 0.049, 0.05, 0.052], 5)), 5, cap=12) == 0


def test_seeds_are_added_up_to_what_the_power_arithmetic_asks_within_the_cap():
    rng = np.random.default_rng(1)
    g = 0.004 + 0.008 * rng.standard_normal(5)  # undecided: the interval spans zero and reaches 0.01
    comps = comparisons(_val(g, 5))
    c = next(c for c in comps if c.rule == "calibrated" and c.baseline == "best")
    need = seeds_needed(c.sd, 0.01)
    assert 5 < need <= 12
    assert seeds_to_add(comps, 5, cap=12) == need - 5
    assert seeds_to_add(comps, 5, cap=need - 1) == 0  # more than the cap would be needed: none are added
    assert seeds_to_add(comps, 5, cap=need) == need - 5  # the boundary: exactly the cap is allowed


def test_an_interval_wholly_below_the_effect_counts_as_decided():
    g = [0.001, 0.002, 0.0015, 0.0012, 0.0018]  # holds: above zero
    assert seeds_to_add(comparisons(_val(g, 5)), 5, cap=12) == 0
    g = [-0.001, 0.002, 0.0005, -0.0002, 0.001]  # spans zero but lies wholly below 0.01: does not hold
    assert seeds_to_add(comparisons(_val(g, 5)), 5, cap=12) == 0


def test_a_decided_comparison_asks_for_no_seeds_even_where_its_spread_would():
    g = [0.03, 0.02, 0.04, 0.025, 0.038]  # holds clearly, though 0.01 nats at this spread would need > 5 seeds
    comps = comparisons(_val(g, 5))
    c = next(c for c in comps if c.rule == "calibrated" and c.baseline == "best")
    assert seeds_needed(c.sd, 0.01) > 5
    assert seeds_to_add(comps, 5, cap=12) == 0
