"""From a sweep's fit to the batch schedule of a run: the offline rules, and the choice each one makes.

:func:`schedule_from_fit` is what ``dbs schedule --from fit.json`` runs (and
what ``dbs simulate chain`` scores on the NQM). Every rule reads only what
``dbs fit`` measured -- the envelope in ``fit.json``: the batches, data
amounts, smoothed loss per batch and data, ``Bopt(D)`` -- plus the run's
horizon and learning-rate plan (:class:`~dbs_theory.lr_plan.LRPlan`):

``calibrated`` (the default)
    Fit the modal model family to the sweep's curves
    (:func:`dbs_theory.calibrate.calibrate`), then optimise the batch per piece
    of the run on the fitted model under the plan
    (:func:`dbs_theory.modal.optimise`). How sure: the fit is repeated with
    each batch of the sweep left out; the schedule is handed out only where it
    beats the best fixed batch under every refit by :data:`MARGIN`, else the
    closest geometric blend toward the fixed batch that does, else the fixed batch;
    and not at all where the model explains less than :data:`MIN_R2` of the
    differences between the sweep's batches (its curves are not this family's).
``stitch``
    At each point of the run, the batch whose sweep curve descends fastest per
    example at the run's current loss, read off the measured curves (the run's
    loss moves along that curve); never falling.
``paper``
    The paper's rule on the measured ``Bopt(D)``
    (:func:`dbs_theory.sweep_schedule.schedule_from_envelope`).
``late-switch``
    Half the best fixed batch, then ``ratio`` times that at ``switch_at``
    (:func:`dbs_theory.batch_rules.late_switch`).
``fixed``
    The sweep's best fixed batch at the horizon.

Units: the fit's (tokens or examples); batches per optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .batch_rules import ONLINE as ONLINE_RULES
from .batch_schedules import BatchSchedule, constant_batch
from .lr_plan import LRPlan

__all__ = [
    "RULES",
    "DEFAULT_RULE",
    "MARGIN",
    "BLENDS",
    "EXTRAPOLATE",
    "MIN_R2",
    "ScheduleChoice",
    "schedule_from_fit",
    "stitch",
    "calibrated",
    "sure_blend",
    "envelope_of",
]

#: the offline rules, by id
RULES = ("calibrated", "stitch", "paper", "late-switch", "fixed")
#: what dbs schedule runs unless told (chosen by dbs simulate rules: docs/optimal_schedules.md)
DEFAULT_RULE = "calibrated"
#: the calibrated schedule must beat the fixed batch under every leave-one-batch-out refit by this share
MARGIN = 0.01
#: blends toward the fixed batch tried, in order, when the full schedule is not sure to win
BLENDS = (1.0, 0.75, 0.5, 0.25)
#: the calibrated rule's batches stay within [smallest swept batch, this x the largest]
EXTRAPOLATE = 4.0
#: the least share of the between-batch differences of the sweep's curves the fitted model must explain
#: (``Calibration.r2``) for its schedule to be considered; the NQM sweeps of sim.rule_chain reach 0.50-1.0, a
#: sweep whose loss does not depend on the batch at all about -600
MIN_R2 = 0.3


@dataclass(frozen=True)
class ScheduleChoice:
    """The schedule to run, and why.

    Attributes
    ----------
    schedule : BatchSchedule   What to run.
    rule : str                 The rule that made it (:data:`RULES`).
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


def envelope_of(fit) -> dict:
    """The envelope (a dict of columns) of a fit: a ``fit.json`` dict, a :class:`BoptTable`, or the envelope;
    its batches, data and per-batch losses checked for shape and type (one line naming the field)."""
    env = fit.get("envelope", fit) if isinstance(fit, dict) else getattr(fit, "envelope", fit)
    env = env.to_dict() if hasattr(env, "to_dict") else env
    if not isinstance(env, dict) or not env.get("by_batch"):
        raise ValueError(
            "the fit holds no sweep envelope with per-batch losses (a fit.json from dbs fit on a "
            "sweep of >= 3 batch sizes)"
        )
    batches, data = _numbers(env, "batches", positive=True), _numbers(env, "data", positive=True)
    for key in ("by_batch", "mean_by_batch"):
        rows = env.get(key)
        if rows is None and key == "mean_by_batch":
            continue
        if not isinstance(rows, list) or len(rows) != len(batches):
            raise ValueError(f"envelope.{key} must hold one row per batch ({len(batches)}) in envelope.batches")
        for i, row in enumerate(rows):
            if (
                not isinstance(row, list)
                or len(row) != len(data)
                or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in row)
            ):
                raise ValueError(f"envelope.{key}[{i}] must hold a number (or null) per data amount ({len(data)})")
    return env


