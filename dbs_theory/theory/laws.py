"""The registry of E(S) laws: one :class:`Law` record per law, keyed by its identifier.

A record holds everything code needs to know about a law without testing its
name: the class and its saved parameters, the number of free parameters, the
fitter's coordinates (a map from unconstrained numbers ``x`` to the law's
pieces), deterministic starting points, the analytic Jacobian where one is
generated, and which batch sizes the law defines. :data:`LAWS` maps
identifiers to records; :func:`law_named` refuses an unknown one in one line.

The fitter works in scaled units (steps and data divided by the points'
medians): ``smax`` below is the smallest scaled step count of the points,
so ``0 <= Smin < smax`` holds by construction, as do ``Smin < S1 < Sopt < S2``
and ``Emin, C > 0``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._es_jacobian import c1_log_model_and_jacobian
from ..errors import UserError
from .es_laws import HyperbolicES, ThreePhaseES, c1_coefficients, hyperbolic_data, three_phase_data

__all__ = ["Law", "LAWS", "law_named", "law_from_params", "fraction", "logit", "c1_pieces"]


def fraction(z):
    """Logistic map of an unconstrained number into (0, 1): Smin as a fraction of the smallest S."""
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def logit(f):
    """The inverse of :func:`fraction` (``f`` clipped into (1e-9, 1 - 1e-9))."""
    f = min(max(f, 1e-9), 1 - 1e-9)
    return math.log(f / (1 - f))


def _gap(z):
    """A positive gap; floored so the ordering survives rounding (units: median S = 1)."""
    return max(math.exp(z), 1e-9)


def c1_pieces(x, smax):
    """The C1 law's pieces from ``x = (Smin fraction, log(S1 - Smin), log(Sopt - S1), logit u, log Emin, log C)``.

    ``S2 = sqrt(Sopt^2 + u Emin/C)`` with ``u`` in (0, 1) keeps ``A0 = Emin - C (S2^2 - Sopt^2) >= 0``, which is
    ``Bmin = A1 <= Emin/Sopt = Bopt`` (a batch that reaches the target is at least Bmin).
    """
    smin = smax * fraction(x[0])
    s1 = smin + _gap(x[1])
    sopt = s1 + _gap(x[2])
    emin, c = math.exp(x[4]), math.exp(x[5])
    s2 = max(math.sqrt(sopt * sopt + fraction(x[3]) * emin / c), sopt * (1 + 1e-12) + 1e-12)
    return (smin, s1, sopt, s2, emin, c, *c1_coefficients(smin, s1, sopt, s2, emin, c))


def _free_pieces(x, smax):
    smin = smax * fraction(x[0])
    s1 = smin + _gap(x[1])
    sopt = s1 + _gap(x[2])
    s2 = sopt + _gap(x[3])
    return (smin, s1, sopt, s2, math.exp(x[4]), math.exp(x[5]), math.exp(x[6]), x[7], math.exp(x[8]), x[9])


def _hyperbolic_pieces(x, smax):
    return (max(smax * fraction(x[0]), 1e-300), math.exp(x[1]))


def _c1_x(law, smax):
    """``x`` of a C1 law (the inverse of :func:`c1_pieces`)."""
    u = law.c * (law.s2**2 - law.sopt**2) / law.emin
    return np.array(
        [
            logit(law.smin / smax),
            math.log(law.s1 - law.smin),
            math.log(law.sopt - law.s1),
            logit(u),
            math.log(law.emin),
            math.log(law.c),
        ]
    )


def _free_tail(law):
    """The free form's four extra coordinates of a law's inverse and linear pieces."""
    return [math.log(max(law.b_m1, 1e-300)), law.b_0, math.log(max(law.a1, 1e-300)), law.a0]


def _three_phase_starts(S, E, free=False):
    """A deterministic grid of C1 laws built from the data's shape (scaled ``S`` sorted, ``E``), as ``x``."""
    smax = S.min()
    k = int(np.argmin(E))
    sopt, emin = S[k], E[k]
    tail = max((E[-1] - E[-2]) / max(S[-1] - S[-2], 1e-12), 1e-3 * emin / sopt) if S.size > 1 else 1.0
    starts = []
    for f, p1, m2 in itertools.product((0.3, 0.8, 0.97), (0.3, 0.7), (1.3, 2.0, 4.0)):
        smin = f * smax
        s_opt = max(sopt, smin * 1.02 + 1e-9)
        s1 = smin + (s_opt - smin) * p1
        s2 = s_opt * m2
        c = max(tail / (2 * (s2 - s_opt)), 1e-12)
        c = min(c, 0.9 * emin / (s2**2 - s_opt**2))  # start inside A0 >= 0
        law = ThreePhaseES.c1(smin, s1, s_opt, s2, emin, c)
        x = _c1_x(law, smax)
        if free:
            x = np.concatenate([x, [math.log(max(law.b_m1, 1e-12)), law.b_0, math.log(max(law.a1, 1e-12)), law.a0]])
        starts.append(x)
    return starts


