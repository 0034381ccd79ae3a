"""McCandlish et al. (2018): the classical critical-batch-size law, derived.

Everything here is obtained by sympy from the expected one-step change of
the loss under SGD with learning rate ``eps`` and batch ``B`` (examples):

.. math::

    \\Delta L(\\epsilon) = -\\epsilon |G|^2
        + \\tfrac{\\epsilon^2}{2}\\left(G^\\top H G + \\operatorname{tr}(H\\Sigma)/B\\right)

The law assumes the learning rate is re-optimised for every batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

__all__ = ["McCandlish", "mccandlish"]


@dataclass(frozen=True)
class McCandlish:
    """Derived quantities of the classical law (all sympy expressions).

    Attributes
    ----------
    symbols : dict
        ``eps`` (learning rate), ``B`` (batch, examples), ``G2`` (``|G|^2``),
        ``GHG`` (``G^T H G``), ``trHS`` (``tr(H Sigma)``), ``trS`` (``tr Sigma``),
        ``h`` (isotropic curvature), ``Bn`` (noise scale), ``Smin``, ``Emin``,
        ``S``, ``E``.
    delta_loss : expected one-step loss change as a function of ``eps``.
    eps_opt : the step size minimising ``delta_loss``.
    eps_max : ``eps_opt`` as ``B -> inf``.
    dL_opt : ``delta_loss`` at ``eps_opt`` (negative: the best progress).
    dL_max : ``dL_opt`` as ``B -> inf``.
    B_noise : ``tr(H Sigma) / (G^T H G)``, solved from
        ``eps_opt = eps_max / (1 + B_noise/B)``.
    progress_ratio : ``dL_opt / dL_max`` rewritten with ``B_noise``;
        simplifies to ``1/(1 + B_noise/B)``.
    steps_ratio : ``S/Smin``; ``1 + B_noise/B``.
    data_ratio : ``E/Emin``; ``1 + B/B_noise``.
    hyperbola : ``(S/Smin - 1)(E/Emin - 1)``; simplifies to 1.
    B_crit : ``Emin/Smin``; equals ``B_noise``.
    B_simple : ``B_noise`` for an isotropic Hessian ``H = h I``:
        ``tr(Sigma)/|G|^2``, the cheap estimate.
    E_of_S : the data-vs-steps curve ``E(S) = Emin S / (S - Smin)``, obtained
        by eliminating ``B``.
    """

    symbols: dict
    delta_loss: sp.Expr
    eps_opt: sp.Expr
    eps_max: sp.Expr
    dL_opt: sp.Expr
    dL_max: sp.Expr
    B_noise: sp.Expr
    progress_ratio: sp.Expr
    steps_ratio: sp.Expr
    data_ratio: sp.Expr
    hyperbola: sp.Expr
    B_crit: sp.Expr
    B_simple: sp.Expr
    E_of_S: sp.Expr


@cache
def mccandlish() -> McCandlish:
    """Derive the classical law step by step.

    Returns
    -------
    McCandlish
        Frozen dataclass of sympy expressions; see its attributes.

    Notes
    -----
    Training is read as many small steps, each making the expected progress
    ``-dL_opt(B)``. Reaching a fixed loss takes a fixed total progress, so the
    number of steps scales as ``1/|dL_opt(B)|``; ``Smin`` is its ``B -> inf``
    limit and ``Emin = lim_{B->0} B S``.

    Examples
    --------
    >>> import sympy as sp
    >>> d = mccandlish()
    >>> sp.simplify(d.hyperbola)
    1
    """
    eps, B, G2, GHG, trHS, trS, h, Bn, Smin = sp.symbols(
        "epsilon B G2 GHG trHSigma trSigma h B_noise S_min", positive=True
    )
    delta = -eps * G2 + eps**2 / 2 * (GHG + trHS / B)
    eps_opt = sp.solve(sp.diff(delta, eps), eps)[0]
    eps_max = sp.limit(eps_opt, B, sp.oo)
    dL_opt = sp.simplify(delta.subs(eps, eps_opt))
    dL_max = sp.limit(dL_opt, B, sp.oo)
    # B_noise is defined by eps_opt = eps_max / (1 + B_noise/B).
    B_noise = sp.solve(sp.Eq(eps_opt, eps_max / (1 + Bn / B)), Bn)[0]
    trHS_of_Bn = sp.solve(sp.Eq(B_noise, Bn), trHS)[0]
    progress = sp.simplify((dL_opt / dL_max).subs(trHS, trHS_of_Bn))
    # Steps scale as 1/|progress per step|; Smin is the B -> inf limit.
    steps = Smin * dL_max / dL_opt
    steps_ratio = sp.simplify((steps / sp.limit(steps, B, sp.oo)).subs(trHS, trHS_of_Bn))
    S_expr = Smin * steps_ratio
    E_expr = B * S_expr
    Emin = sp.limit(E_expr, B, 0)
    data_ratio = sp.simplify(E_expr / Emin)
    hyperbola = (steps_ratio - 1) * (data_ratio - 1)
    B_crit = sp.simplify(Emin / Smin)
    B_simple = sp.simplify(B_noise.subs({trHS: h * trS, GHG: h * G2}))
    # Eliminate B between S(B) and E(B) to get E as a function of S.
    S_sym, Emin_sym = sp.symbols("S E_min", positive=True)
    B_of_S = sp.solve(sp.Eq(S_expr, S_sym), B)[0]
    E_of_S = sp.simplify((E_expr.subs(B, B_of_S)).subs(Bn, Emin_sym / Smin))
    syms = dict(eps=eps, B=B, G2=G2, GHG=GHG, trHS=trHS, trS=trS, h=h, Bn=Bn, Smin=Smin, Emin=Emin_sym, S=S_sym)
    return McCandlish(
        syms,
        delta,
        eps_opt,
        eps_max,
        dL_opt,
        dL_max,
        B_noise,
        progress,
        steps_ratio,
        data_ratio,
        hyperbola,
        B_crit,
        B_simple,
        E_of_S,
    )
