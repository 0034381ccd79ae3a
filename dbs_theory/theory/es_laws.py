"""E(S) laws: data to reach a target loss as a function of optimizer steps.

``S`` is in optimizer steps; ``E`` in the batch's unit (tokens or examples),
so a slope ``dE/dS`` and the ratios ``bmin``/``bopt`` are batch sizes.

* :class:`HyperbolicES`: McCandlish et al. (2018), ``E = Emin S / (S - Smin)``.
* :class:`ThreePhaseES`: arXiv 2601.05034's piecewise law for the WSD
  stable phase (inverse, quadratic and linear phases), with free pieces
  (:meth:`ThreePhaseES.free`) or C1-continuous (:meth:`ThreePhaseES.c1`,
  the default in fitting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["HyperbolicES", "ThreePhaseES", "PIECE_NAMES", "c1_coefficients", "hyperbolic_data", "three_phase_data"]

#: the three-phase law's pieces, in the order :func:`three_phase_data` reads them
PIECE_NAMES = ("smin", "s1", "sopt", "s2", "emin", "c", "b_m1", "b_0", "a1", "a0")


def _finite(name, value, positive=False):
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name}={value!r} must be {'positive and ' if positive else ''}finite")
    return v


def c1_coefficients(smin, s1, sopt, s2, emin, c):
    """``(b_m1, b_0, a1, a0)``: the inverse and linear pieces that meet the parabola ``C (S - Sopt)^2 + Emin``
    with equal value and slope at ``S1`` and ``S2`` (the C1 law's algebra, written once).

    Works on floats and on sympy symbols alike (units: steps and data as given).
    """
    a1 = 2 * c * (s2 - sopt)
    a0 = c * (s2 - sopt) ** 2 + emin - a1 * s2
    b_m1 = -2 * c * (s1 - sopt) * (s1 - smin) ** 2
    b_0 = c * (s1 - sopt) ** 2 + emin - b_m1 / (s1 - smin)
    return b_m1, b_0, a1, a0


def hyperbolic_data(pieces, S):
    """``E(S) = Emin S / (S - Smin)`` from ``pieces = (smin, emin)``; ``inf`` at or below ``Smin``."""
    smin, emin = pieces
    S = np.asarray(S, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(S > smin, emin * S / (S - smin), np.inf)


def three_phase_data(pieces, S):
    """The three-phase ``E(S)`` from ``pieces = (smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0)``; ``inf`` at or
    below ``Smin`` (the one evaluation of the law: the classes and the fitter both call it)."""
    smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0 = pieces
    S = np.asarray(S, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = np.where(S > smin, b_m1 / (S - smin) + b_0, np.inf)
        return np.where(S < s1, inv, np.where(S <= s2, c * (S - sopt) ** 2 + emin, a1 * S + a0))


@dataclass(frozen=True)
class HyperbolicES:
    """McCandlish's hyperbola ``E(S) = Emin S / (S - Smin)`` for ``S > Smin``.

    Under this law ``E`` falls monotonically toward ``Emin`` as ``S`` grows:
    more steps always save data, so there is no positive ``Bmin`` (no floor)
    and no interior data optimum. ``bmin`` and ``bopt`` are therefore
    ``None``: the law does not define them. ``b_crit = Emin/Smin`` is its
    characteristic batch.

    Parameters
    ----------
    smin : float   Least steps (noise-free limit), steps.
    emin : float   Least data (small-batch limit), tokens/examples.
    """

    smin: float
    emin: float
    n_params = 2

    def __post_init__(self):
        object.__setattr__(self, "smin", _finite("smin", self.smin, True))
        object.__setattr__(self, "emin", _finite("emin", self.emin, True))

    def __call__(self, S):
        return hyperbolic_data((self.smin, self.emin), S)

    def rescaled(self, s_scale, e_scale) -> "HyperbolicES":
        """This law with steps multiplied by ``s_scale`` and data by ``e_scale``."""
        return HyperbolicES(self.smin * s_scale, self.emin * e_scale)

    @property
    def b_crit(self) -> float:
        """``Emin / Smin``, the critical batch."""
        return self.emin / self.smin

    bmin = None  #: not defined by this law (no loss floor)
    bopt = None  #: not defined by this law (E has no interior minimum)
    sopt = None

    def phase(self, S):
        """``"hyperbolic"`` where ``S > Smin``, ``"unreachable"`` below."""
        return np.where(np.asarray(S, float) > self.smin, "hyperbolic", "unreachable")

    def params(self) -> dict:
        return dict(smin=self.smin, emin=self.emin)


@dataclass(frozen=True)
class ThreePhaseES:
    """The paper's three-phase law.

    .. math::

        E(S) = \\begin{cases}
            B_{-1}/(S - S_{min}) + B_0 & S_{min} < S < S_1 \\quad\\text{(inverse)} \\\\
            C (S - S_{opt})^2 + E_{min} & S_1 \\le S \\le S_2 \\quad\\text{(quadratic)} \\\\
            A_1 S + A_0 & S > S_2 \\quad\\text{(linear)}
        \\end{cases}

    ``bmin = A1`` (the asymptote's slope) and ``bopt = Emin/Sopt`` (the
    slope of the line from the origin to the minimum). Build it with
    :meth:`c1` (6 free parameters: ``smin, s1, sopt, s2, emin, c``; value
    and slope match at ``S1`` and ``S2``) or :meth:`free` (10: every piece's
    coefficients plus both boundaries). The fitter also keeps the C1 form's
    ``A0 >= 0``, which is ``Bmin <= Bopt`` (any batch that reaches the
    target is at least ``Bmin``); the free form is left as the paper writes it.
    """

    smin: float
    s1: float
    sopt: float
    s2: float
    emin: float
    c: float
    b_m1: float
    b_0: float
    a1: float
    a0: float
    continuous: bool = True

    def __post_init__(self):
        for name in ("smin", "s1", "sopt", "s2", "emin", "c", "b_m1", "b_0", "a1", "a0"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        if not (0 <= self.smin < self.s1 < self.s2):
            raise ValueError(f"need 0 <= smin < s1 < s2; got smin={self.smin}, s1={self.s1}, s2={self.s2}")
        if self.c <= 0 or self.emin <= 0 or self.sopt <= 0:
            raise ValueError(f"need c > 0, emin > 0, sopt > 0; got c={self.c}, emin={self.emin}, sopt={self.sopt}")
        if self.continuous and not (self.s1 < self.sopt < self.s2):
            raise ValueError(f"need s1 < sopt < s2; got s1={self.s1}, sopt={self.sopt}, s2={self.s2}")

    @property
    def n_params(self) -> int:
        return 6 if self.continuous else 10

    @classmethod
    def c1(cls, smin, s1, sopt, s2, emin, c) -> "ThreePhaseES":
        """The C1-continuous law from its 6 free parameters (value and slope match at S1, S2)."""
        return cls.from_pieces((smin, s1, sopt, s2, emin, c, *c1_coefficients(smin, s1, sopt, s2, emin, c)), True)

    @classmethod
    def from_pieces(cls, pieces, continuous: bool) -> "ThreePhaseES":
        """The law from :meth:`pieces`' tuple ``(smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0)``."""
        return cls(**dict(zip(PIECE_NAMES, pieces)), continuous=continuous)

    @classmethod
    def free(cls, smin, b_m1, b_0, s1, c, sopt, emin, s2, a1, a0) -> "ThreePhaseES":
        """The paper's form with free pieces and boundaries (10 parameters)."""
        return cls(smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0, False)

    def pieces(self) -> tuple:
        """``(smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0)``, what :func:`three_phase_data` evaluates."""
        return tuple(getattr(self, k) for k in PIECE_NAMES)

    def __call__(self, S):
        return three_phase_data(self.pieces(), S)

    def rescaled(self, s_scale, e_scale) -> "ThreePhaseES":
        """This law with steps multiplied by ``s_scale`` and data by ``e_scale`` (batches by their ratio)."""
        s, e = s_scale, e_scale
        scales = (s, s, s, s, e, e / s**2, e * s, e, e / s, e)
        return ThreePhaseES.from_pieces([v * k for v, k in zip(self.pieces(), scales)], self.continuous)

    def phase(self, S):
        """``inverse``, ``quadratic`` or ``linear`` per ``S`` (``unreachable`` at or below Smin)."""
        S = np.asarray(S, float)
        lab = np.where(S < self.s1, "inverse", np.where(S <= self.s2, "quadratic", "linear"))
        return np.where(S > self.smin, lab, "unreachable")

    @property
    def bmin(self) -> float:
        """``A1``: the smallest batch that reaches the target (tokens/examples per step)."""
        return self.a1

    @property
    def bopt(self) -> float:
        """``Emin / Sopt``: the data-optimal batch."""
        return self.emin / self.sopt

    def params(self) -> dict:
        keys = (
            ("smin", "s1", "sopt", "s2", "emin", "c")
            if self.continuous
            else ("smin", "b_m1", "b_0", "s1", "c", "sopt", "emin", "s2", "a1", "a0")
        )
        return {k: getattr(self, k) for k in keys}
