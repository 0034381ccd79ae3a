"""From a measured sweep to a batch schedule, judged against the sweep's own best fixed batch.

The main path of the package: ``dbs fit`` reads ``Bopt(D)`` off the runs'
envelope over every data amount they cover (``fit.json``'s ``envelope``), and
``dbs schedule --from fit.json`` follows it with the paper's rule
(:func:`~dbs_theory.schedules.batch_schedules.dynamic_batch`) on the noise-robust curve
of :func:`~dbs_theory.measure.bopt_curve.envelope_curve`. What a user would do without
the package is take the sweep's best batch at the budget; so the schedule is
handed out only when the sweep resolves that ``Bopt`` grows over the run (a
``level`` interval in the last half of the run lies wholly above one in its
first quarter, :func:`growth_resolved`): a dynamic schedule's gain comes from starting below the final batch,
and where the growth is inside the noise it is not expected to beat the best
fixed batch, which is recommended instead.

Past the sweep's data (``extrapolate=True``) the curve is held at the larger
of its last value and the best fixed batch at the last measured data: ``Bopt``
does not fall as ``D`` grows, and how far it keeps growing is not measured.

Units: data and batch sizes in the logs' unit (tokens or examples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..schedules.batch_schedules import BatchSchedule, constant_batch, dynamic_batch
from ..measure.bopt_curve import BoptCurve, envelope_curve

__all__ = [
    "past_measured",
    "measured_from",
    "check_horizon",
    "MIN_GROWTH",
    "SweepSchedule",
    "schedule_from_envelope",
    "best_fixed_batch",
    "growth_resolved",
    "measured_range",
]


#: The least rise of the followed ``Bopt(D)`` over the run for which a dynamic schedule is handed out: a
#: curve that grows less is a near-constant batch, and most false "growths" in sweeps whose ``Bopt`` is flat
#: (the batch barely matters, readings wander) rise less (docs/conventions.md, "When a dynamic schedule is
#: handed out").
MIN_GROWTH = 1.5


@dataclass(frozen=True)
class SweepSchedule:
    """The schedule to use, and why.

    Attributes
    ----------
    schedule : BatchSchedule     What to run: the dynamic schedule, or the best fixed batch.
    dynamic : BatchSchedule      The paper's rule on the measured curve (also when not recommended).
    curve : BoptCurve            The noise-robust ``Bopt(D)`` it follows.
    recommendation : str         ``dynamic`` or ``fixed``.
    reason : str                 One sentence: why.
    best_fixed : float           The sweep's best batch at ``best_fixed_at`` (a batch it ran).
    best_fixed_at : float        Data where that was read: the horizon, or the sweep's last data.
    measured_to : float          The largest data amount the envelope covers.
    """

    schedule: BatchSchedule
    dynamic: BatchSchedule
    curve: BoptCurve
    recommendation: str
    reason: str
    best_fixed: float
    best_fixed_at: float
    measured_to: float


def _get(env, key):
    v = env.get(key) if isinstance(env, dict) else getattr(env, key, None)
    return None if v is None else np.array([np.nan if x is None else x for x in np.ravel(v)], float)


def _losses(env):
    """The envelope's smoothed loss per batch (rows) and data amount (columns), NaN where a run has none;
    ``None`` when the envelope holds no per-batch losses."""
    by = env["by_batch"] if isinstance(env, dict) else env.by_batch
    return None if by is None else np.array([[np.nan if v is None else v for v in row] for row in by], float)


def measured_range(env, share=0.75):
    """The largest data amount that at least ``share`` of the sweep's batch sizes reach (a sweep cut at a
    budget ends a step past it for some batches: the few that overshoot do not extend the range)."""
    D, L = _get(env, "data"), _losses(env)
    if L is None:
        return float(D[-1])
    reach = np.isfinite(L).sum(axis=0)
    ok = np.nonzero(reach >= share * reach.max())[0]
    return float(D[ok[-1]])


def measured_from(env) -> float:
    """The smallest data amount at which the sweep measured a loss (its envelope's first finite cell)."""
    D, L = _get(env, "data"), _losses(env)
    if L is None:
        return float(D[0])
    first = np.nonzero(np.isfinite(L).any(axis=0))[0]
    return float(D[first[0]]) if first.size else math.inf


def check_horizon(env, horizon, extrapolate) -> float:
    """The data the sweep measured to (:func:`measured_range`), once ``horizon`` is checked against the sweep:
    a horizon before its first measured data is refused (nothing was measured that early), one past its data
    unless ``extrapolate``."""
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon={horizon!r} must be a positive amount of data")
    first, measured_to = measured_from(env), measured_range(env)
    if horizon < first:
        raise ValueError(
            f"`horizon` {horizon:g} lies before the sweep's data (its first measured point is at {first:g}): "
            "nothing was measured for a run that short; log the sweep from earlier, or plan a longer run"
        )
    if past_measured(env, horizon) and not extrapolate:
        raise ValueError(
            f"`horizon` {horizon:g} lies past the sweep's data (measured to {measured_to:g}); run the "
            "sweep longer, or allow `extrapolate` (the rule then holds what it measured last)"
        )
    return measured_to


def past_measured(env, horizon) -> bool:
    """Whether ``horizon`` lies past the sweep's data: beyond :func:`measured_range` by more than one logging
    interval (the envelope's ``log_gap``; a sweep cut at 2e5 whose last row sits at 199680 covers 2e5)."""
    gap = env.get("log_gap") if isinstance(env, dict) else getattr(env, "log_gap", None)
    gap = float(gap) if gap is not None and np.isfinite(gap) and gap > 0 else 0.0
    end = measured_range(env)
    return horizon > (end + gap) * (1 + 1e-9)


#: a run that ends within this factor below ``at`` competes there at its last smoothed loss (a sweep cut at a
#: budget ends each run at the step that crosses it: a few steps apart, not a different amount of data)
NEAR_END = 1.05


def best_fixed_batch(env, at):
    """The sweep's batch with the lowest smoothed loss at data ``at`` (``at`` clipped to the envelope's
    range), among the batches whose runs reach it or end within :data:`NEAR_END` below it; ``(batch, loss)``."""
    D, batches, L = _get(env, "data"), _get(env, "batches"), _losses(env)
    at = min(max(at, D[0]), D[-1])
    j = int(np.clip(np.searchsorted(np.log(D), math.log(at)), 1, D.size - 1))
    f = (math.log(at) - math.log(D[j - 1])) / (math.log(D[j]) - math.log(D[j - 1]))
    col = L[:, j - 1] * (1 - f) + L[:, j] * f
    near = np.nonzero((D >= at / NEAR_END) & (D <= at * (1 + 1e-9)))[0]
    for i in np.nonzero(~np.isfinite(col))[0]:
        ends = near[np.isfinite(L[i, near])]
        col[i] = L[i, ends[-1]] if ends.size else np.nan
    if not np.isfinite(col).any():
        raise ValueError(f"no batch of the sweep reaches D={at:g}")
    k = int(np.nanargmin(col))
    return float(batches[k]), float(col[k])


def growth_resolved(env, D0, D1, early_to=0.25, late_from=0.5):
    """Whether the sweep resolves that ``Bopt`` grows between ``D0`` and ``D1``: ``(bool, sentence)``.

    The identified readings at ``D0 <= D <= early_to D1`` (the early part of
    the run, where a dynamic schedule departs from the final batch) are
    compared with those at ``late_from D1 <= D <= D1`` (the late part). With
    intervals, growth is resolved when some early interval lies wholly below
    some late one. ``Bopt`` does not fall as ``D`` grows, so any late reading
    bounds ``Bopt(D1)`` from below; the last reading alone sits where every
    run's log ends, its local line one-sided and its interval the widest (an
    early reading from few rows is wide too, so the narrowest on each side
    decides). Without intervals (exact curves), growth is resolved when an
    early value lies below a late one. Chosen with ``dbs simulate chain``
    (docs/conventions.md, "When a dynamic schedule is handed out").
    """
    D, B, lo, hi = (_get(env, k) for k in ("data", "bopt", "lo", "hi"))
    ident = np.asarray(env["identified"] if isinstance(env, dict) else env.identified, bool) & np.isfinite(B)
    upto = ident & (D <= D1 * (1 + 1e-9))
    early = np.nonzero(ident & (D >= D0 * (1 - 1e-9)) & (D <= early_to * D1))[0]
    late = np.nonzero(upto & (D >= late_from * D1 * (1 - 1e-9)))[0]
    if not early.size or not late.size:
        return False, (
            f"the envelope does not identify Bopt both between {D0:.4g} and {early_to * D1:.4g} and "
            f"between {late_from * D1:.4g} and {D1:.4g} (where it is not identified, it lies at or "
            "past the grid's edge, or the batches are within noise of each other)"
        )
    have = lo is not None and hi is not None and np.isfinite(hi[early]).any() and np.isfinite(lo[late]).any()
    if have:
        a = early[int(np.argmin(np.where(np.isfinite(hi[early]), hi[early], np.inf)))]
        b = late[int(np.argmax(np.where(np.isfinite(lo[late]), lo[late], -np.inf)))]
        ok = hi[a] < lo[b]
        text = (
            f"Bopt {B[a]:.4g} [{lo[a]:.4g}, {hi[a]:.4g}] at D={D[a]:.4g} vs {B[b]:.4g} [{lo[b]:.4g}, "
            f"{hi[b]:.4g}] at D={D[b]:.4g}"
        )
    else:
        a, b = early[int(np.argmin(B[early]))], late[int(np.argmax(B[late]))]
        ok = B[b] > B[a]
        text = f"Bopt {B[a]:.4g} at D={D[a]:.4g} vs {B[b]:.4g} at D={D[b]:.4g} (no intervals)"
    return bool(ok), text


def schedule_from_envelope(
    env,
    horizon,
    *,
    interval=None,
    momentum=1.0,
    granularity=1.0,
    min_batch=1.0,
    max_batch=math.inf,
    unit="tokens",
    lr=None,
    extrapolate=False,
    level=0.9,
):
    """The paper's rule on the sweep's measured ``Bopt(D)``, or its best fixed batch when that is safer.

    Parameters
    ----------
    env : EnvelopeBopt or dict          The sweep's envelope (``fit.json``'s ``envelope``).
    horizon : float                     Total data of the run.
    interval, momentum, granularity, min_batch, max_batch, unit, lr
        As :func:`~dbs_theory.schedules.batch_schedules.dynamic_batch` (``interval`` defaults to horizon / 50).
    extrapolate : bool                  Allow a horizon past the sweep's data (the curve is held there).

    Returns
    -------
    SweepSchedule
    """
    measured_to = check_horizon(env, horizon, extrapolate)
    interval = horizon / 50 if interval is None else interval
    # held flat past its last reading: within the sweep's data where Bopt is not identified (past the grid's
    # edge, or batches within noise), and past the data (extrapolate) where nothing is measured
    curve = envelope_curve(env, level=level, lr=lr).with_extrapolation(True)
    at = min(horizon, measured_to)
    best, _ = best_fixed_batch(env, at)
    held = max(float(curve(measured_to)), best)
    follow = lambda x: float(curve(x)) if x <= measured_to else held
    dyn = dynamic_batch(
        follow,
        interval=interval,
        momentum=momentum,
        initial=follow(interval),
        granularity=granularity,
        min_batch=min_batch,
        max_batch=min(max_batch, horizon),
        horizon=horizon,
        unit=unit,
        lr=lr,
    )
    ok, reason = _growth_verdict(env, curve, interval, at, best)
    fixed = constant_batch(max(granularity, round(best / granularity) * granularity), unit, lr)
    return SweepSchedule(dyn if ok else fixed, dyn, curve, "dynamic" if ok else "fixed", reason, best, at, measured_to)


def _growth_verdict(env, curve, interval, at, best) -> tuple[bool, str]:
    """Whether the dynamic schedule is handed out (the sweep resolves that ``Bopt`` grows, and the curve it
    follows rises at least :data:`MIN_GROWTH` from ``interval`` to ``at``), and the one-line reason."""
    ok, why = growth_resolved(env, interval, at)
    rise = float(curve(at)) / float(curve(interval))
    if ok and rise >= MIN_GROWTH:
        return True, f"the sweep resolves that Bopt grows over the run ({rise:.2g}x): {why}"
    if ok:
        reason = (
            f"Bopt grows over the run ({why}) but the curve a schedule would follow rises only {rise:.2g}x "
            f"(< {MIN_GROWTH:g}x): too little to gain over the best fixed batch {best:.4g}; run that"
        )
    else:
        reason = (
            f"the sweep does not resolve that Bopt grows over the run ({why}): a dynamic schedule is not "
            f"expected to beat the best fixed batch {best:.4g}; run that, or add seeds where the envelope "
            "is uncertain (dbs plan)"
        )
    grid = _get(env, "batches")
    if best in (grid.min(), grid.max()):
        reason += (
            f"; {best:.4g} is the sweep's {'smallest' if best == grid.min() else 'largest'} batch, so a "
            f"{'smaller' if best == grid.min() else 'larger'} one may be better still (dbs plan proposes runs)"
        )
    return False, reason
