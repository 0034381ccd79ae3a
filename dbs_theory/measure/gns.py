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

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GNSEstimator", "two_batch_estimates", "BSimple", "aggregate_b_simple"]


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


@dataclass(frozen=True)
class BSimple:
    """``B_simple`` aggregated over many measured steps, with its ``level`` interval, or why it is unresolved.

    ``value``, ``lo``, ``hi`` are NaN when unresolved; ``reason`` says why
    (empty when resolved). ``n`` counts the measured steps used.
    """

    value: float
    lo: float
    hi: float
    n: int
    reason: str = ""
    level: float = 0.9

    @property
    def resolved(self) -> bool:
        return not self.reason

    def text(self, unit="tokens") -> str:
        if not self.resolved:
            return f"B_simple not resolved: {self.reason}"
        return f"B_simple {self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}] {unit} ({self.level:.0%}, {self.n} steps)"


def aggregate_b_simple(g2, trace, level=0.9, n_boot=400, seed=0, min_steps=8) -> BSimple:
    """``mean(tr Sigma) / mean(|G|^2)`` over measured steps: the ratio of separately averaged unbiased
    estimates (not an average of noisy per-step ratios), with a percentile bootstrap over steps.

    ``g2``, ``trace``: the per-step two-batch estimates (:func:`two_batch_estimates`;
    NaN rows are dropped). Unresolved when fewer than ``min_steps`` steps, when
    the mean ``|G|^2`` is not positive (the gradient signal is lost in noise), or
    when the interval's lower end of ``|G|^2`` is not positive (the ratio's upper
    end is unbounded).
    """
    g2, tr = np.asarray(g2, float), np.asarray(trace, float)
    ok = np.isfinite(g2) & np.isfinite(tr)
    g2, tr, n = g2[ok], tr[ok], int(ok.sum())
    nan = math.nan
    if n < min_steps:
        return BSimple(nan, nan, nan, n, f"only {n} measured steps (need {min_steps})", level)
    if g2.mean() <= 0:
        return BSimple(
            nan,
            nan,
            nan,
            n,
            f"the mean |G|^2 estimate is {g2.mean():.3g} <= 0 over {n} steps (gradient signal below the noise)",
            level,
        )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    mg, mt = g2[idx].mean(axis=1), tr[idx].mean(axis=1)
    a = (1 - level) / 2
    if np.quantile(mg, a) <= 0:
        return BSimple(
            nan,
            nan,
            nan,
            n,
            f"the {level:.0%} interval of mean |G|^2 reaches 0 over {n} steps (B_simple unbounded above)",
            level,
        )
    ratio = mt / mg
    return BSimple(
        float(tr.mean() / g2.mean()), float(np.quantile(ratio, a)), float(np.quantile(ratio, 1 - a)), n, "", level
    )
