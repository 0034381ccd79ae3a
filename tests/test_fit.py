"""E(S) laws and fitting: recovery, NQM frontiers, invariances, refusals."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sim
from dbs_theory.theory.es_laws import HyperbolicES, ThreePhaseES
from dbs_theory.measure.fit import compare_laws, fit_es

# A physical three-phase law: A0 = Emin - C (S2^2 - Sopt^2) = 1800 >= 0, so Bmin <= Bopt.
TRUE = ThreePhaseES.c1(smin=10.0, s1=30.0, sopt=80.0, s2=100.0, emin=5000.0, c=0.5)
S_GRID = np.geomspace(11, 3000, 40)


class TestLaws:
    def test_c1_is_continuous_with_matching_slopes(self):
        for s in (TRUE.s1, TRUE.s2):
            lo, hi = TRUE(np.array([s * (1 - 1e-9), s * (1 + 1e-9)]))
            assert hi == pytest.approx(lo, rel=1e-7)
            h = 1e-6 * s
            left = (TRUE(s - h) - TRUE(s - 2 * h)) / h
            right = (TRUE(s + 2 * h) - TRUE(s + h)) / h
            assert left == pytest.approx(right, rel=1e-4)

    def test_hand_values(self):
        assert TRUE.bmin == pytest.approx(2 * 0.5 * (100 - 80))
        assert TRUE.bopt == pytest.approx(5000 / 80)
        assert TRUE(80.0) == pytest.approx(5000.0)
        assert TRUE(1000.0) == pytest.approx(20 * 1000 + (5000 - 0.5 * (100**2 - 80**2)))
        assert list(TRUE.phase([20.0, 50.0, 200.0, 5.0])) == ["inverse", "quadratic", "linear", "unreachable"]

    def test_hyperbola(self):
        h = HyperbolicES(100.0, 4000.0)
        assert h(200.0) == pytest.approx(8000.0)
        assert h.b_crit == pytest.approx(40.0)
        assert h.bmin is None and h.bopt is None  # the law defines neither

    @pytest.mark.parametrize(
        "args",
        [
            (10, 5, 80, 100, 5000, 0.5),
            (10, 30, 80, 100, -1, 0.5),
            (10, 30, 80, 100, 5000, 0.0),
            (10, 30, 20, 100, 5000, 0.5),
        ],
    )
    def test_bad_parameters(self, args):
        with pytest.raises(ValueError):
            ThreePhaseES.c1(*args)
        with pytest.raises(ValueError):
            HyperbolicES(-1.0, 3.0)


class TestRecovery:
    def test_three_phase_exact(self):
        f = fit_es(S_GRID, TRUE(S_GRID))
        assert f.r2_log > 0.999999
        assert f.bmin == pytest.approx(TRUE.bmin, rel=1e-3)
        assert f.bopt == pytest.approx(TRUE.bopt, rel=1e-3)
        assert f.law.smin == pytest.approx(TRUE.smin, rel=1e-3)

    def test_three_phase_noisy(self):
        rng = np.random.default_rng(1)
        E = TRUE(S_GRID) * np.exp(0.02 * rng.standard_normal(S_GRID.size))
        f = fit_es(S_GRID, E, bootstrap=100, seed=0)
        assert f.bopt == pytest.approx(TRUE.bopt, rel=0.08)
        assert f.bmin == pytest.approx(TRUE.bmin, rel=0.3)
        lo, hi = f.ci["bopt"]
        assert lo < f.bopt < hi

    def test_hyperbola_exact_and_noisy(self):
        law = HyperbolicES(50.0, 2e4)
        S = np.geomspace(55, 5000, 20)
        f = fit_es(S, law(S), "hyperbolic")
        assert (f.law.smin, f.law.emin) == (pytest.approx(50.0, rel=1e-6), pytest.approx(2e4, rel=1e-6))
        E = law(S) * np.exp(0.03 * np.random.default_rng(2).standard_normal(S.size))
        g = fit_es(S, E, "hyperbolic")
        assert g.law.emin == pytest.approx(2e4, rel=0.05)
        assert g.bmin is None

    def test_free_form_fits_at_least_as_well(self):
        f_c1 = fit_es(S_GRID, TRUE(S_GRID), "three_phase")
        f_free = fit_es(S_GRID, TRUE(S_GRID), "three_phase_free")
        assert f_free.r2_log >= f_c1.r2_log - 1e-9
        assert f_free.k == 10 and f_free.dof == S_GRID.size - 10


def test_power_law_nqm_frontier():
    """Tolerances stated up front: R2_log >= 0.99 for the three-phase law, its AIC below the
    hyperbola's, Bmin within 25% and Bopt within 10% of the exact sim values."""
    nqm = sim.NQM.power_law(3000, 1.4)
    eta = 0.5
    t = 0.04 * nqm.initial_loss()
    b0, bo = sim.bmin(nqm, eta, t), sim.bopt(nqm, eta, t)
    B = b0 * (1 + np.geomspace(1e-3, 300, 24))
    S = sim.steps_to_target(nqm, eta, B, t)
    fits, skipped = compare_laws(S, B * S)
    best = {f.name: f for f in fits}
    assert not skipped
    assert best["three_phase"].r2_log >= 0.99
    assert best["three_phase"].aic < best["hyperbolic"].aic - 10
    assert best["three_phase"].bmin == pytest.approx(b0, rel=0.25)
    assert best["three_phase"].bopt == pytest.approx(bo, rel=0.10)


def test_refuses_too_few_points():
    with pytest.raises(ValueError, match="at least 9 points"):
        fit_es(S_GRID[:8], TRUE(S_GRID[:8]))
    with pytest.raises(ValueError, match="unknown law"):
        fit_es(S_GRID, TRUE(S_GRID), "cubic")
    with pytest.raises(ValueError, match="positive"):
        fit_es(-S_GRID, TRUE(S_GRID))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 100.0))
def test_order_invariance_and_scaling(seed, scale):
    rng = np.random.default_rng(seed)
    E = TRUE(S_GRID) * np.exp(0.02 * rng.standard_normal(S_GRID.size))
    base = fit_es(S_GRID, E)
    perm = rng.permutation(S_GRID.size)
    shuffled = fit_es(S_GRID[perm], E[perm])
    assert shuffled.bopt == pytest.approx(base.bopt, rel=1e-9)
    assert shuffled.bmin == pytest.approx(base.bmin, rel=1e-9)
    scaled = fit_es(S_GRID, E * scale)
    assert scaled.bopt == pytest.approx(base.bopt * scale, rel=1e-6)
    assert scaled.bmin == pytest.approx(base.bmin * scale, rel=1e-6, abs=1e-9 * scale)