def _numbers(env, key, positive=False):
    """``env[key]`` as a list of finite numbers (positive where asked); one line naming the field otherwise."""
    v = env.get(key)
    ok = (
        isinstance(v, list)
        and v
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
            for x in v
        )
    )
    if not ok:
        raise ValueError(f"envelope.{key} must be a list of {'positive ' if positive else ''}finite numbers")
    return v


def _bounds(granularity, min_batch, max_batch):
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


def _snap(b, granularity, lo, hi):
    """``b`` rounded to a multiple of ``granularity`` within ``[lo, hi]`` (themselves multiples: :func:`_bounds`)."""
    return min(max(lo, round(b / granularity) * granularity), hi)


def _merged(starts, sizes, unit, lr, params):
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


def schedule_from_fit(
    fit,
    horizon: float,
    rule: str = DEFAULT_RULE,
    lr_plan: LRPlan = LRPlan(),
    *,
    unit: str = "tokens",
    granularity: float = 1.0,
    min_batch: float = 1.0,
    max_batch: float = math.inf,
    extrapolate: bool = False,
    lr=None,
    interval=None,
    momentum: float = 1.0,
    switch_at=None,
    switch_ratio: float = 4.0,
) -> ScheduleChoice:
    """The batch schedule ``rule`` (module doc) makes for a run of ``horizon`` data under ``lr_plan``.

    ``fit``: a ``fit.json`` dict, :class:`~dbs_theory.bopt_table.BoptTable` or its envelope. Batches are
    whole multiples of ``granularity`` within ``[min_batch, max_batch]``. A horizon past the sweep's data
    is refused unless ``extrapolate``. ``interval``, ``momentum``: the paper's rule; ``switch_at`` (default
    0.75 of the stable phase's data: the horizon's, less a WSD decay), ``switch_ratio``: late switch.
    """
    from .sweep_schedule import best_fixed_batch, measured_range, past_measured

    if rule not in RULES:
        raise ValueError(
            f"rule={rule!r} must be one of {', '.join(RULES)}"
            + (" (decided during the run: dbs train --batch-rule)" if rule in ONLINE_RULES else "")
        )
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon={horizon!r} must be a positive amount of data")
    env = envelope_of(fit)
    measured_to = measured_range(env)
    if past_measured(env, horizon) and not extrapolate:
        raise ValueError(
            f"horizon={horizon:g} lies past the sweep's data (measured to {measured_to:g}); run the "
            "sweep longer, or allow extrapolation (the rule then holds what it measured last)"
        )
    at = min(horizon, measured_to)
    best = best_fixed_batch(env, at)[0]
    lo, hi = _bounds(granularity, min_batch, min(max_batch, horizon))
    snap = lambda b: _snap(b, granularity, lo, hi)
    fixed = constant_batch(snap(best), unit, lr)
    base = dict(best_fixed=best, best_fixed_at=at, measured_to=measured_to, lr_plan=lr_plan)
    note = (
        ""
        if snap(best) == best
        else (
            f"the sweep's best batch {best:.4g} is run as {snap(best):.4g}, the nearest "
            "multiple of the granularity within the batch bounds"
        )
    )
    if rule == "paper":
        return _paper(
            env,
            horizon,
            base,
            unit=unit,
            granularity=granularity,
            min_batch=min_batch,
            max_batch=max_batch,
            lr=lr,
            interval=interval,
            momentum=momentum,
            extrapolate=extrapolate,
        )
    tail = f" ({note})" if note else ""
    if rule == "fixed":
        return ScheduleChoice(
            fixed, rule, "fixed", f"the sweep's best fixed batch at D={at:.4g}{tail}", dynamic=fixed, **base
        )
    if rule == "late-switch":
        from .batch_rules import late_switch

        stable = lr_plan.stable_end(horizon) if lr_plan.shape == "wsd" else horizon
        raw = late_switch(
            best, 0.75 * stable if switch_at is None else switch_at, switch_ratio, unit, lr, granularity=granularity
        )
        sched = BatchSchedule(
            raw.starts, tuple(snap(b) for b in raw.sizes), unit, lr=lr, kind="step", params=raw.params
        )
        return ScheduleChoice(
            sched,
            rule,
            "dynamic",
            f"late switch from the sweep's best fixed batch {best:.4g}" + tail,
            dynamic=sched,
            **base,
        )
    if rule == "stitch":
        starts, sizes = stitch(env, horizon)
        sched = _merged(starts, [snap(b) for b in sizes], unit, lr, dict(rule="stitch"))
        return ScheduleChoice(
            sched,
            rule,
            "dynamic",
            "the batch whose sweep curve descends fastest at the run's loss, at each point of the run",
            dynamic=sched,
            **base,
        )
    return calibrated(env, horizon, lr_plan, base, fixed, snap, unit=unit, lr=lr, min_batch=lo, max_batch=hi)


