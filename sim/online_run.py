"""An online batch rule run on the NQM as the trainer runs it: one SGD replica that reports its own readings.

``dbs train --batch-rule`` lets an :class:`~dbs_theory.rules.online.OnlineRule`
choose the batch from what the run measures: after each step the step's loss
and the moving average of the two-batch noise scale ``B_simple``
(:class:`~dbs_theory.measure.gns.GNSEstimator`), a decision every ``every`` data.
:func:`online_run` drives the same object with a Monte Carlo SGD replica on
the NQM -- ``theta <- theta - eta (h theta + noise)``, the noise of a batch of
``B`` examples ``N(0, c / B)`` per mode, ``micro`` micro-batches per step whose
first one is the small batch of the two-batch estimate -- so the rule reads
the replica's loss ``L_irr + 1/2 sum h theta^2`` and its measured ``B_simple``,
never the expected state.

Units: examples; the learning rate follows the run's :class:`~dbs_theory.schedules.lr_plan.LRPlan`.
"""

from __future__ import annotations

import math

import numpy as np

from dbs_theory.measure.gns import GNSEstimator

from .nqm import NQM

__all__ = ["online_run"]


def online_run(nqm: NQM, eta: float, plan, horizon: float, rule, seed: int = 0, micro: int = 4):
    """Run ``rule`` (an :class:`OnlineRule`, examples) on one SGD replica of ``nqm`` to ``horizon`` examples under
    ``plan`` at peak rate ``eta``; returns the rule's schedule (a step :class:`BatchSchedule`, examples)."""
    if micro < 2:
        raise ValueError(f"micro={micro!r}: the two-batch estimate needs at least 2 micro-batches per step")
    full = nqm.expanded()
    h, c = full.h, full.c
    rng = np.random.default_rng(seed)
    mean = np.zeros_like(h) if full.mean0 is None else full.mean0
    theta = mean + np.sqrt(np.maximum(full.m0 - mean**2, 0.0)) * rng.standard_normal(h.size)
    lr = plan.schedule(float(eta), float(horizon))
    rate = (lambda D: float(lr(D))) if callable(lr) else (lambda D: float(lr))
    gns = GNSEstimator()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging rule (noise-scale) overflows: it stops below
        return _run(rule, theta, h, c, full.L_irr, rate, gns, horizon, micro, rng)


def _run(rule, theta, h, c, L_irr, rate, gns, horizon, micro, rng):
    """The step loop of :func:`online_run`."""
    D = 0.0
    while D < horizon:
        B = float(rule.batch_for(D))
        g = h * theta + np.sqrt(c * micro / B) * rng.standard_normal((micro, h.size))
        step = g.mean(axis=0)
        gns.update(float(g[0] @ g[0]), B / micro, float(step @ step), B)
        theta -= rate(D) * step
        D += B
        loss = L_irr + 0.5 * float(h @ theta**2)
        if not math.isfinite(loss):
            break  # diverged: the schedule so far is what the rule chose
        rule.observe(loss, gns.value)
        if rule.due(D) and D < horizon:
            rule.decide(D)
    return rule.schedule("examples")
