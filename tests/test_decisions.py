"""Decision rules and intervals at their boundaries: the verdicts, the information criteria, the bootstrap
percentiles, which curve a first hit is read from, and interval calibration over seeds."""

import math

import numpy as np
import pytest

from dbs_theory.measure.tabulate import monotonicity
from dbs_theory.theory.es_laws import ThreePhaseES
from dbs_theory.measure.fit import fit_es
from dbs_theory.logs.runs import Run
from dbs_theory.measure.curves import es_points


# (the experiments' gain verdict is tested in test_verdicts.py, with the one rule it uses)
@pytest.mark.parametrize(
    "values, lo, hi, want",
    [
        ([1, 2, 3], None, None, "holds"),
        ([1, 1, 1], None, None, "holds"),  # non-decreasing includes flat
        ([1, 3, 2], None, None, "does not hold"),
        ([1, 3, 2], [0.5, 2.5, 1.5], [1.5, 3.5, 2.6], "inconclusive"),  # the dip lies within the intervals
        ([1, 3, 2], [0.5, 2.5, 1.5], [1.5, 3.5, 2.4], "does not hold"),  # the dip's upper bound below 2.5
        ([1, np.nan, 2], None, None, "holds"),  # a missing value is skipped, not a decrease
        ([1], None, None, "inconclusive"),
        ([np.nan, np.nan], None, None, "inconclusive"),
    ],
)
def test_monotonicity_boundaries(values, lo, hi, want):
    assert monotonicity(values, lo, hi) == want


# -- fits ------------------------------------------------------------------------------------------
TRUE = ThreePhaseES.c1(10.0, 30.0, 80.0, 100.0, 5000.0, 0.5)
S_GRID = np.geomspace(11, 3000, 40)


def test_information_criteria_follow_their_formulas():
    E = TRUE(S_GRID) * np.exp(0.02 * np.random.default_rng(3).standard_normal(S_GRID.size))
    for law, k in (("three_phase", 6), ("hyperbolic", 2)):
        f = fit_es(S_GRID, E, law)
        rss = float(np.sum(f.residuals**2))
        n = S_GRID.size
        assert f.k == k and f.dof == n - k
        assert f.aic == pytest.approx(n * math.log(rss / n) + 2 * k, rel=1e-12)
        assert f.bic == pytest.approx(n * math.log(rss / n) + k * math.log(n), rel=1e-12)


def test_the_interval_is_the_2_5_and_97_5_percentiles_of_the_draws():
    E = TRUE(S_GRID) * np.exp(0.03 * np.random.default_rng(4).standard_normal(S_GRID.size))
    f = fit_es(S_GRID, E, bootstrap=60, seed=0)
    for key in ("bmin", "bopt"):
        draws = np.asarray(f.boot[key])
        draws = draws[np.isfinite(draws)]
        lo, hi = f.ci[key]
        assert lo == pytest.approx(np.percentile(draws, 2.5)) and hi == pytest.approx(np.percentile(draws, 97.5))
        assert np.mean((draws >= lo) & (draws <= hi)) == pytest.approx(0.95, abs=0.04)


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_over_seeds():
    """20 noisy realisations of the three-phase law: the 95% interval for Bopt covers the truth >= 80%."""
    covered = []
    for seed in range(20):
        E = TRUE(S_GRID) * np.exp(0.03 * np.random.default_rng(100 + seed).standard_normal(S_GRID.size))
        f = fit_es(S_GRID, E, bootstrap=100, seed=seed)
        lo, hi = f.ci["bopt"]
        covered.append(lo <= TRUE.bopt <= hi)
    assert np.mean(covered) >= 0.8, np.mean(covered)


# -- E(S) points -----------------------------------------------------------------------------------
def test_a_first_hit_is_read_from_the_smoothed_curve_not_a_noise_dip():
    step = np.arange(400.0)
    loss = 3.0 - step / 200  # crosses 2.0 at step 200
    loss[50] = 1.9  # one noisy row dips below the target far too early
    run = Run("r", 4.0, step, step * 4, loss)
    pts = es_points([run], [2.0], smoothing="centered", window=0.05)
    assert pts.S[0] == pytest.approx(200, abs=10)  # the raw loss would say step 50


def test_a_table_without_intervals_draws_no_verdict_even_when_values_rise():
    """Measured values without intervals cannot tell a trend from noise; with them the same exact
    NQM sweep gives "holds" (tests/test_estimators.py::test_the_table_presents_no_wrong_number_as_identified)."""
    import sim
    from dbs_theory.measure.tabulate import bopt_table
    from sim.identify import exact_runs

    runs = exact_runs(sim.NQM.zhang2019(300), 0.5, 2.0 ** np.arange(10), 2e4, points=300)
    table = bopt_table(runs, targets=[0.5, 0.2, 0.1], bootstrap=0)
    values = [r["bopt_envelope"] for r in table.rows if "bopt_envelope" in r]
    assert len(values) >= 2 and np.all(np.diff(values) > 0)
    assert table.verdict["bopt"] == table.verdict["bmin"] == "inconclusive"
