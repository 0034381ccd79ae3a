"""Learning-rate schedules as pure functions of data consumed (optax style).

Every schedule is indexed by data ``D`` (tokens or examples), not by steps,
so changing the batch size never stretches warmup or decay, and resuming
needs only the data counter. A factory validates its arguments once and
returns a :class:`~dbs_theory.schedules.piecewise.Piecewise` built by ``join``ing its
phases (warmup, stable, decay, final), so ``next_change(D)`` lets simulators
jump the constant stretches in closed form.
"""

from __future__ import annotations

import math

import numpy as np

from ..messages import num
from .piecewise import Piecewise, join

__all__ = ["constant", "wsd", "cosine", "linear_warmup"]

_SHAPES = ("linear", "cosine", "sqrt")


def _nonneg(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={num(value)} must be a finite number >= 0")
    return float(value)


def _positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={num(value)} must be a finite number > 0")
    return float(value)


def constant(value: float) -> Piecewise:
    """``lr(D) = value`` for every ``D``.

    >>> constant(3e-4)(1e9)
    0.0003
    """
    return Piecewise.constant(_positive("value", value))


def linear_warmup(peak: float, length: float) -> Piecewise:
    """The linear warmup from 0 to ``peak`` over ``length`` data, then ``peak`` (the one warmup line)."""
    return (
        Piecewise((0.0,), (lambda x: peak * np.minimum(x / length, 1.0),)) if length > 0 else Piecewise.constant(peak)
    )


def _decay(shape, frac):
    """Fraction of the way from peak to final after ``frac`` of the decay (0 -> 0, 1 -> 1)."""
    frac = np.clip(frac, 0.0, 1.0)
    if shape == "linear":
        return frac
    if shape == "cosine":
        return 0.5 * (1 - np.cos(np.pi * frac))
    return 1 - np.sqrt(1 - frac)  # "sqrt": 1 - sqrt(1 - x)


def wsd(
    peak: float, warmup: float, stable: float, decay: float, final_ratio: float = 0.1, decay_shape: str = "linear"
) -> Piecewise:
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

    decayed = lambda x: peak * (1 - (1 - r) * _decay(decay_shape, x / T))
    return join(
        [linear_warmup(peak, W), peak, Piecewise((0.0,), (decayed,)), peak * r],
        [W, W + S, W + S + T],
        label=f"wsd(peak={peak:g}, W={W:g}, S={S:g}, T={T:g}, r={r:g}, {decay_shape})",
    )


def cosine(peak: float, total: float, warmup: float = 0.0, final_ratio: float = 0.0) -> Piecewise:
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

    cos = lambda x: peak * (1 - (1 - r) * _decay("cosine", x / (total - W)))
    return join(
        [linear_warmup(peak, W), Piecewise((0.0,), (cos,)), peak * r],
        [W, total],
        label=f"cosine(peak={peak:g}, total={total:g}, W={W:g}, r={r:g})",
    )
