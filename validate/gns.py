"""The simple gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` from two batch sizes.

McCandlish et al. (2018), appendix A: with gradient estimates at a small
batch ``b`` (one micro-batch) and a big batch ``B`` (the accumulated step),

.. math::

    |G|^2 \\approx \\frac{B |g_B|^2 - b |g_b|^2}{B - b}, \\qquad
    \\operatorname{tr}\\Sigma \\approx \\frac{|g_b|^2 - |g_B|^2}{1/b - 1/B}.

Both are unbiased but noisy, so each gets its own exponential moving
average, and the ratio is taken of the averages (not averaged ratios).
Batch sizes are in tokens (or examples), so ``B_simple`` is too.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GNSEstimator", "two_batch_estimates"]


def two_batch_estimates(sq_small: float, b_small: float, sq_big: float, b_big: float):
    """``(|G|^2, tr Sigma)`` estimates from squared gradient norms at two batch sizes."""
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big; got {b_small!r}, {b_big!r}")
    g2 = (b_big * sq_big - b_small * sq_small) / (b_big - b_small)
    tr = (sq_small - sq_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, tr


@dataclass
class GNSEstimator:
    """Exponential moving averages of ``|G|^2`` and ``tr Sigma``; ``value`` is their ratio."""

    decay: float = 0.95
    g2: float | None = None
    tr: float | None = None

    def update(self, sq_small, b_small, sq_big, b_big):
        g2, tr = two_batch_estimates(sq_small, b_small, sq_big, b_big)
        ema = lambda old, new: new if old is None else self.decay * old + (1 - self.decay) * new
        self.g2, self.tr = ema(self.g2, g2), ema(self.tr, tr)
        return self.value

    @property
    def value(self):
        """``B_simple`` (tokens/examples), or ``nan`` before the estimate is positive."""
        if self.g2 is None or self.g2 <= 0:
            return float("nan")
        return self.tr / self.g2
