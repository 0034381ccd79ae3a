"""Learning-rate schedules as pure functions of data consumed (optax style).

Every schedule is indexed by data ``D`` (tokens or examples), not by steps,
so changing the batch size never stretches warmup or decay, and resuming
needs only the data counter. A factory validates its arguments once and
returns a callable ``lr(D)``.

Each returned schedule also has ``next_change(D)``: the smallest data count
``D' > D`` at which its value may differ from ``lr(D)``, or ``D`` itself
inside a continuously varying region. Simulators use it to jump over
constant stretches in closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from .messages import num

__all__ = ["constant", "wsd", "cosine", "LRSchedule"]

_SHAPES = ("linear", "cosine", "sqrt")


@dataclass(frozen=True)
class LRSchedule:
    """A learning rate as a function of data consumed.

    Attributes
    ----------
    fn : callable
        ``fn(D) -> lr``, vectorised over numpy arrays of ``D``.
    breaks : tuple of (float, float, bool)
        ``(start, end, constant)`` pieces covering ``[0, inf)``.
    name : str
        Human-readable description.
    """

    fn: Callable[[float], float]
    breaks: tuple
    name: str

    def __call__(self, D):
        out = self.fn(np.asarray(D, float))
        return float(out) if np.ndim(out) == 0 else out

    def next_change(self, D: float) -> float:
        """Smallest ``D' > D`` where the value may change; ``D`` inside a varying piece."""
        for start, end, const in self.breaks:
            if start <= D < end:
                return end if const else D
        return math.inf


def _nonneg(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={num(value)} must be a finite number >= 0")
    return float(value)


def _positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={num(value)} must be a finite number > 0")
    return float(value)


def constant(value: float) -> LRSchedule:
    """``lr(D) = value`` for every ``D``.

    >>> constant(3e-4)(1e9)
    0.0003
    """
    v = _positive("value", value)
    return LRSchedule(lambda D: np.full(np.shape(D), v), ((0.0, math.inf, True),), f"constant({v:g})")


def _decay(shape, frac):
    """Fraction of the way from peak to final after ``frac`` of the decay (0 -> 0, 1 -> 1)."""
    frac = np.clip(frac, 0.0, 1.0)
    if shape == "linear":
        return frac
    if shape == "cosine":
        return 0.5 * (1 - np.cos(np.pi * frac))
    return 1 - np.sqrt(1 - frac)  # "sqrt": 1 - sqrt(1 - x)


def wsd(peak: float, warmup: float, stable: float, decay: float, final_ratio: float = 0.1,
        decay_shape: str = "linear") -> LRSchedule:
    """Warmup-Stable-Decay, in data units.

    .. math::

        lr(D) = peak \\cdot \\begin{cases}
            D / W & D < W \\\\
            1 & W \\le D < W + S \\\\
            1 - (1 - r)\\, s\\big((D - W - S)/T\\big) & W + S \\le D < W + S + T \\\\
            r & \\text{after}
        \\end{cases}

    with warmup ``W``, stable ``S``, decay ``T`` (all data: tokens or
    examples), ``r = final_ratio`` and ``s`` the decay shape
    (``linear``, ``cosine`` or ``sqrt``).

    >>> f = wsd(1.0, warmup=10, stable=80, decay=10, final_ratio=0.1)
    >>> f(5), f(50), f(95), f(200)
    (0.5, 1.0, 0.55, 0.1)
    """
    peak = _positive("peak", peak)
    W, S, T = _nonneg("warmup", warmup), _nonneg("stable", stable), _nonneg("decay", decay)
    r = _nonneg("final_ratio", final_ratio)
    if r > 1:
        raise ValueError(f"final_ratio={num(final_ratio)} must lie in [0, 1]")
    if decay_shape not in _SHAPES:
        raise ValueError(f"decay_shape={decay_shape!r} must be one of {_SHAPES}")

    def fn(D):
        warm = peak * D / W if W > 0 else np.full(np.shape(D), peak)
        decayed = peak * (1 - (1 - r) * _decay(decay_shape, (D - W - S) / T)) if T > 0 else peak * r
        return np.where(D < W, warm, np.where(D < W + S, peak, np.where(D < W + S + T, decayed, peak * r)))

    breaks = ((0.0, W, False), (W, W + S, True), (W + S, W + S + T, False), (W + S + T, math.inf, True))
    return LRSchedule(fn, breaks, f"wsd(peak={peak:g}, W={W:g}, S={S:g}, T={T:g}, r={r:g}, {decay_shape})")


def cosine(peak: float, total: float, warmup: float = 0.0, final_ratio: float = 0.0) -> LRSchedule:
    """Linear warmup over ``warmup`` data, then cosine decay to ``final_ratio*peak`` at ``total``.

    >>> f = cosine(1.0, total=100, warmup=0, final_ratio=0.0)
    >>> round(f(50), 12), f(100)
    (0.5, 0.0)
    """
    peak, total = _positive("peak", peak), _positive("total", total)
    W, r = _nonneg("warmup", warmup), _nonneg("final_ratio", final_ratio)
    if W >= total:
        raise ValueError(f"warmup={num(warmup)} must be < total={num(total)}")
    if r > 1:
        raise ValueError(f"final_ratio={num(final_ratio)} must lie in [0, 1]")

    def fn(D):
        warm = peak * D / W if W > 0 else np.full(np.shape(D), peak)
        cos = peak * (1 - (1 - r) * _decay("cosine", (D - W) / (total - W)))
        return np.where(D < W, warm, np.where(D < total, cos, peak * r))

    breaks = ((0.0, W, False), (W, total, False), (total, math.inf, True))
    return LRSchedule(fn, breaks, f"cosine(peak={peak:g}, total={total:g}, W={W:g}, r={r:g})")
