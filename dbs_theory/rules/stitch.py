"""``stitch``: at each point of the run, the batch whose sweep curve descends fastest per example at the run's
current loss, read off the measured curves (the run's loss moves along that curve); never falling."""

from __future__ import annotations

import math

import numpy as np

from .choice import RuleContext, ScheduleChoice, merged

__all__ = ["ID", "TITLE", "choose", "stitch"]

ID, TITLE = "stitch", "the fastest-descending sweep curve at the run's loss"


def choose(ctx: RuleContext) -> ScheduleChoice:
    starts, sizes = stitch(ctx.env, ctx.horizon)
    sched = merged(starts, [ctx.snap(b) for b in sizes], ctx.unit, ctx.lr, dict(rule=ID))
    reason = "the batch whose sweep curve descends fastest at the run's loss, at each point of the run"
    return ctx.choice(sched, ID, "dynamic", reason, dynamic=sched)


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
