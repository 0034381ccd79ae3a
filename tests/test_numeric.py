"""Layers 2 and 3: lambdified numerics against hand formulas and brute force."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings, strategies as st

from dbs_theory import derivations as dv
from dbs_theory.theory import numeric as nm
from dbs_theory.derivations import export
from naive import brute_bmin, first_hit, iterate_moments

RTOL = 1e-9


def test_the_registry_names_the_derived_fields():
    o, tp, mm, mc, bc = (
        dv.nqm_mode(),
        dv.three_phase_coefficients(),
        dv.multimode(),
        dv.mccandlish(),
        dv.bopt_condition(),
    )
    Q = sp.Symbol("Q")
    fields = {
        "m_t": o.m_t,
        "loss_t": o.loss_t,
        "floor": o.floor,
        "S": o.S,
        "a": o.a,
        "S_min": tp.S_min,
        "B_m1": tp.B_m1,
        "B_0": tp.B_0,
        "A1": tp.A1,
        "A0": tp.A0,
        "C": tp.C,
        "S_red": tp.S,
        "G": bc.G,
        "bopt_v": bc.bopt,
        "K": tp.definitions["K"],
        "q": tp.definitions["q"],
        "lam": tp.definitions["lam"],
        "floor_Q": mm.floor.subs(mm.spectral_sum, Q),
        "bmin_Q": mm.B_min.subs(mm.spectral_sum, Q),
        "spectral_term": mm.spectral_sum.function,
        "B_noise": mc.B_noise,
        "B_simple": mc.B_simple,
        "E_of_S": mc.E_of_S,
    }
    assert set(fields) == set(export.REGISTRY)
    for name, want in fields.items():
        assert sp.simplify(export.field(name)[0] - want) == 0, name


@pytest.mark.parametrize("name", list(export.REGISTRY))
def test_the_generated_formulas_evaluate_to_the_derivations(name):
    """``dbs_theory/theory/_formulas.py`` is current: regenerate it (python -m dbs_theory.derivations.export)
    when this fails after a derivation changed."""
    expr, symbols = export.field(name)
    fresh = sp.lambdify(symbols, expr, modules="numpy")
    rng = np.random.default_rng(sum(map(ord, name)))
    # points with 0 < a < 1, eta h in (0, 2), targets above L_irr: the formulas' domain
    args = {s.name: rng.uniform(0.05, 0.95, 64) for s in symbols}
    vals = [args[s.name] * (3 if s.name.startswith(("B", "t", "S", "K", "m", "r")) else 1) for s in symbols]
    with np.errstate(all="ignore"):
        want, got = np.broadcast_to(fresh(*vals), (64,)), np.broadcast_to(nm.compiled(name)(*vals), (64,))
    assert np.isfinite(want).sum() >= 16, name  # the check saw real values
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)


class TestAgainstHandFormulas:
    h = np.array([1.0, 0.3, 0.05])
    c = np.array([0.8, 0.3, 0.02])
    eta = 0.7

    def test_floor_and_bmin(self):
        B = np.array([3.0, 30.0, 300.0])
        hand = 0.1 + self.eta / (2 * B) * np.sum(self.c / (2 - self.eta * self.h))
        np.testing.assert_allclose(nm.loss_floor(self.h, self.c, self.eta, B, 0.1), hand, rtol=1e-13)
        t = np.array([0.11, 0.2])
        hand_b = self.eta * np.sum(self.c / (2 - self.eta * self.h)) / (2 * (t - 0.1))
        np.testing.assert_allclose(nm.bmin(self.h, self.c, self.eta, t, 0.1), hand_b, rtol=1e-13)

    def test_moment_closed_form(self):
        h, c, eta, B, m0, t = 0.3, 0.5, 0.9, 12.0, 2.0, np.arange(7.0)
        minf = eta * c / (B * h * (2 - eta * h))
        hand = minf + (1 - eta * h) ** (2 * t) * (m0 - minf)
        np.testing.assert_allclose(nm.moment(t, h, c, eta, B, m0), hand, rtol=1e-13)

    def test_continuous_steps(self):
        h, c, eta, m0, L_irr, Ls = 0.4, 0.6, 0.8, 1.5, 0.05, 0.12
        B = np.array([20.0, 50.0, 500.0])
        minf = eta * c / (B * h * (2 - eta * h))
        q = 2 * (Ls - L_irr) / h
        hand = np.log((q - minf) / (m0 - minf)) / (2 * np.log(abs(1 - eta * h)))
        got = nm.steps_to_target(h, c, eta, B, Ls, m0, L_irr, discrete=False)
        np.testing.assert_allclose(got, hand, rtol=1e-12)

    def test_three_phase_coefficients(self):
        h, c, eta, m0, L_irr, Ls = 0.4, 0.6, 0.8, 1.5, 0.05, 0.12
        tp = nm.three_phase(h, c, eta, Ls, m0, L_irr)
        K, q, lam = eta * c / (h * (2 - eta * h)), 2 * (Ls - L_irr) / h, -2 * np.log(abs(1 - eta * h))
        smin = np.log(m0 / q) / lam
        s1 = K * (m0 - q) / (lam * m0 * q)
        s2 = K**2 * (m0**2 - q**2) / (2 * lam * m0**2 * q**2)
        np.testing.assert_allclose(tp.smin, smin, rtol=1e-12)
        np.testing.assert_allclose(tp.b_m1, smin * s1, rtol=1e-12)
        np.testing.assert_allclose(tp.b_0, s1 + smin * s2 / s1, rtol=1e-12)
        np.testing.assert_allclose(tp.a1, K / q, rtol=1e-12)
        assert tp.a0 == 0 and tp.bmin == tp.a1
        assert K / q < tp.bopt < 2 * K / q
        assert tp.emin == pytest.approx(tp.bopt * tp.sopt, rel=1e-12)
        with pytest.warns(DeprecationWarning, match=r"use \.bopt"):
            assert tp["Bopt"] == tp.bopt

    def test_one_mode_formulas_refuse_a_spectrum(self):
        h = np.array([0.4, 0.2])
        for f in (
            lambda: nm.bopt(h, h, 0.8, 0.12),
            lambda: nm.three_phase(h, h, 0.8, 0.12),
            lambda: nm.smin(h, 0.8, 0.12),
        ):
            with pytest.raises(ValueError, match="this formula is for one mode; got 2 modes"):
                f()
        assert nm.bmin(h, h, 0.8, 0.12) > 0  # bmin sums over modes

    def test_mccandlish_numbers(self):
        assert nm.b_noise(2.0, 4.0, 12.0) == pytest.approx(3.0)
        assert nm.b_simple(10.0, 4.0) == pytest.approx(2.5)
        assert nm.hyperbolic_data(4.0, 2.0, 5.0) == pytest.approx(10.0)


class TestAgainstBruteForce:
    def test_loss_at_integer_steps(self):
        h, c, eta, B, m0, L_irr = 0.37, 0.9, 1.3, 17.0, 1.7, 0.02
        brute = L_irr + iterate_moments(h, c, eta, B, m0, 200)
        got = nm.mode_loss(np.arange(201.0), h, c, eta, B, m0, L_irr)
        np.testing.assert_allclose(got, brute, rtol=RTOL)

    @pytest.mark.parametrize("eta", [0.5, 1.0 / 0.37, 4.0])  # eta*h < 1, = 1, > 1
    def test_discrete_steps_to_target(self, eta):
        h, c, m0, L_irr, Ls = 0.37, 0.9, 1.7, 0.02, 0.1
        for B in [60.0, 200.0, 1000.0]:
            brute = first_hit(L_irr + iterate_moments(h, c, eta, B, m0, 5000), Ls)
            got = nm.steps_to_target(h, c, eta, B, Ls, m0, L_irr)
            assert got == pytest.approx(brute, rel=RTOL), (eta, B)

    def test_bmin_brute_force(self):
        h, c, eta = np.array([1.0, 0.2]), np.array([1.0, 0.2]), 0.5
        got = nm.bmin(h, c, eta, 0.05)
        brute = brute_bmin(h, c, eta, 0.05, m0=1.0, steps=10_000_000)
        assert got == pytest.approx(brute, rel=1e-6)

    def test_bopt_dense_grid(self):
        h, c, eta, Ls = 0.5, 0.5, 0.5, 0.03
        B = np.geomspace(nm.bmin(h, c, eta, Ls) * 1.0001, 50, 200_001)
        E = B * nm.steps_to_target(h, c, eta, B, Ls, discrete=False)
        assert nm.bopt(h, c, eta, Ls) == pytest.approx(B[np.argmin(E)], rel=1e-4)


class TestErrors:
    def test_unstable_lr(self):
        with pytest.raises(ValueError, match="eta\\*h"):
            nm.loss_floor([1.0, 3.0], [1.0, 1.0], 0.7, 10.0)

    def test_bad_batch(self):
        with pytest.raises(ValueError, match="batch_size"):
            nm.loss_floor([1.0], [1.0], 0.5, -1.0)

    def test_target_below_floor(self):
        with pytest.raises(ValueError, match="floor"):
            nm.steps_to_target(0.5, 0.5, 0.5, 1.0, 0.01)
        assert nm.steps_to_target(0.5, 0.5, 0.5, 1.0, 0.01, unreachable="inf") == np.inf

    def test_target_at_or_below_L_irr(self):
        with pytest.raises(ValueError, match="target"):
            nm.bmin([1.0], [1.0], 0.5, 0.0)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="shape"):
            nm.bmin([1.0, 2.0], [1.0], 0.5, 0.1)


def test_equivalence_numeric():
    out = nm.check_equivalence([1.0, 0.1, 0.01], [1.0, 0.1, 0.01], 0.5, 0.05)
    assert out["rel_diff"] < 1e-3
    assert out["loss_at_budget"] == pytest.approx(0.05, rel=1e-7)


@st.composite
def one_mode(draw):
    """A valid one-mode problem with m0 >= m_inf at every batch used."""
    h = draw(st.floats(0.01, 1.0))
    eta = draw(st.floats(0.05, 1.9)) / h
    c = draw(st.floats(0.01, 10.0))
    m0 = draw(st.floats(0.5, 5.0))
    frac = draw(st.floats(0.05, 0.9))  # target excess as a fraction of the initial excess
    return h, c, eta, m0, frac * 0.5 * h * m0


@settings(max_examples=60, deadline=None)
@given(one_mode())
def test_properties_one_mode(p):
    h, c, eta, m0, Ls = p
    b_min = float(nm.bmin(h, c, eta, Ls))
    B = b_min * np.geomspace(1.001, 1000, 400)
    S_disc = nm.steps_to_target(h, c, eta, B, Ls, m0)
    assert np.all(np.diff(S_disc) <= 0) and S_disc[0] > S_disc[-1], "S(B) must decrease in B"
    # The rest is about the continuous reading, where eta*h = 1 makes S = 0 for every B.
    assume(abs(eta * h - 1) > 1e-3)
    S = nm.steps_to_target(h, c, eta, B, Ls, m0, discrete=False)
    assert np.all(np.diff(S) < 0), "continuous S(B) must decrease in B"
    E = B * S
    k = int(np.argmin(E))
    assert np.all(np.diff(E[: k + 1]) <= 0) and np.all(np.diff(E[k:]) >= 0), "E(B) unimodal"
    b_opt = float(nm.bopt(h, c, eta, Ls, m0))
    assert b_min < b_opt < 2 * b_min
    lower = 0.7 * Ls
    assert nm.bmin(h, c, eta, lower) > b_min
    assert nm.bopt(h, c, eta, lower, m0) > b_opt


def test_the_stationary_moment_is_the_derived_fixed_point():
    """The simulator's plain-numpy m_inf against the sympy derivation's fixed point of the recursion."""
    mode = dv.nqm_mode()
    expr = sp.lambdify([mode.symbols[n] for n in ("h", "c", "eta", "B")], mode.m_inf)
    h, c, B = np.array([0.1, 1.0, 1.9]), np.array([0.5, 2.0, 0.1]), np.array([[1.0], [64.0]])
    got = nm.stationary_moment(h, c, 0.5, B)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, [[expr(hi, ci, 0.5, b) for hi, ci in zip(h, c)] for b in B[:, 0]], rtol=1e-13)
    assert np.all(nm.stationary_moment(h, c, 0.5, np.inf) == 0)
