"""``fixed``: the sweep's best fixed batch at the horizon (or at the sweep's last data)."""

from __future__ import annotations

from .choice import RuleContext, ScheduleChoice

__all__ = ["ID", "TITLE", "choose"]

ID, TITLE = "fixed", "the sweep's best fixed batch"


def choose(ctx: RuleContext) -> ScheduleChoice:
    tail = f" ({ctx.note})" if ctx.note else ""
    reason = f"the sweep's best fixed batch at D={ctx.best_at:.4g}{tail}"
    return ctx.choice(ctx.fixed, ID, "fixed", reason, dynamic=ctx.fixed)
