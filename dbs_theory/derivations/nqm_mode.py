"""One mode of the noisy quadratic model under a fixed learning rate.

The WSD stable phase holds the learning rate ``eta`` fixed. For one NQM
mode with curvature ``h``, per-example gradient-noise variance ``c``,
initial second moment ``m0`` and irreducible loss ``L_irr``, this module
derives (with sympy, from the SGD step itself) the moment recursion, its
closed form, the loss floor, ``Bmin`` and steps-to-target ``S(B; L*)``.

Batch sizes ``B`` are in examples; ``S`` is in optimizer steps; data
``E = B S`` is in examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

__all__ = ["NQMMode", "nqm_mode"]


@dataclass(frozen=True)
class NQMMode:
    """Derived single-mode NQM quantities (sympy expressions).

    Attributes
    ----------
    symbols : dict
        ``h``, ``c``, ``eta``, ``B``, ``m0``, ``L_irr``, ``L_star``, ``t``
        (integer steps), ``tau`` (real steps), ``M`` (a moment value),
        ``a`` (the contraction factor as a free symbol).
    recursion : ``E[theta'^2]`` in terms of ``M = E[theta^2]``: ``a M + eta^2 c / B``.
    a : contraction factor ``(1 - eta h)^2``, the coefficient of ``M``.
    noise_term : the ``M``-free part ``eta^2 c / B``.
    m_inf : fixed point of the recursion, ``eta c / (B h (2 - eta h))``.
    m_t : closed form ``m(t)`` with ``m(0) = m0``, written with ``a``
        as a symbol (``a**t``); substitute ``a`` for the explicit form.
    m_t_check : ``m_t(t+1) - recursion(m_t(t))``; simplifies to 0.
    loss_t : ``L_irr + h m_t / 2``.
    floor : ``lim_{t->inf} loss_t`` (for ``0 < a < 1``), ``L_irr + h m_inf / 2``.
    B_min : the batch at which the floor equals ``L_star``.
    S : steps to target in the continuous-``t`` reading, solved from
        ``loss_t(tau) = L_star``; valid on ``domain``.
    E : ``B * S``, data to target (examples).
    domain : where ``S`` is the first hitting time: ``m_inf < q < m0`` with
        ``q = 2 (L_star - L_irr) / h``. Then the loss falls monotonically
        from above the target to a floor below it. If ``m0 <= q`` the
        target is met at ``S = 0``; if ``q <= m_inf`` (and ``m0 > q``) it is
        never met (``S = inf``). If ``m0 < m_inf`` the single-mode loss
        *rises* monotonically, so it is met at 0 or never.
    """

    symbols: dict
    recursion: sp.Expr
    a: sp.Expr
    noise_term: sp.Expr
    m_inf: sp.Expr
    m_t: sp.Expr
    m_t_check: sp.Expr
    loss_t: sp.Expr
    floor: sp.Expr
    B_min: sp.Expr
    S: sp.Expr
    E: sp.Expr
    domain: sp.Boolean


def _moment_recursion(h, c, eta, B, M):
    """E[theta'^2] after one SGD step, from theta' = theta - eta (h theta + xi)."""
    theta, xi = sp.symbols("theta xi", real=True)
    square = sp.Poly(sp.expand((theta - eta * (h * theta + xi)) ** 2), theta, xi)
    # theta and xi are independent; E[xi] = 0, E[xi^2] = c/B, E[theta^2] = M.
    moments = {(2, 0): M, (1, 1): 0, (0, 2): c / B}
    return sp.collect(sp.expand(sum(coef * moments[mon] for mon, coef in square.terms())), M)


@cache
def nqm_mode() -> NQMMode:
    """Derive the single-mode NQM dynamics at a fixed learning rate.

    Returns
    -------
    NQMMode
        Frozen dataclass of sympy expressions; see its attributes.

    Examples
    --------
    >>> import sympy as sp
    >>> d = nqm_mode()
    >>> sp.simplify(d.m_t_check)
    0
    """
    h, c, eta, B, m0, L_irr, L_star, a_sym = sp.symbols("h c eta B m_0 L_irr L_star a", positive=True)
    M = sp.Symbol("M", positive=True)
    t = sp.Symbol("t", integer=True, nonnegative=True)
    tau = sp.Symbol("tau", positive=True)
    rec = _moment_recursion(h, c, eta, B, M)
    a = sp.factor(rec.coeff(M, 1))
    noise = rec.coeff(M, 0)
    m_inf = sp.simplify(sp.solve(sp.Eq(M, rec), M)[0])
    m = sp.Function("m")
    m_t = sp.rsolve(m(t + 1) - (a_sym * m(t) + noise), m(t), {m(0): m0})
    m_t = sp.collect(sp.simplify(m_t), a_sym**t)
    check = m_t.subs(t, t + 1) - (a * M + noise).subs(M, m_t).subs(a, a_sym)
    loss_t = L_irr + h * m_t / 2
    # For 0 < a < 1 the transient a**t vanishes as t -> inf.
    floor = sp.simplify(loss_t.subs(a_sym**t, 0).subs(a_sym, a))
    B_min = sp.solve(sp.Eq(floor, L_star), B)[0]
    S = sp.solve(sp.Eq(loss_t.subs(t, tau), L_star), tau)[0]
    q = 2 * (L_star - L_irr) / h
    domain = sp.And(m_inf < q, q < m0)
    syms = dict(h=h, c=c, eta=eta, B=B, m0=m0, L_irr=L_irr, L_star=L_star, t=t, tau=tau, M=M, a=a_sym)
    return NQMMode(syms, rec, a, noise, m_inf, m_t, check, loss_t, floor, B_min, S, B * S, domain)
