"""``paper``: the paper's rule on the measured ``Bopt(D)``
(:func:`dbs_theory.rules.envelope.schedule_from_envelope`)."""

from __future__ import annotations

from .choice import RuleContext, ScheduleChoice

__all__ = ["ID", "TITLE", "choose"]

ID, TITLE = "paper", "the paper's rule on the measured Bopt(D)"


def choose(ctx: RuleContext) -> ScheduleChoice:
    from .envelope import schedule_from_envelope

    got = schedule_from_envelope(
        ctx.env,
        ctx.horizon,
        unit=ctx.unit,
        granularity=ctx.granularity,
        min_batch=ctx.min_batch,
        max_batch=ctx.max_batch,
        lr=ctx.lr,
        interval=ctx.options.get("interval"),
        momentum=ctx.options.get("momentum", 1.0),
        extrapolate=ctx.options.get("extrapolate", False),
    )
    return ctx.choice(got.schedule, ID, got.recommendation, got.reason, dynamic=got.dynamic, curve=got.curve)
