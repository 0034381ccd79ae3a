"""``late-switch``: half the best fixed batch, then ``switch_ratio`` times that at ``switch_at`` (default 0.75
of the stable phase's data: the horizon's, less a WSD decay); :func:`dbs_theory.rules.online.late_switch`."""

from __future__ import annotations

from .online import late_switch
from ..schedules.batch_schedules import BatchSchedule
from .choice import RuleContext, ScheduleChoice

__all__ = ["ID", "TITLE", "choose"]

ID, TITLE = "late-switch", "late switch from the best fixed batch"


def choose(ctx: RuleContext) -> ScheduleChoice:
    plan, at = ctx.lr_plan, ctx.options.get("switch_at")
    stable = plan.stable_end(ctx.horizon) if plan.shape == "wsd" else ctx.horizon
    ratio = ctx.options.get("switch_ratio", 4.0)
    raw = late_switch(
        ctx.best, 0.75 * stable if at is None else at, ratio, ctx.unit, ctx.lr, granularity=ctx.granularity
    )
    sched = BatchSchedule(
        raw.starts, tuple(ctx.snap(b) for b in raw.sizes), ctx.unit, lr=ctx.lr, kind="step", params=raw.params
    )
    tail = f" ({ctx.note})" if ctx.note else ""
    return ctx.choice(sched, ID, "dynamic", f"late switch from the sweep's best fixed batch {ctx.best:.4g}" + tail,
                      dynamic=sched)  # fmt: skip
