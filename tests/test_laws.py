"""The law registry: each record's evaluation, coordinates and saved parameters agree with its class."""

import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbs_theory.theory.es_laws import HyperbolicES, ThreePhaseES, c1_coefficients
from dbs_theory.errors import UserError
from dbs_theory.theory.laws import LAWS, c1_pieces, law_from_params, law_named

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_c1_coefficients_match_value_and_slope_at_both_boundaries():
    """Hand check: the inverse and linear pieces meet the parabola C (S - Sopt)^2 + Emin with equal value and
    slope at S1 and S2 (finite differences, not the formulas under test)."""
    smin, s1, sopt, s2, emin, c = 0.5, 2.0, 5.0, 11.0, 3.0, 0.25
    b_m1, b_0, a1, a0 = c1_coefficients(smin, s1, sopt, s2, emin, c)
    quad = lambda S: c * (S - sopt) ** 2 + emin
    inv = lambda S: b_m1 / (S - smin) + b_0
    lin = lambda S: a1 * S + a0
    h = 1e-6
    for f, g, at in ((inv, quad, s1), (lin, quad, s2)):
        assert f(at) == pytest.approx(g(at), rel=1e-12)
        assert (f(at + h) - f(at - h)) / (2 * h) == pytest.approx((g(at + h) - g(at - h)) / (2 * h), rel=1e-6)


def test_the_short_intercept_of_the_generated_jacobian_is_the_c1_intercept():
    """The generated Jacobian writes A0 as Emin (1 - u); that is the C1 algebra's A0 under S2's map."""
    sp = pytest.importorskip("sympy")
    x = sp.symbols("p0:6", real=True)
    smax = sp.Symbol("s_max", positive=True)
    sig = lambda z: 1 / (1 + sp.exp(-z))
    smin = smax * sig(x[0])
    s1, emin, c, u = smin + sp.exp(x[1]), sp.exp(x[4]), sp.exp(x[5]), sig(x[3])
    sopt = s1 + sp.exp(x[2])
    a0 = c1_coefficients(smin, s1, sopt, sp.sqrt(sopt**2 + u * emin / c), emin, c)[3]
    assert sp.simplify(sp.expand(a0) - emin * (1 - u)) == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=10, max_size=10), st.floats(0.05, 5.0))
def test_each_law_evaluates_its_pieces_as_its_class_does(x, smax):
    S = np.geomspace(0.01, 50.0, 40)
    for spec in LAWS.values():
        p = spec.pieces(np.array(x[: spec.n_params]), smax)
        law = spec.build(p)
        np.testing.assert_array_equal(spec.data(p, S), law(S))
        again = law_from_params(spec.name, law.params())
        np.testing.assert_allclose(again(S), law(S), rtol=1e-9)


def test_the_c1_map_keeps_bmin_at_most_bopt():
    for x in np.random.default_rng(0).normal(0, 2, (200, 6)):
        law = ThreePhaseES.from_pieces(c1_pieces(x, 1.0), True)
        assert law.bmin <= law.bopt * (1 + 1e-9)


def test_rescaling_a_law_scales_its_curve():
    S = np.geomspace(1, 100, 30)
    for law in (ThreePhaseES.c1(0.5, 2.0, 5.0, 11.0, 3.0, 0.25), HyperbolicES(2.0, 7.0)):
        big = law.rescaled(10.0, 1000.0)
        np.testing.assert_allclose(big(10.0 * S), 1000.0 * law(S), rtol=1e-12)


def test_an_unknown_law_is_one_line_naming_it():
    with pytest.raises(UserError, match="unknown law 'cubic'; choose one of three_phase, three_phase_free"):
        law_named("cubic")


def test_no_module_tests_a_law_by_its_name():
    """Law-specific code reads the record (:data:`LAWS`), not ``law == "hyperbolic"`` (``dbs derive``'s
    derivation names are another registry)."""
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in (ROOT / "dbs_theory").rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "law" in line and any(f'== "{name}"' in line or f"== '{name}'" in line for name in LAWS)
    ]
    assert not hits, hits
