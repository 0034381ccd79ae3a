"""The paper's three-phase E(S) coefficients, derived for one NQM mode.

The single-mode steps-to-target ``S(B)`` of :func:`nqm_mode` depends on the
batch only through ``m_inf = K / B``. The work is done in reduced symbols

* ``K = B m_inf = eta c / (h (2 - eta h))``  (noise level, examples),
* ``q = 2 (L_star - L_irr) / h``              (the target's moment),
* ``lam = -log a = -2 log|1 - eta h|``        (contraction rate per step),

in which ``S = -log((q - K/B) / (m0 - K/B)) / lam``. Each reduced field is
obtained from :func:`nqm_mode` by substitution, and each coefficient by a
sympy limit, series or derivative. ``to_raw`` maps any field back to the
original symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .nqm_mode import nqm_mode

__all__ = ["ThreePhaseCoefficients", "three_phase_coefficients", "reduced_symbols"]


@dataclass(frozen=True)
class ThreePhaseCoefficients:
    """Three-phase E(S) coefficients for one mode (sympy, reduced symbols).

    Attributes
    ----------
    symbols : dict
        ``K``, ``q``, ``lam``, ``m0``, ``B``, ``x`` (= ``1/B``), ``eps``
        (= ``B - Bmin``).
    definitions : dict
        ``K``, ``q``, ``lam`` in the original :func:`nqm_mode` symbols.
    S : steps to target in reduced symbols.
    E : ``B S``.
    B_min : ``K / q``.
    S_min : ``lim_{B->inf} S = log(m0/q) / lam`` (noise-free descent).
    s1, s2 : coefficients of ``S = S_min + s1/B + s2/B^2 + O(B^-3)``.
    B_m1 : paper's ``B_{-1}`` in ``E ~ B_{-1}/(S - S_min) + B_0`` as
        ``B -> inf``; ``lim (S - S_min) E``.
    B_0 : paper's ``B_0``; ``lim (E - B_{-1}/(S - S_min))``.
    dE_dS : parametric slope ``B + S / (dS/dB)``.
    A1 : ``lim_{B->Bmin+} dE/dS`` (i.e. ``S -> inf``); equals ``B_min``.
    A0 : ``lim_{B->Bmin+} (E - A1 S)``; equals 0. The exact asymptote of one
        NQM mode passes through the origin, approached exponentially fast
        in ``S`` (``E - Bmin S ~ S a^S``). A free intercept fitted over a
        finite range of ``S`` absorbs the curvature left over there, so the
        paper's ``A0`` is a finite-range effective value, not this limit.
    C : ``(1/2) d^2E/dS^2 = E''(B) / (2 S'(B)^2)`` at any stationary point of
        ``E(B)``; evaluate at ``B_opt`` for the quadratic phase.
    """

    symbols: dict
    definitions: dict
    S: sp.Expr
    E: sp.Expr
    B_min: sp.Expr
    S_min: sp.Expr
    s1: sp.Expr
    s2: sp.Expr
    B_m1: sp.Expr
    B_0: sp.Expr
    dE_dS: sp.Expr
    A1: sp.Expr
    A0: sp.Expr
    C: sp.Expr

    def to_raw(self, expr: sp.Expr) -> sp.Expr:
        """Rewrite ``expr`` from reduced symbols into :func:`nqm_mode` symbols."""
        sy = self.symbols
        return expr.subs({sy[k]: v for k, v in self.definitions.items()})


@cache
def reduced_symbols():
    """Reduced symbols and their definitions in the original symbols.

    Returns
    -------
    (dict, dict)
        ``symbols`` (``K``, ``q``, ``lam``, ``m0``, ``B``) and ``definitions``
        (``K``, ``q``, ``lam`` as expressions of ``nqm_mode`` symbols).
    """
    d = nqm_mode()
    o = d.symbols
    K, q, lam = sp.symbols("K q lambda", positive=True)
    definitions = {
        "K": sp.simplify(o["B"] * d.m_inf),
        "q": 2 * (o["L_star"] - o["L_irr"]) / o["h"],
        "lam": -sp.log(d.a),
    }
    return dict(K=K, q=q, lam=lam, m0=o["m0"], B=o["B"]), definitions


def _reduce(expr):
    """Substitute the reduced symbols into a ``nqm_mode`` expression."""
    d = nqm_mode()
    o = d.symbols
    sy, defs = reduced_symbols()
    c_of_K = sp.solve(sp.Eq(sy["K"], defs["K"]), o["c"])[0]
    Ls_of_q = sp.solve(sp.Eq(sy["q"], defs["q"]), o["L_star"])[0]
    out = expr.subs(sp.log(o["a"]), -sy["lam"]).subs(o["a"], d.a)
    return sp.simplify(out.subs({o["c"]: c_of_K, o["L_star"]: Ls_of_q}))


@cache
def three_phase_coefficients() -> ThreePhaseCoefficients:
    """Derive ``S_min``, ``B_{-1}``, ``B_0``, ``A1``, ``A0`` and ``C`` for one mode.

    Returns
    -------
    ThreePhaseCoefficients

    Examples
    --------
    >>> import sympy as sp
    >>> tp = three_phase_coefficients()
    >>> sp.simplify(tp.A1 - tp.B_min)
    0
    """
    sy, defs = reduced_symbols()
    K, q, lam, m0, B = (sy[k] for k in ("K", "q", "lam", "m0", "B"))
    x, eps = sp.symbols("x epsilon", positive=True)
    S = _reduce(nqm_mode().S)
    E = B * S
    B_min = sp.simplify(_reduce(nqm_mode().B_min))
    S_x = S.subs(B, 1 / x)
    S_min = sp.simplify(sp.limit(S_x, x, 0))
    series = sp.series(S_x, x, 0, 3).removeO()
    s1, s2 = sp.simplify(series.coeff(x, 1)), sp.simplify(series.coeff(x, 2))
    S_trunc = S_min + s1 * x + s2 * x**2
    # expand_log keeps (m0/q)**p out of the numeric exports (it overflows).
    tidy = lambda e: sp.factor(sp.expand_log(sp.simplify(e), force=True))
    B_m1 = tidy(sp.limit(S_trunc / x * (S_trunc - S_min), x, 0))
    B_0 = tidy(sp.limit(S_trunc / x - B_m1 / (S_trunc - S_min), x, 0))
    dS = sp.diff(S, B)
    dE_dS = B + S / dS
    A1 = sp.simplify(sp.limit(dE_dS.subs(B, B_min + eps), eps, 0, "+"))
    A0 = sp.limit((E - A1 * S).subs(B, B_min + eps), eps, 0, "+")
    C = sp.simplify(sp.diff(E, B, 2) / (2 * dS**2))
    symbols = dict(sy, x=x, eps=eps)
    return ThreePhaseCoefficients(symbols, defs, S, E, B_min, S_min, s1, s2, B_m1, B_0, dE_dS, A1, A0, C)