def _paper(env, horizon, base, **kw):
    from .sweep_schedule import schedule_from_envelope

    got = schedule_from_envelope(env, horizon, **kw)
    return ScheduleChoice(
        got.schedule, "paper", got.recommendation, got.reason, dynamic=got.dynamic, curve=got.curve, **base
    )


def stitch(env, horizon: float, points: int = 240):
    """``(starts, sizes)``: the stitched schedule (module doc) at ``points`` log-spaced data up to ``horizon``.

    The run starts on the smallest batch's curve, where it begins; each stretch of data it moves
    along the curve that loses the most loss over that stretch from the run's current loss (where the curve
    has that loss). Where no curve reaches below the run's loss the batch is held.
    """
    B, D, L = (
        np.asarray(env[k] if k != "by_batch" else [[np.nan if v is None else v for v in row] for row in env[k]], float)
        for k in ("batches", "data", "by_batch")
    )
    logD = np.log(D)
    curves = []
    for i in range(B.size):
        ok = np.isfinite(L[i])
        curves.append((logD[ok], np.minimum.accumulate(L[i, ok])))
    # the run starts on the smallest batch's curve (the most data-efficient early), where that curve begins
    k = int(np.nonzero([c.size >= 2 for _, c in curves])[0][0])
    d0 = math.exp(curves[k][0][0])
    loss, at = float(curves[k][1][0]), np.geomspace(d0, max(horizon, d0 * 1.01), points)
    starts, sizes = [0.0], [float(B[k])]
    for a, z in zip(at[:-1], at[1:]):
        drop, pick = 0.0, None
        for i, (x, c) in enumerate(curves):
            if c.size < 2 or not c[-1] < loss:
                continue
            here = float(np.interp(-loss, -c, x)) if loss < c[0] else float(x[0])  # log D where c has the run's loss
            there = math.log(math.exp(here) + (z - a))
            if there > x[-1]:
                continue
            new = float(np.interp(there, x, c))
            if loss - new > drop:
                drop, pick = loss - new, (i, new)
        if pick is not None:
            loss = pick[1]
            b = max(float(B[pick[0]]), sizes[-1])
            if b != sizes[-1]:
                starts.append(float(a))
                sizes.append(b)
    return starts, sizes


def _without(env, i):
    """The envelope with batch ``i`` left out (for a refit)."""
    out = dict(env)
    for key in ("by_batch", "mean_by_batch"):
        if env.get(key) is not None:
            out[key] = [row for k, row in enumerate(env[key]) if k != i]
    out["batches"] = [b for k, b in enumerate(env["batches"]) if k != i]
    return out


#: the most leave-one-batch-out refits of the calibrated rule (each is one calibration, ~2 s)
MAX_REFITS = 16


