"""Where the loss-vs-data curves of two fixed batch sizes cross.

Why curves cross under a fixed learning rate. Per example of data, a small
batch takes more optimizer steps, so early in training (where the gradient
signal dominates the noise) it descends faster per example and its curve
lies below the large batch's. But at a fixed rate each batch has a noise
floor ``L_floor(B) = L_irr + (eta / (2B)) sum_i c_i / (2 - eta h_i)``,
higher for the small batch. Its curve flattens onto that floor while the
large batch keeps descending toward its lower one, so the two curves
cross. The classical law assumes the rate is re-tuned for every batch,
which removes the floors and with them the crossings.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from dbs_theory.measure.curves import Crossover

from .frontier import loss_at_steps
from .nqm import NQM

__all__ = ["Crossover", "crossover"]


def crossover(nqm: NQM, eta: float, b_small: float, b_large: float, max_data: float | None = None):
    """Data ``D`` where the small batch's loss curve rises above the large batch's.

    Curves are read in continuous steps (``steps = D / B``), using the
    closed form. Returns the first crossing from "small batch ahead" to
    "large batch ahead", or ``None`` if there is none before ``max_data``
    (default: where both curves are within 1e-9 of their floors).

    Parameters
    ----------
    nqm : NQM
    eta : float
        Fixed learning rate.
    b_small, b_large : float
        Batch sizes, examples, ``b_small < b_large``.
    max_data : float, optional
        Horizon in examples.

    Returns
    -------
    Crossover or None
    """
    nqm.check_stable(eta)
    if not (0 < b_small < b_large):
        raise ValueError(f"need 0 < b_small < b_large; got b_small={b_small!r}, b_large={b_large!r}")
    gap = lambda D: float(loss_at_steps(nqm, eta, b_small, D / b_small) - loss_at_steps(nqm, eta, b_large, D / b_large))
    if max_data is None:
        factor = np.abs(1 - eta * nqm.h)
        factor = factor[factor > 0]  # a mode with eta h = 1 loses its transient in one step
        rate = -2 * np.log(factor.max()) if factor.size else np.inf
        # ~ e^-40 of the slowest transient left, and never under 4 steps of the larger batch
        max_data = b_large * max(40.0 / max(rate, 1e-300), 4.0)
    D = np.geomspace(b_small * 1e-3, max_data, 600)
    g = np.concatenate(
        [
            loss_at_steps(nqm, eta, b_small, chunk / b_small) - loss_at_steps(nqm, eta, b_large, chunk / b_large)
            for chunk in np.array_split(D, max(1, D.size * nqm.h.size // 2_000_000))
        ]
    )
    sign = np.nonzero((g[:-1] < 0) & (g[1:] >= 0))[0]
    if sign.size == 0:
        return None
    k = sign[0]
    Dx = optimize.brentq(gap, D[k], D[k + 1], xtol=1e-12 * D[k + 1], rtol=1e-14)
    return Crossover(Dx, float(loss_at_steps(nqm, eta, b_small, Dx / b_small)), b_small, b_large)
