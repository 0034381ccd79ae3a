"""The wall-clock view: least data is not least time.

Given a step-time model ``t_step(B)`` (seconds per optimizer step) and an
E(S) law for a target loss, the wall time to the target at batch ``B`` is
``S(B) t_step(B)``. Larger batches take fewer, slower steps; on enough
devices they can win on time while losing on data (AdaptDL's "goodput").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..messages import num

__all__ = ["StepTimeModel", "fit_step_time", "time_optimal_batch"]


@dataclass(frozen=True)
class StepTimeModel:
    """``t_step(B) = a + b B / n_devices`` seconds (``B`` in tokens/examples)."""

    a: float
    b: float
    n_devices: int = 1

    def __call__(self, B):
        return self.a + self.b * np.asarray(B, float) / self.n_devices


def fit_step_time(batch_sizes, seconds, n_devices=1) -> StepTimeModel:
    """Least-squares fit of ``a + b B / n_devices`` to measured step times (both >= 0)."""
    B = np.asarray(batch_sizes, float)
    t = np.asarray(seconds, float)
    if B.size < 2 or B.shape != t.shape:
        raise ValueError("need at least two (batch size, step time) pairs of equal length")
    if np.any(B <= 0) or np.any(t <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("batch sizes and step times must be positive and finite")
    X = np.stack([np.ones_like(B), B / n_devices], axis=1)
    (a, b), *_ = np.linalg.lstsq(X, t, rcond=None)
    return StepTimeModel(max(float(a), 0.0), max(float(b), 0.0), int(n_devices))


def time_optimal_batch(law, step_time, max_overhead=None, n=4000) -> dict:
    """The batch that reaches the law's target in the least wall time.

    Parameters
    ----------
    law : E(S) law or FitResult
        Anything callable as ``E(S)`` with ``smin`` (and ``emin``).
    step_time : callable
        ``t_step(B)`` in seconds, e.g. a :class:`StepTimeModel`.
    max_overhead : float, optional
        Only batches whose data ``E`` is within ``(1 + max_overhead) Emin``
        (e.g. 0.1 for 10%) are allowed: the fastest batch at bounded waste.

    Returns
    -------
    dict
        ``batch_size``, ``steps``, ``data``, ``seconds``, ``data_overhead``
        (``E/Emin - 1``) of the chosen point.
    """
    law = getattr(law, "law", law)
    sopt = getattr(law, "sopt", None) or law.smin * 10
    S = law.smin * (1 + np.geomspace(1e-4, max(1e3, 100 * sopt / law.smin), n))
    E = law(S)
    ok = np.isfinite(E) & (E > 0)
    S, E = S[ok], E[ok]
    B = E / S
    T = S * step_time(B)
    emin = float(np.min(E))
    if max_overhead is not None:
        if max_overhead < 0:
            raise ValueError(f"max_overhead={num(max_overhead)} must be >= 0")
        T = np.where(E <= (1 + max_overhead) * emin, T, np.inf)
    k = int(np.argmin(T))
    return dict(
        batch_size=float(B[k]),
        steps=float(S[k]),
        data=float(E[k]),
        seconds=float(T[k]),
        data_overhead=float(E[k] / emin - 1),
    )
