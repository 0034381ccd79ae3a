"""``calibrated`` (the default rule): fit the modal model family to the sweep's curves
(:func:`dbs_theory.theory.calibrate.calibrate`), then optimise the batch per piece of the run on the fitted model under
the run's plan (:func:`dbs_theory.theory.modal.optimise`).

How sure: the fit is repeated with each batch of the sweep left out (at most :data:`MAX_REFITS`); the schedule
is handed out only where it beats the best fixed batch under every refit by :data:`MARGIN`, else the closest
geometric blend toward the fixed batch (:data:`BLENDS`) that does, else the fixed batch; and not at all where
the model explains less than :data:`MIN_R2` of the differences between the sweep's batches (its curves are not
this family's).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .choice import RuleContext, ScheduleChoice, merged

__all__ = ["ID", "TITLE", "choose", "MARGIN", "BLENDS", "EXTRAPOLATE", "MIN_R2", "MAX_REFITS", "refit_batches",
           "sure_blend"]  # fmt: skip

ID, TITLE = "calibrated", "the batch optimised on a modal model fitted to the sweep"

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
    from ..theory.calibrate import calibrate

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


def choose(ctx: RuleContext, pieces: int = 32) -> ScheduleChoice:
    """The calibrated-model rule (module doc) on ``pieces`` pieces of the run."""
    from ..theory import modal
    from ..theory.calibrate import calibrate

    cal = calibrate(ctx.env)
    b_fix = float(ctx.fixed.sizes[0])
    if cal.r2 < MIN_R2:
        return _not_described(ctx, cal, b_fix)
    grid = modal.discretise(ctx.horizon, ctx.lr_plan, pieces)
    swept = np.asarray(ctx.env["batches"], float)
    lo = max(ctx.lo, float(swept.min()))
    hi = max(lo, min(ctx.hi, EXTRAPOLATE * float(swept.max()), ctx.horizon))
    opt = modal.optimise(cal.model, grid, modal.warm_starts(grid, b_fix), lo, hi)
    models = [cal.model] + _refits(ctx.env, cal)
    loss = lambda m, B: float(modal.relaxed_loss(m, grid, np.log(B)))
    flat = np.full(grid.starts.size, b_fix)
    L_fix = [loss(m, flat) for m in models]
    blends = [np.array([ctx.snap(b) for b in np.exp((1 - t) * math.log(b_fix) + t * np.log(opt))]) for t in BLENDS]
    gains = [[1 - loss(m, B) / f for m, f in zip(models, L_fix)] for B in blends]
    k, worst = sure_blend(gains)
    predicted: dict[str, Any] = dict(rms=cal.rms, spread=cal.spread, r2=cal.r2, refits=len(models) - 1,
                                     fixed=L_fix[0], optimum=loss(cal.model, opt), params=cal.params)  # fmt: skip
    dyn = merged(grid.starts, [ctx.snap(b) for b in opt], ctx.unit, ctx.lr, dict(rule=ID))
    if k is None:
        why = (
            f"the calibrated model's schedule is not sure to beat the best fixed batch {b_fix:.4g}: "
            f"under the worst of {len(models)} fits (the full one, and each batch of the sweep left out once) no "
            f"blend toward it gains more than {worst:+.1%} (a gain above {MARGIN:.0%} under every fit is needed)"
        )
        return ctx.choice(ctx.fixed, ID, "fixed", why, dynamic=dyn, predicted=dict(predicted, blend=0.0))
    t, B = BLENDS[k], blends[k]
    predicted.update(schedule=loss(cal.model, B), blend=t, worst_gain=worst)
    sched = merged(grid.starts, B, ctx.unit, ctx.lr, dict(rule=ID, blend=t))
    return ctx.choice(sched, ID, "dynamic", _why_dynamic(ctx, cal, predicted, b_fix), dynamic=dyn,
                      predicted=predicted)  # fmt: skip


def _not_described(ctx: RuleContext, cal, b_fix) -> ScheduleChoice:
    """The fixed batch, where the model explains too little of the sweep's curves (:data:`MIN_R2`)."""
    why = (
        f"the calibrated model does not describe the sweep's curves (relative rms {cal.rms:.1%} against "
        f"{cal.spread:.1%} between batches: it explains {max(cal.r2, -9.99):.0%} of their differences, "
        f"< {MIN_R2:.0%}); run the sweep's best fixed batch {b_fix:.4g}"
    )
    predicted = dict(rms=cal.rms, spread=cal.spread, r2=cal.r2, blend=0.0)
    return ctx.choice(ctx.fixed, ID, "fixed", why, dynamic=ctx.fixed, predicted=predicted)


def _why_dynamic(ctx: RuleContext, cal, predicted, b_fix) -> str:
    t, worst = predicted["blend"], predicted["worst_gain"]
    return (
        f"a modal model fitted to the sweep (relative rms {cal.rms:.1%}) predicts "
        f"{1 - predicted['schedule'] / predicted['fixed']:.1%} "
        f"lower final loss than the best fixed batch {b_fix:.4g} under {ctx.lr_plan.describe()}, and at "
        f"least {worst:.1%} under every refit with one batch left out"
        + ("" if t == 1.0 else f" (a {t:g} blend toward the fixed batch: the full schedule was not sure to win)")
    )
