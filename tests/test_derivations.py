"""Layer 1: symbolic identities of the derivations (simplify(a - b) == 0)."""

import sympy as sp

from dbs_theory import derivations as dv


def zero(expr):
    return sp.simplify(expr) == 0


class TestMcCandlish:
    d = dv.mccandlish()
    s = d.symbols

    def test_hyperbola_is_one(self):
        assert sp.simplify(self.d.hyperbola) == 1

    def test_ratios(self):
        B, Bn = self.s["B"], self.s["Bn"]
        assert zero(self.d.steps_ratio - (1 + Bn / B))
        assert zero(self.d.data_ratio - (1 + B / Bn))
        assert zero(self.d.progress_ratio - 1 / (1 + Bn / B))

    def test_noise_scales(self):
        s = self.s
        assert zero(self.d.B_noise - s["trHS"] / s["GHG"])
        assert zero(self.d.B_crit - s["Bn"])
        assert zero(self.d.B_simple - s["trS"] / s["G2"])

    def test_eps_opt_is_stationary_minimum(self):
        eps = self.s["eps"]
        assert zero(sp.diff(self.d.delta_loss, eps).subs(eps, self.d.eps_opt))
        assert sp.diff(self.d.delta_loss, eps, 2).is_positive

    def test_E_of_S_is_hyperbola(self):
        s = self.s
        ratio_S = s["S"] / s["Smin"]
        ratio_E = self.d.E_of_S / s["Emin"]
        assert sp.simplify((ratio_S - 1) * (ratio_E - 1)) == 1


class TestNQMMode:
    d = dv.nqm_mode()
    s = d.symbols

    def test_recursion_and_fixed_point(self):
        s = self.s
        assert zero(self.d.a - (1 - s["eta"] * s["h"]) ** 2)
        assert zero(self.d.m_inf - s["eta"] * s["c"] / (s["B"] * s["h"] * (2 - s["eta"] * s["h"])))
        assert zero(self.d.recursion.subs(s["M"], self.d.m_inf) - self.d.m_inf)

    def test_closed_form_solves_recursion(self):
        s = self.s
        assert zero(self.d.m_t_check)
        assert zero(self.d.m_t.subs(s["t"], 0) - s["m0"])

    def test_floor_and_bmin(self):
        s = self.s
        floor_hand = s["L_irr"] + s["eta"] * s["c"] / (2 * s["B"] * (2 - s["eta"] * s["h"]))
        assert zero(self.d.floor - floor_hand)
        assert zero(self.d.floor.subs(s["B"], self.d.B_min) - s["L_star"])

    def test_S_hits_target(self):
        s = self.s
        hit = self.d.loss_t.subs(s["t"], self.d.S)
        assert zero(hit - s["L_star"])


class TestThreePhase:
    tp = dv.three_phase_coefficients()
    s = tp.symbols

    def test_A1_equals_bmin_as_limit_of_slope(self):
        assert zero(self.tp.A1 - self.tp.B_min)
        # the slope is B + S/(dS/dB), not E/S
        B = self.s["B"]
        assert zero(self.tp.dE_dS - (B + self.tp.S / sp.diff(self.tp.S, B)))

    def test_A0_is_zero(self):
        assert self.tp.A0 == 0

    def test_inverse_phase_coefficients(self):
        tp, s = self.tp, self.s
        assert zero(tp.S_min - sp.log(s["m0"] / s["q"]) / s["lam"])
        assert zero(tp.B_m1 - tp.S_min * tp.s1)
        assert zero(tp.B_0 - (tp.s1 + tp.S_min * tp.s2 / tp.s1))

    def test_reduced_S_matches_raw(self):
        raw = dv.nqm_mode()
        o = raw.symbols
        vals = {
            o["h"]: sp.Rational(3, 10),
            o["c"]: sp.Rational(1, 2),
            o["eta"]: sp.Rational(1, 2),
            o["B"]: 7,
            o["m0"]: 1,
            o["L_irr"]: sp.Rational(1, 10),
            o["L_star"]: sp.Rational(1, 8),
        }
        lhs = self.tp.to_raw(self.tp.S).subs(vals)
        rhs = raw.S.subs(o["a"], raw.a).subs(vals)
        assert abs(float(lhs - rhs)) < 1e-12

    def test_C_is_parametric_second_derivative_at_stationary_point(self):
        tp, B = self.tp, self.s["B"]
        dS, dE = sp.diff(tp.S, B), sp.diff(tp.E, B)
        full = sp.diff(dE / dS, B) / dS  # d2E/dS2 along the curve B -> (S, E)
        # full - 2C is proportional to dE/dB, so the two agree at Bopt.
        assert zero(full - 2 * tp.C + dE * sp.diff(dS, B) / dS**3)


class TestBoptProof:
    bc = dv.bopt_condition()
    s = bc.symbols

    def test_G_is_scaled_derivative(self):
        v, r = self.s["v"], self.s["r"]
        F_hand = -sp.log((r - v) / (1 - v)) / v
        assert zero(sp.expand_log(self.bc.F - F_hand, force=True))
        G_hand = v * (1 - r) / ((r - v) * (1 - v)) + sp.log((r - v) / (1 - v))
        assert zero(sp.expand_log(self.bc.G - G_hand, force=True))

    def test_dG_dv_positive_factorisation(self):
        v, r = self.s["v"], self.s["r"]
        assert zero(self.bc.dG_dv - v * (1 - r) * (1 + r - 2 * v) / ((r - v) ** 2 * (1 - v) ** 2))

    def test_G_at_half_is_negative(self):
        w = self.s["w"]
        assert zero(self.bc.G_at_half - (1 - w + sp.log(w)))
        # 1 - w + log w: zero at w=1 and increasing on (0, 1), so negative there.
        g = 1 - w + sp.log(w)
        assert g.subs(w, 1) == 0
        assert zero(sp.diff(g, w) - (1 - w) / w)

    def test_implicit_derivative(self):
        v, r = self.s["v"], self.s["r"]
        assert zero(self.bc.dv_dr - (1 - v) ** 2 * (2 * v - r) / (v * (1 - r) * (1 + r - 2 * v)))

    def test_foc_matches_reduced(self):
        bc, s = self.bc, self.s
        lhs = bc.foc.lhs.subs({s["B"]: s["K"] / (s["m0"] * s["v"]), s["q"]: s["r"] * s["m0"]})
        # dE/dB = -(K/(lam m0)) F'(v) * m0 v^2 / K = -G / lam
        assert zero(sp.expand_log(lhs + bc.G / s["lam"], force=True))


class TestMultiMode:
    mm = dv.multimode()

    def test_reduces_to_one_mode(self):
        o = dv.nqm_mode()
        assert zero(self.mm.floor_d1 - o.floor)
        assert zero(self.mm.B_min_d1 - o.B_min)

    def test_two_modes_explicit(self):
        s = self.mm.symbols
        h, c, eta, B = s["h"], s["c"], s["eta"], s["B"]
        two = self.mm.floor.subs(s["d"], 2).doit()
        hand = s["L_irr"] + eta / (2 * B) * sum(c[i] / (2 - eta * h[i]) for i in (1, 2))
        assert zero(two - hand)


def test_equivalence_loss_at_budget_is_loss_t():
    e, o = dv.equivalence(), dv.nqm_mode()
    s = e.symbols
    assert zero(e.loss_at_budget.subs(s["D"], s["B"] * 3) - o.loss_t.subs(s["t"], 3).subs(s["a"], o.a))