def _hyperbolic_starts(S, E):
    return [np.array([logit(f), math.log(E.min() * g)]) for f in (0.2, 0.6, 0.95) for g in (0.5, 0.9)]


def _free_from_c1(xc, smax):
    """The free form's ``x`` at a C1 optimum ``xc`` (the free form contains the C1 one)."""
    c1 = ThreePhaseES.from_pieces(c1_pieces(xc, smax), True)
    return np.concatenate([[xc[0], xc[1], xc[2], math.log(c1.s2 - c1.sopt), xc[4], xc[5]], _free_tail(c1)])


@dataclass(frozen=True)
class Law:
    """One E(S) law, as the fitter, the tables and the readers of fit.json use it.

    Attributes
    ----------
    name : str              Identifier (fit.json's ``laws`` keys, ``dbs fit --law``).
    n_params : int          Free parameters.
    build : callable        ``pieces -> law`` (the class, in the pieces' units).
    from_params : callable  ``params dict -> law`` (fit.json's saved ``params()``).
    data : callable         ``(pieces, S) -> E``: the law's one evaluation.
    pieces : callable       ``(x, smax) -> pieces``: the fitter's coordinates.
    starts : callable       ``(S, E) -> [x, ...]``: deterministic starts (scaled, sorted points).
    jacobian : callable     ``(x, S, smax) -> (log E, d log E/dx)``, or None (finite differences).
    ridge : bool            Pull towards the first start on flat valleys (laws with phases).
    nests : str             A law this one contains, whose optimum seeds its fit ('' for none), and
    embed : callable        ``(x_nested, smax) -> x`` of this law at the nested law's optimum.
    batches : tuple         The batch sizes the law defines: ``("bmin", "bopt")`` or ``("b_crit",)``.
    """

    name: str
    n_params: int
    build: Callable
    from_params: Callable
    data: Callable
    pieces: Callable
    starts: Callable
    jacobian: Callable | None = None
    ridge: bool = False
    nests: str = ""
    embed: Callable | None = None
    batches: tuple = ("bmin", "bopt")

    @property
    def defines_bopt(self) -> bool:
        """Whether the law has a data-optimal batch (the hyperbola has none)."""
        return "bopt" in self.batches


LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Law(
            "three_phase",
            6,
            build=lambda p: ThreePhaseES.from_pieces(p, True),
            from_params=lambda q: ThreePhaseES.c1(**q),
            data=three_phase_data,
            pieces=c1_pieces,
            starts=_three_phase_starts,
            jacobian=c1_log_model_and_jacobian,
            ridge=True,
        ),
        Law(
            "three_phase_free",
            10,
            build=lambda p: ThreePhaseES.from_pieces(p, False),
            from_params=lambda q: ThreePhaseES.free(**q),
            data=three_phase_data,
            pieces=_free_pieces,
            starts=lambda S, E: _three_phase_starts(S, E, free=True),
            ridge=True,
            nests="three_phase",
            embed=_free_from_c1,
        ),
        Law(
            "hyperbolic",
            2,
            build=lambda p: HyperbolicES(*p),
            from_params=lambda q: HyperbolicES(**q),
            data=hyperbolic_data,
            pieces=_hyperbolic_pieces,
            starts=_hyperbolic_starts,
            batches=("b_crit",),
        ),
    )
}


def law_named(name) -> Law:
    """The record of law ``name``; an unknown name is refused in one line."""
    if name not in LAWS:
        raise UserError(f"unknown law {name!r}; choose one of {', '.join(LAWS)}")
    return LAWS[name]


def law_from_params(name: str, params: dict):
    """The law ``name`` (a key of :data:`LAWS`) from its saved parameters (``fit.json``'s ``laws``)."""
    return law_named(name).from_params(params)
