"""Several NQM modes: the loss floor, ``Bmin`` and the budget equivalence.

The modes are independent under SGD on the NQM, so the expected loss is
``L_irr`` plus the sum of the single-mode excess losses of
:func:`nqm_mode`. Sums run over ``i = 1..d`` with indexed ``h[i]``, ``c[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .nqm_mode import nqm_mode

__all__ = ["MultiMode", "multimode", "Equivalence", "equivalence"]


@dataclass(frozen=True)
class MultiMode:
    """Multi-mode floor and ``Bmin`` (sympy).

    Attributes
    ----------
    symbols : dict
        ``h``, ``c`` (IndexedBase), ``i``, ``d``, and ``eta``, ``B``,
        ``L_irr``, ``L_star`` shared with :func:`nqm_mode`.
    floor_term : one mode's excess floor ``h_i m_inf_i / 2``.
    floor : ``L_irr + sum_i floor_term`` with ``eta/(2B)`` factored out of
        the sum: ``L_irr + (eta / (2B)) sum_i c_i / (2 - eta h_i)``.
    spectral_sum : the ``Sum`` object in ``floor`` (its sign as sympy wrote it).
    B_min : ``floor(B) = L_star`` solved for ``B`` (examples).
    floor_d1, B_min_d1 : ``floor`` and ``B_min`` at ``d = 1``, rewritten in
        the single-mode symbols; they equal ``nqm_mode().floor``/``B_min``.
    """

    symbols: dict
    floor_term: sp.Expr
    floor: sp.Expr
    spectral_sum: sp.Sum
    B_min: sp.Expr
    floor_d1: sp.Expr
    B_min_d1: sp.Expr


@cache
def multimode() -> MultiMode:
    """Derive the multi-mode floor and ``Bmin`` and reduce them to ``d = 1``.

    Returns
    -------
    MultiMode
    """
    o = nqm_mode()
    s = o.symbols
    i = sp.Symbol("i", integer=True, positive=True)
    d = sp.Symbol("d", integer=True, positive=True)
    h = sp.IndexedBase("h", positive=True)
    c = sp.IndexedBase("c", positive=True)
    term = sp.simplify((s["h"] * o.m_inf / 2).subs({s["h"]: h[i], s["c"]: c[i]}))
    floor = sp.simplify(s["L_irr"] + sp.Sum(term, (i, 1, d)))
    (spectral,) = floor.atoms(sp.Sum)
    B_min = sp.solve(sp.Eq(floor, s["L_star"]), s["B"])[0]
    one = {h[1]: s["h"], c[1]: s["c"]}
    floor_d1 = floor.subs(d, 1).doit().subs(one)
    B_min_d1 = B_min.subs(d, 1).doit().subs(one)
    symbols = dict(h=h, c=c, i=i, d=d, eta=s["eta"], B=s["B"], L_irr=s["L_irr"], L_star=s["L_star"])
    return MultiMode(symbols, term, floor, spectral, B_min, floor_d1, B_min_d1)


@dataclass(frozen=True)
class Equivalence:
    """The data-budget equivalence, stated for the NQM.

    Attributes
    ----------
    symbols : dict
        ``B`` (examples), ``D`` (data budget, examples), plus
        :func:`nqm_mode` symbols.
    loss_at_budget : one mode's expected loss after ``D/B`` steps (continuous
        reading), ``L(B, D) = loss_t(tau = D/B)``.
    statement : the claim in words.
    """

    symbols: dict
    loss_at_budget: sp.Expr
    statement: str


@cache
def equivalence() -> Equivalence:
    """State the target-loss / data-budget equivalence for the NQM.

    Claim. Fix the model (``h``, ``c``, ``m0``, ``L_irr``) and ``eta``, and
    assume every ``m0_i >= m_inf_i`` so each ``L(B, D)`` is non-increasing in
    ``D``. Let ``Bopt(L*)`` minimise data-to-target ``E(B; L*)``, with
    minimum ``Emin(L*)``. Then at the budget ``D = Emin(L*)`` the loss
    ``L(B, D)`` is minimised over ``B`` by ``B = Bopt(L*)`` and its minimum is
    ``L*``.

    Argument. ``L(Bopt, Emin) = L*`` by definition of ``E``. If some ``B'``
    had ``L(B', Emin) < L*``, continuity and monotonicity of ``L(B', .)``
    would let ``B'`` reach ``L*`` with data below ``Emin``, contradicting
    minimality. Hence ``min_B L(B, Emin(L*)) = L*``, attained at ``Bopt``;
    the optimal batch read as a function of data consumed is
    ``Bopt(D) = Bopt(L*(D))`` with ``D = Emin(L*)``. When ``E(B; L*)`` has a
    unique minimiser (proved for one mode in :mod:`.bopt`) the two problems
    pick the same batch. The numeric check is
    :func:`dbs_theory.theory.numeric.check_equivalence`.

    Returns
    -------
    Equivalence
    """
    o = nqm_mode()
    s = o.symbols
    D = sp.Symbol("D", positive=True)
    loss = o.loss_t.subs(s["t"], D / s["B"]).subs(s["a"], o.a)
    statement = (
        "For a fixed model and learning rate, the batch minimising data "
        "to reach L* also minimises loss at the data budget Emin(L*)."
    )
    return Equivalence(dict(s, D=D), loss, statement)
