"""The single-mode optimal batch ``Bopt``: first-order condition and a proof.

``E(B) = B S(B)`` (examples) is minimised where ``dE/dB = S + B dS/dB = 0``.
In the reduced variables

* ``r = q / m0 = (L* - L_irr) / (L0 - L_irr)`` in ``(0, 1)``: the fraction of
  the initial excess loss still allowed at the target;
* ``v = m_inf / m0 = K / (B m0)`` in ``(0, r)``: the floor's moment relative
  to the start, so ``B = K / (m0 v)`` and ``Bmin = K / q`` is ``v = r``,

``E = (K / (lam m0)) F(v; r)`` with ``F = -log((r - v)/(1 - v)) / v``.

Proof that ``Bopt`` is unique, lies in ``(Bmin, 2 Bmin)`` and grows as ``L*``
falls (one mode, continuous-``t`` reading). Every step is a sympy identity
held in :class:`BoptCondition` and checked in the tests:

1. ``G = v^2 dF/dv = v (1-r)/((r-v)(1-v)) + log((r-v)/(1-v))``.
2. ``dG/dv = v (1-r) (1+r-2v) / ((r-v)^2 (1-v)^2) > 0`` on ``0 < v < r < 1``,
   and ``G(0+) = log r < 0``, ``G(r-) = +inf``: exactly one root ``v*``, a
   minimum of ``F``. So ``E(B)`` is unimodal.
3. ``G(r/2) = 1 - w + log w`` with ``w = r/(2-r)`` in ``(0, 1)``, which is
   negative (``log w < w - 1``). So ``v* > r/2``, i.e.
   ``Bopt / Bmin = r / v* < 2``.
4. By implicit differentiation, ``dv*/dr = (1-v)^2 (2v - r) / (v (1-r) (1+r-2v))``,
   positive because ``v* > r/2``. Lowering ``L*`` lowers ``r`` and so ``v*``,
   and ``Bopt = K / (m0 v*)`` rises: ``dBopt/dL* < 0``.

This is a theorem for ONE mode only. With several modes ``Bopt`` need not be
monotone in ``L*`` (docs/conventions.md keeps a verified three-mode
counterexample).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .three_phase import three_phase_coefficients

__all__ = ["BoptCondition", "bopt_condition"]


@dataclass(frozen=True)
class BoptCondition:
    """First-order condition for ``Bopt`` and the monotonicity proof.

    Attributes
    ----------
    symbols : dict
        ``r``, ``v``, ``w`` plus the reduced symbols of
        :func:`three_phase_coefficients`.
    foc : ``Eq(dE/dB, 0)`` in reduced symbols (``K``, ``q``, ``lam``, ``m0``, ``B``).
    F : reduced objective ``E lam m0 / K`` as a function of ``(v, r)``.
    G : ``v^2 dF/dv``; ``G = 0`` is the reduced first-order condition.
    dG_dv : factored; positive on the domain.
    G_at_half : ``G(v = r/2)`` rewritten with ``w = r/(2 - r)``: ``1 - w + log w``.
    dv_dr : implicit derivative ``-G_r / G_v``, factored.
    bopt_over_bmin : ``r / v``, the ratio ``Bopt/Bmin`` at the root.
    bopt : ``K / (m0 v)``, ``Bopt`` in examples at the root ``v``.
    """

    symbols: dict
    foc: sp.Eq
    F: sp.Expr
    G: sp.Expr
    dG_dv: sp.Expr
    G_at_half: sp.Expr
    dv_dr: sp.Expr
    bopt_over_bmin: sp.Expr
    bopt: sp.Expr


@cache
def bopt_condition() -> BoptCondition:
    """Derive the ``Bopt`` condition for one mode and its monotonicity.

    Returns
    -------
    BoptCondition

    Examples
    --------
    >>> import sympy as sp
    >>> bc = bopt_condition()
    >>> sp.factor(bc.G_at_half)  # 1 - w + log(w) < 0 for 0 < w < 1
    -w + log(w) + 1
    """
    tp = three_phase_coefficients()
    sy = tp.symbols
    K, q, lam, m0, B = (sy[k] for k in ("K", "q", "lam", "m0", "B"))
    r, v, w = sp.symbols("r v w", positive=True)
    foc = sp.Eq(sp.diff(tp.E, B), 0)
    reduce = {B: K / (m0 * v), q: r * m0}
    F = sp.simplify(sp.expand_log(tp.E.subs(reduce) * lam * m0 / K, force=True))
    G = sp.simplify(v**2 * sp.diff(F, v))
    dG_dv = sp.factor(sp.simplify(sp.diff(G, v)))
    r_of_w = sp.solve(sp.Eq(w, r / (2 - r)), r)[0]
    G_half = sp.simplify(sp.simplify(G.subs(v, r / 2)).subs(r, r_of_w))
    dv_dr = sp.factor(sp.simplify(-sp.diff(G, r) / sp.diff(G, v)))
    ratio = sp.simplify((K / (m0 * v)) / tp.B_min.subs(q, r * m0))
    symbols = dict(sy, r=r, v=v, w=w)
    return BoptCondition(symbols, foc, F, G, dG_dv, G_half, dv_dr, ratio, K / (m0 * v))
