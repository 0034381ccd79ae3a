"""The run's learning-rate plan, as a multiple of its peak rate over the run's data.

A batch-size schedule depends on what the learning rate does: the optimum on
the NQM grows the batch steeply while a WSD run decays its rate, and a rule
that assumes a constant rate hands out the wrong end of the run. The plan is
what ``dbs schedule --decay F`` passes on:

- ``LRPlan()`` -- a constant rate (the sweep's own);
- ``LRPlan(decay=F, final=r)`` -- WSD: the peak rate for the first ``1 - F``
  of the horizon, then a linear decay to ``r`` times it at the horizon;
- ``LRPlan(shape="cosine", final=r)`` -- cosine from the peak to ``r`` times
  it over the whole run.

Data (the horizon, ``D``) are in the caller's unit (tokens or examples); the
plan only holds fractions, so one plan serves every unit.

>>> LRPlan(decay=0.2).scale([0.0, 0.8, 0.9, 1.0], horizon=1.0).round(3).tolist()
[1.0, 1.0, 0.55, 0.1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LRPlan", "SHAPES"]

#: the plan's shapes
SHAPES = ("wsd", "cosine")


@dataclass(frozen=True)
class LRPlan:
    """The learning rate over a run, as a multiple of the peak (module doc).

    Attributes
    ----------
    decay : float   WSD: fraction of the horizon in the final linear decay (0: a constant rate).
    final : float   The rate at the horizon as a multiple of the peak (WSD's and cosine's end).
    shape : str     ``wsd`` or ``cosine``.
    """

    decay: float = 0.0
    final: float = 0.1
    shape: str = "wsd"

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"shape={self.shape!r} must be one of {', '.join(SHAPES)}")
        if not (math.isfinite(self.decay) and 0.0 <= self.decay < 1.0):
            raise ValueError(f"decay={self.decay!r} must be a fraction of the run in [0, 1)")
        if not (math.isfinite(self.final) and 0.0 <= self.final <= 1.0):
            raise ValueError(f"final={self.final!r} must be a multiple of the peak rate in [0, 1]")
        if self.shape == "cosine" and self.decay:
            raise ValueError("a cosine plan decays over the whole run: give no decay fraction")

    @property
    def constant(self) -> bool:
        """Whether the rate stays at its peak all run."""
        return self.shape == "wsd" and self.decay == 0.0

    def stable_end(self, horizon: float) -> float:
        """Data where the rate starts to fall: the decay's start (WSD), 0 (cosine), the horizon (constant)."""
        if self.shape == "cosine":
            return 0.0
        return float(horizon) - self.decay * float(horizon) if self.decay else float(horizon)

    def scale(self, data, horizon: float) -> np.ndarray:
        """The rate at ``data`` as a multiple of the peak (held at ``final`` past the horizon)."""
        x = np.clip(np.asarray(data, float) / float(horizon), 0.0, 1.0)
        if self.shape == "cosine":
            return self.final + (1.0 - self.final) * 0.5 * (1.0 + np.cos(np.pi * x))
        if not self.decay:
            return np.ones_like(x)
        frac = np.clip((x - (1.0 - self.decay)) / self.decay, 0.0, 1.0)
        return 1.0 - (1.0 - self.final) * frac

    def schedule(self, peak: float, horizon: float):
        """The plan as a learning-rate schedule of data (a :class:`~dbs_theory.schedules.piecewise.Piecewise`, or the
        number ``peak`` for a constant rate), for the simulator and the trainer."""
        from .lr_schedules import cosine, wsd

        if self.constant:
            return float(peak)
        if self.shape == "cosine":
            return cosine(float(peak), float(horizon), final_ratio=self.final)
        stable = self.stable_end(horizon)
        return wsd(float(peak), 0.0, stable, float(horizon) - stable, self.final)

    def describe(self) -> str:
        """One phrase: what the rate does."""
        if self.constant:
            return "a constant learning rate"
        if self.shape == "cosine":
            return f"a cosine decay to {self.final:g}x the peak rate"
        return f"WSD: the last {self.decay:.3g} of the run decays linearly to {self.final:g}x the peak rate"
