"""Analytic Jacobian of the C1 three-phase law in the fitter's coordinates (via sympy).

The fitter (:mod:`dbs_theory.fit`) maps six unconstrained numbers ``x`` to
the law: ``smin = smax sigma(x0)``, ``s1 = smin + e^x1``, ``sopt = s1 + e^x2``,
``emin = e^x4``, ``c = e^x5``, ``s2 = sqrt(sopt^2 + sigma(x3) emin / c)``.
This module differentiates each phase's ``log E`` with respect to ``x``
symbolically and lambdifies the result, so each least-squares iteration
costs one model evaluation instead of seven.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

__all__ = ["c1_log_model_and_jacobian"]


@cache
def _compiled():
    x = sp.symbols("x0:6", real=True)
    S, smax = sp.symbols("S s_max", positive=True)
    sig = lambda z: 1 / (1 + sp.exp(-z))
    smin = smax * sig(x[0])
    g1, g2 = sp.exp(x[1]), sp.exp(x[2])
    s1 = smin + g1
    sopt = s1 + g2
    emin, c = sp.exp(x[4]), sp.exp(x[5])
    u = sig(x[3])
    s2 = sp.sqrt(sopt**2 + u * emin / c)
    b_m1 = -2 * c * (s1 - sopt) * (s1 - smin) ** 2
    pieces = {
        "inverse": b_m1 / (S - smin) + c * (s1 - sopt) ** 2 + emin - b_m1 / (s1 - smin),
        "quadratic": c * (S - sopt) ** 2 + emin,
        "linear": 2 * c * (s2 - sopt) * S + emin * (1 - u),
    }
    out = {}
    for name, E in pieces.items():
        logE = sp.log(E)
        grads = [sp.diff(logE, xi) for xi in x]
        out[name] = sp.lambdify((x, S, smax), [logE, *grads], modules="numpy", cse=True)
    bounds = sp.lambdify((x, smax), [s1, s2], modules="numpy", cse=True)
    return out, bounds


def c1_log_model_and_jacobian(x, S, smax):
    """``log E(S)`` and ``d log E / dx`` (shape (n, 6)) for the C1 law at ``x``."""
    funcs, bounds = _compiled()
    s1, s2 = bounds(x, smax)
    logE = np.empty(S.size)
    jac = np.empty((S.size, 6))
    for name, mask in (("inverse", S < s1), ("quadratic", (S >= s1) & (S <= s2)), ("linear", S > s2)):
        if mask.any():
            vals = funcs[name](x, S[mask], smax)
            logE[mask] = vals[0]
            for j in range(6):
                jac[mask, j] = vals[j + 1]
    return logE, jac