def refit_batches(n: int, most: int = MAX_REFITS) -> list:
    """Which of ``n`` swept batches the refits leave out, one each: all of them up to ``most``, else ``most``
    spread evenly over the grid, both ends included (an 80-batch sweep took 80 calibrations, minutes)."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, most)})


def _refits(env, cal):
    """The calibration repeated with a batch left out (:func:`refit_batches`; from the full fit's parameters),
    as models."""
    from .calibrate import calibrate

    models = []
    for i in refit_batches(len(env["batches"])):
        try:
            models.append(calibrate(_without(env, i), start=list(cal.params.values())).model)
        except ValueError:
            continue  # too few points left: that refit says nothing
    return models


def sure_blend(gains, margin: float = MARGIN):
    """``(index, worst gain)``: the first blend (rows of ``gains``: per model, the predicted relative gain over
    the fixed batch) whose every gain exceeds ``margin``, with its smallest gain; ``(None, best worst gain)``
    when none does."""
    worst = [min(g) for g in gains]
    for k, w in enumerate(worst):
        if w > margin:
            return k, w
    return None, max(worst)


def calibrated(env, horizon, lr_plan, base, fixed, snap, *, unit, lr, min_batch, max_batch, pieces: int = 32):
    """The calibrated-model rule (module doc): ``ScheduleChoice``. ``base``: the choice's sweep facts, ``fixed``:
    the best fixed batch's schedule, ``snap``: rounds a batch to what may be run."""
    from . import modal
    from .calibrate import calibrate

    cal = calibrate(env)
    b_fix = float(fixed.sizes[0])
    if cal.r2 < MIN_R2:
        why = (
            f"the calibrated model does not describe the sweep's curves (relative rms {cal.rms:.1%} against "
            f"{cal.spread:.1%} between batches: it explains {max(cal.r2, -9.99):.0%} of their differences, "
            f"< {MIN_R2:.0%}); run the sweep's best fixed batch {b_fix:.4g}"
        )
        return ScheduleChoice(
            fixed,
            "calibrated",
            "fixed",
            why,
            dynamic=fixed,
            predicted=dict(rms=cal.rms, spread=cal.spread, r2=cal.r2, blend=0.0),
            **base,
        )
    grid = modal.discretise(horizon, lr_plan, pieces)
    swept = np.asarray(env["batches"], float)
    lo = max(min_batch, float(swept.min()))
    hi = max(lo, min(max_batch, EXTRAPOLATE * float(swept.max()), horizon))
    opt = modal.optimise(cal.model, grid, modal.warm_starts(grid, b_fix), lo, hi)
    models = [cal.model] + _refits(env, cal)
    loss = lambda m, B: float(modal.relaxed_loss(m, grid, np.log(B)))
    flat = np.full(grid.starts.size, b_fix)
    L_fix = [loss(m, flat) for m in models]
    blends = [np.array([snap(b) for b in np.exp((1 - t) * math.log(b_fix) + t * np.log(opt))]) for t in BLENDS]
    gains = [[1 - loss(m, B) / f for m, f in zip(models, L_fix)] for B in blends]
    k, worst = sure_blend(gains)
    chosen = None if k is None else (BLENDS[k], blends[k])
    predicted: dict[str, Any] = dict(
        rms=cal.rms,
        spread=cal.spread,
        r2=cal.r2,
        refits=len(models) - 1,
        fixed=L_fix[0],
        optimum=loss(cal.model, opt),
        params=cal.params,
    )
    dyn = _merged(grid.starts, [snap(b) for b in opt], unit, lr, dict(rule="calibrated"))
    if chosen is None:
        why = (
            f"the calibrated model's schedule is not sure to beat the best fixed batch {b_fix:.4g}: "
            f"under the worst of {len(models)} fits (the full one, and each batch of the sweep left out once) no "
            f"blend toward it gains more than {worst:+.1%} (a gain above {MARGIN:.0%} under every fit is needed)"
        )
        return ScheduleChoice(
            fixed, "calibrated", "fixed", why, dynamic=dyn, predicted=dict(predicted, blend=0.0), **base
        )
    t, B = chosen
    sched = _merged(grid.starts, B, unit, lr, dict(rule="calibrated", blend=t))
    predicted.update(schedule=loss(cal.model, B), blend=t, worst_gain=worst)
    why = (
        f"a modal model fitted to the sweep (relative rms {cal.rms:.1%}) predicts "
        f"{1 - predicted['schedule'] / L_fix[0]:.1%} "
        f"lower final loss than the best fixed batch {b_fix:.4g} under {lr_plan.describe()}, and at "
        f"least {worst:.1%} under every refit with one batch left out"
        + ("" if t == 1.0 else f" (a {t:g} blend toward the fixed batch: the full schedule was not sure to win)")
    )
    return ScheduleChoice(sched, "calibrated", "dynamic", why, dynamic=dyn, predicted=predicted, **base)
