"""NQM loss logs written the way trainers write them: one row every K steps (or log-spaced, as a case).

Real trainers log a row every ``K`` optimizer steps, so a run's rows are
linear in steps; the estimators must give the same answers on such logs as on
log-spaced ones (docs/conventions.md, "Smoothing a loss log"). These helpers
choose the logged steps and read the exact expected loss (closed form, at
fixed batch and learning rate) or a Monte Carlo SGD run there.

Units: steps are optimizer steps; ``tokens`` in a :class:`~dbs_theory.logs.runs.Run`
holds examples (``step x batch_size``).
"""

from __future__ import annotations

import math

import numpy as np

from dbs_theory.logs.runs import Run

from .frontier import loss_at_steps
from .montecarlo import monte_carlo
from .nqm import NQM

__all__ = ["SPACINGS", "logged_steps", "exact_log", "mc_log"]

#: how a log's rows are placed: every K steps, or at log-spaced steps
SPACINGS = ("linear", "log")


def logged_steps(steps, every=None, spacing="linear", points=400):
    """The steps ``0..steps`` at which a row is written (step 0 and the last step always).

    ``spacing="linear"``: every ``every`` steps (default ``steps // points``,
    at least 1), as trainers log. ``"log"``: ``points`` log-spaced steps from 1.
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps={steps} must be a positive number of steps")
    if spacing == "linear":
        every = max(1, steps // points) if every is None else int(every)
        if every < 1:
            raise ValueError(f"every={every} must be a positive number of steps")
        grid = np.arange(0, steps + 1, every)
    elif spacing == "log":
        grid = np.round(np.geomspace(1, steps, int(points)))
    else:
        raise ValueError(f"spacing={spacing!r} must be one of {', '.join(SPACINGS)}")
    return np.unique(np.r_[0, grid, steps]).astype(float)


def exact_log(
    nqm: NQM, eta, batch_size, steps=None, data=None, every=None, spacing="linear", points=400, name=None
) -> Run:
    """A :class:`Run` holding the exact expected loss at the logged steps of a fixed-batch run.

    The run lasts ``steps`` optimizer steps, or ``ceil(data / batch_size)``
    (until at least ``data`` examples are consumed).
    """
    B = float(batch_size)
    total = int(steps) if steps is not None else max(1, int(math.ceil(float(data) / B - 1e-9)))
    st = logged_steps(total, every, spacing, points)
    return Run(
        name or f"b{B:.6g}", B, st, st * B, loss_at_steps(nqm, float(eta), B, st), {"lr": np.full(st.size, float(eta))}
    )


def mc_log(nqm: NQM, eta, batch_size, steps, replicas=1, seed=0, every=None, spacing="linear", points=400):
    """``(steps, tokens, loss)`` of ``replicas`` Monte Carlo SGD runs at the logged steps (loss: replicas x rows)."""
    st = logged_steps(steps, every, spacing, points)
    if spacing == "linear" and st.size > 2:
        k = int(st[1] - st[0])
        mc = monte_carlo(nqm, eta, float(batch_size), int(steps), replicas=replicas, seed=seed, record_every=k)
        return mc.step.astype(float), mc.D.astype(float), mc.loss
    mc = monte_carlo(nqm, eta, float(batch_size), int(steps), replicas=replicas, seed=seed, record_every=1)
    idx = np.searchsorted(mc.step, st)
    return st, mc.D[idx].astype(float), mc.loss[:, idx]
