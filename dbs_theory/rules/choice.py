"""What every offline rule reads and returns: :class:`RuleContext` in, :class:`ScheduleChoice` out.

A rule is a module of :mod:`dbs_theory.rules` with ``ID``, ``TITLE`` and
``choose(ctx) -> ScheduleChoice``; :func:`dbs_theory.rules.from_fit.schedule_from_fit`
builds the context once (the envelope checked, the horizon checked against the
sweep's data, the best fixed batch read, the batch bounds snapped) and hands it
to the rule the caller named. Units: the fit's (tokens or examples); batches
per optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..schedules.batch_schedules import BatchSchedule
from ..schedules.lr_plan import LRPlan

__all__ = ["ScheduleChoice", "RuleContext", "merged", "batch_bounds", "snap_batch"]


@dataclass(frozen=True)
class ScheduleChoice:
    """The schedule to run, and why.

    Attributes
    ----------
    schedule : BatchSchedule   What to run.
    rule : str                 The rule that made it (an id of :data:`dbs_theory.rules.RULES`).
    recommendation : str       ``dynamic`` or ``fixed``.
    reason : str               One sentence: why.
    best_fixed : float         The sweep's best batch at ``best_fixed_at`` (a batch it ran).
    best_fixed_at : float      Data where that was read: the horizon, or the sweep's last data.
    measured_to : float        The largest data amount the sweep covers.
    lr_plan : LRPlan           The run's learning-rate plan the schedule was made for.
    dynamic : BatchSchedule    The rule's own schedule (also when the fixed batch is recommended).
    curve : object             The ``Bopt(D)`` curve the paper's rule follows (None for the other rules).
    predicted : dict           The calibrated rule's model: ``rms`` of the fit, predicted final losses
                               (``schedule``, ``fixed``, ``optimum``), the worst refit's gain, the blend used.
    """

    schedule: BatchSchedule
    rule: str
    recommendation: str
    reason: str
    best_fixed: float
    best_fixed_at: float
    measured_to: float
    lr_plan: LRPlan = LRPlan()
    dynamic: BatchSchedule | None = None
    curve: object = None
    predicted: dict = field(default_factory=dict)

    def record(self) -> dict:
        """``exports.json``'s record of which schedule was chosen and why."""
        return dict(
            rule=self.rule,
            recommendation=self.recommendation,
            reason=self.reason,
            best_fixed=self.best_fixed,
            best_fixed_at=self.best_fixed_at,
            measured_to=self.measured_to,
            lr_plan=dict(decay=self.lr_plan.decay, final=self.lr_plan.final, shape=self.lr_plan.shape),
            predicted=self.predicted,
            dynamic=None if self.dynamic is None else [{"from": a, "batch_size": b} for a, b in self.dynamic.segments],
        )


@dataclass(frozen=True)
class RuleContext:
    """What a rule may read: the sweep's envelope and the run it plans.

    Attributes
    ----------
    env : dict                 The checked envelope (``fit.json``'s): batches, data, per-batch losses, Bopt(D).
    horizon : float            The run's data (tokens or examples).
    lr_plan : LRPlan           The run's learning-rate plan.
    unit : str                 ``tokens`` or ``examples``.
    lr : object                The peak learning rate recorded with the schedule (or None).
    granularity : float        Batches are whole multiples of this.
    min_batch, max_batch : float  The batch bounds as given.
    lo, hi : float             The smallest and largest batch allowed (multiples of ``granularity``).
    best : float               The sweep's best fixed batch at ``best_at`` (as swept, not snapped).
    best_at : float            Where that was read: the horizon, or the sweep's last data.
    measured_to : float        The sweep's last data amount.
    fixed : BatchSchedule      The best fixed batch, snapped, as a schedule.
    note : str                 Why the fixed batch differs from the swept one ('' when it does not).
    options : dict             The rules' own options (``interval``, ``momentum``, ``switch_at``,
                               ``switch_ratio``, ``extrapolate``).
    """

    env: dict
    horizon: float
    lr_plan: LRPlan
    unit: str
    lr: float | None
    granularity: float
    min_batch: float
    max_batch: float
    lo: float
    hi: float
    best: float
    best_at: float
    measured_to: float
    fixed: BatchSchedule
    note: str = ""
    options: dict = field(default_factory=dict)

    def snap(self, b) -> float:
        """``b`` rounded to a batch the run may use (:func:`snap_batch` within ``[lo, hi]``)."""
        return snap_batch(b, self.granularity, self.lo, self.hi)

    def choice(self, schedule, rule, recommendation, reason, **more) -> ScheduleChoice:
        """A :class:`ScheduleChoice` carrying this context's sweep facts."""
        return ScheduleChoice(
            schedule,
            rule,
            recommendation,
            reason,
            best_fixed=self.best,
            best_fixed_at=self.best_at,
            measured_to=self.measured_to,
            lr_plan=self.lr_plan,
            **more,
        )


def batch_bounds(granularity, min_batch, max_batch):
    """The smallest and largest batch that are whole multiples of ``granularity`` within the bounds."""
    if not (math.isfinite(granularity) and granularity > 0):
        raise ValueError(f"granularity={granularity!r} must be a positive number")
    lo = granularity * max(1, math.ceil(min_batch / granularity - 1e-9))
    hi = granularity * math.floor(max_batch / granularity + 1e-9) if math.isfinite(max_batch) else math.inf
    if hi < lo:
        raise ValueError(
            f"no multiple of granularity={granularity:g} lies in [min_batch={min_batch:g}, max_batch={max_batch:g}]"
        )
    return lo, hi


def snap_batch(b, granularity, lo, hi):
    """``b`` rounded to a multiple of ``granularity`` within ``[lo, hi]`` (themselves multiples)."""
    return min(max(lo, round(b / granularity) * granularity), hi)


def merged(starts, sizes, unit, lr, params) -> BatchSchedule:
    """A step schedule from per-piece batches, equal neighbours merged."""
    keep = [0] + [k for k in range(1, len(sizes)) if sizes[k] != sizes[k - 1]]
    return BatchSchedule(
        tuple(float(starts[k]) for k in keep),
        tuple(float(sizes[k]) for k in keep),
        unit,
        kind="step",
        lr=lr,
        params=params,
    )


#: a rule's entry point
Choose = Callable[[RuleContext], ScheduleChoice]
