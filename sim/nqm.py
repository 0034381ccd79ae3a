"""The noisy quadratic model (NQM) as an immutable, validated problem.

Loss ``L(theta) = L_irr + 1/2 sum_i h_i theta_i^2`` in the Hessian's
eigenbasis; the stochastic gradient of a batch of ``B`` examples is
``g_i = h_i theta_i + xi_i`` with ``xi_i ~ N(0, c_i / B)`` (Zhang et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dbs_theory.messages import num

__all__ = ["NQM", "DEFAULT_ETA"]

#: The default learning rate: keeps ``eta * h_max < 1`` for ``h_max = 1``.
DEFAULT_ETA = 0.5


def _vector(name, value, d=None):
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
    if d is not None and arr.size == 1 and d > 1:
        arr = np.full(d, arr[0])
    if d is not None and arr.size != d:
        raise ValueError(f"{name} has {arr.size} entries but h has {d}: shape mismatch")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {num(arr[~np.isfinite(arr)][0])}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class NQM:
    """A noisy quadratic model.

    Parameters
    ----------
    h : array_like
        Curvatures, ``> 0``.
    c : array_like
        Per-example gradient-noise variances, ``>= 0`` (a scalar broadcasts).
    m0 : array_like
        Initial second moments ``E[theta_i^2]`` (a scalar broadcasts).
    mean0 : array_like, optional
        Initial means ``E[theta_i]``; needs ``mean0**2 <= m0``. They affect
        only Monte Carlo draws: the expected loss depends on ``m`` alone.
    L_irr : float
        Irreducible loss.
    counts : array_like of int, optional
        Multiplicity of each mode, so a binned spectrum of ``10^6`` modes can
        be stored in about 100 entries.
    """

    h: np.ndarray
    c: np.ndarray = 1.0
    m0: np.ndarray = 1.0
    mean0: np.ndarray | None = None
    L_irr: float = 0.0
    counts: np.ndarray | None = field(default=None)

    def __post_init__(self):
        h = _vector("h", self.h)
        if h.size == 0 or np.any(h <= 0):
            raise ValueError(f"curvatures h must be positive; got min h={num(h.min()) if h.size else 'empty'}")
        d = h.size
        c = _vector("c", self.c, d)
        if np.any(c < 0):
            raise ValueError(f"noise variances c must be >= 0; got min c={num(c.min())}")
        m0 = _vector("m0", self.m0, d)
        if np.any(m0 < 0):
            raise ValueError(f"initial moments m0 must be >= 0; got min m0={num(m0.min())}")
        object.__setattr__(self, "h", h)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "m0", m0)
        if self.mean0 is not None:
            mean0 = _vector("mean0", self.mean0, d)
            if np.any(mean0**2 > m0 * (1 + 1e-12)):
                raise ValueError("mean0**2 must not exceed m0 (a second moment is >= the squared mean)")
            object.__setattr__(self, "mean0", mean0)
        if not np.isfinite(self.L_irr):
            raise ValueError(f"L_irr must be finite; got {num(self.L_irr)}")
        if self.counts is not None:
            counts = _vector("counts", self.counts, d)
            if np.any(counts < 1) or np.any(counts != np.round(counts)):
                raise ValueError("counts must be positive integers")
            object.__setattr__(self, "counts", counts)

    # -- derived views ---------------------------------------------------
    @property
    def d(self) -> int:
        """Number of modes, counting multiplicities."""
        return int(self.weights.sum())

    @property
    def weights(self) -> np.ndarray:
        """Multiplicity of each stored mode (ones when unbinned)."""
        return np.ones_like(self.h) if self.counts is None else self.counts

    def initial_loss(self) -> float:
        """``L(0) = L_irr + 1/2 sum_i counts_i h_i m0_i``."""
        return float(self.L_irr + 0.5 * np.sum(self.weights * self.h * self.m0))

    def modal(self):
        """The NQM as a :class:`dbs_theory.theory.modal.ModalModel` at a "peak" rate of 1: per mode the rate ``h_i``,
        the floor coefficient ``counts_i c_i / 2`` and the initial excess ``counts_i h_i m0_i / 2``, so that a
        learning rate ``eta`` is the plan's multiple ``eta`` (loss units throughout)."""
        from dbs_theory.theory.modal import ModalModel

        w = self.weights
        return ModalModel(self.h, 0.5 * w * self.c, 0.5 * w * self.h * self.m0, self.L_irr)

    def check_stable(self, eta) -> None:
        """Raise ``ValueError`` unless ``0 < eta * h_i < 2`` for every mode."""
        eta = np.asarray(eta, float)
        hmax = float(self.h.max())
        if not np.all(np.isfinite(eta)) or np.any(eta <= 0) or np.any(eta * hmax >= 2):
            raise ValueError(
                f"learning rate eta={num(eta)} is unstable: need 0 < eta*h_max < 2 "
                f"(h_max={hmax:g}, so eta < {2 / hmax:g})"
            )

    def expanded(self) -> "NQM":
        """The same model with every binned mode repeated ``counts`` times."""
        if self.counts is None:
            return self
        k = self.counts.astype(int)
        rep = lambda a: None if a is None else np.repeat(a, k)
        return NQM(rep(self.h), rep(self.c), rep(self.m0), rep(self.mean0), self.L_irr)

    # -- constructors ----------------------------------------------------
    @classmethod
    def zhang2019(cls, d: int = 10_000, nbins: int | None = None) -> "NQM":
        """Zhang et al. (2019): ``h_i = 1/i``, ``c_i = h_i``, ``m0_i = 1``, ``i = 1..d``.

        With ``nbins``, modes are grouped into ``nbins`` log-spaced bins of
        equal curvature (the bin's geometric-mean ``h``), stored with counts.
        """
        return cls.power_law(d, alpha=1.0, noise_exponent=1.0, nbins=nbins)

    @classmethod
    def power_law(
        cls,
        d: int,
        alpha: float,
        noise_exponent: float = 1.0,
        h_max: float = 1.0,
        noise_scale: float = 1.0,
        m0: float = 1.0,
        L_irr: float = 0.0,
        nbins: int | None = None,
    ) -> "NQM":
        """Power-law spectrum ``h_i = h_max i^-alpha``, ``c_i = noise_scale (h_i/h_max)^noise_exponent``.

        A power-law spectrum gives power-law loss curves, as language models
        show. ``nbins`` bins the modes log-uniformly in ``i`` (with counts).
        """
        if int(d) < 1:
            raise ValueError(f"d must be a positive integer; got d={num(d)}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0; got alpha={num(alpha)}")
        counts = None
        if nbins is None:
            i = np.arange(1, int(d) + 1, dtype=float)
        else:  # bin first: no array of d entries is ever made
            if int(nbins) < 1:
                raise ValueError(f"nbins must be a positive integer; got nbins={num(nbins)}")
            edges = np.unique(np.round(np.geomspace(1, d + 1, int(nbins) + 1)).astype(int))
            counts = np.diff(edges).astype(float)
            i = np.sqrt(edges[:-1] * (edges[1:] - 1.0))  # geometric mean index of each bin
        h = h_max * i ** (-float(alpha))
        c = noise_scale * (h / h_max) ** float(noise_exponent)
        return cls(h, c, m0, None, L_irr, counts)
