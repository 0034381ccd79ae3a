"""Which runs to add to a batch-size sweep so that ``Bopt`` at a data budget is pinned down.

Given the runs so far and a data budget ``D`` (the amount of data the real
training run will consume), :func:`plan_sweep` reads ``Bopt(D)`` off the
envelope of the runs (:func:`dbs_theory.measure.estimators.envelope_bopt`) and
proposes the next runs by the first rule that applies:

1. Fewer than 3 batch sizes reach ``D``: extend the runs that stop short,
   nearest first to the best batch where the envelope is still identified.
2. The best batch at ``D`` is the smallest (largest) one that reached it:
   ``Bopt`` lies beyond the grid; add batches one and two grid steps past
   that edge.
3. ``Bopt`` is identified but its interval is wider than ``tol``: add runs
   where the interval says the minimum may lie -- at the estimate and at the
   interval's ends -- skipping batches the sweep already has (within a
   factor ``2**(1/4)``); when every such place is taken, the interval is
   noise-limited: repeat the batch nearest the estimate with a new seed.
4. The interval is within ``tol``: nothing to add.

Every new run goes to the budget (only runs that reach ``D`` compete at
``D``). The rules spend runs where the loss-vs-batch minimum is, instead of
spreading them over a wide uniform grid; ``sim.plan_eval`` measures the
saving on the NQM. Units: batch sizes and data in the logs' unit (tokens or
examples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .estimators import envelope_bopt, reaches

__all__ = ["Proposal", "Plan", "plan_sweep", "precision"]

#: batches closer than this factor to an existing one count as already run
NEAR = 2**0.25


@dataclass(frozen=True)
class Proposal:
    """One run to start or extend: ``batch`` (tokens/examples per step) to ``data`` (tokens/examples)."""

    batch: float
    data: float
    why: str
    extends: str | None = None  # the name of the run to continue, if any


@dataclass(frozen=True)
class Plan:
    """The state of ``Bopt`` at the budget and the runs proposed next.

    ``precision`` is the interval's larger relative half-width
    (``max(hi/bopt - 1, 1 - lo/bopt)``), ``inf`` when not identified;
    ``done`` when it is at most the tolerance asked for.
    """

    budget: float
    bopt: float
    lo: float
    hi: float
    identified: bool
    reason: str
    precision: float
    done: bool
    proposals: list = field(default_factory=list)


def precision(bopt, lo, hi):
    """Relative half-width of ``[lo, hi]`` around ``bopt``; ``inf`` when any is missing."""
    if not all(math.isfinite(v) for v in (bopt, lo, hi)) or bopt <= 0:
        return math.inf
    return max(hi / bopt - 1.0, 1.0 - lo / bopt)


def plan_sweep(runs, budget, n=3, tol=0.10, bootstrap=200, seed=0, granularity=1.0) -> Plan:
    """Propose up to ``n`` runs that most narrow ``Bopt`` at ``budget``; see the module docstring.

    Parameters
    ----------
    runs : list of Run
    budget : float       Data budget (the logs' unit).
    n : int              Most runs to propose.
    tol : float          Relative half-width of the 90% interval that counts as pinned (0.10 = +/-10%).
    granularity : float  Proposed batches are rounded to a multiple of this (e.g. the sequence length).
    """
    if not budget > 0 or not math.isfinite(budget):
        raise ValueError(f"budget={budget!r} must be a positive amount of data")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    if granularity > budget:
        raise ValueError(
            f"granularity={granularity:g} exceeds the budget {budget:g}: a run at that batch could not take one step"
        )
    reach = np.array(sorted({r.batch_size for r in runs if reaches(r, budget)}))
    env = _envelope_at(runs, budget, bootstrap, seed) if reach.size >= 3 else None
    if env is None:
        first = min(float(r.tokens[0]) for r in runs)
        why = (
            f"only {reach.size} batch size(s) reach the budget (need 3)"
            if reach.size < 3
            else f"the budget {budget:g} is not past the runs' first logged rows (the earliest is at {first:g}): "
            "no loss curve is measured there yet"
        )
        return Plan(budget, math.nan, math.nan, math.nan, False, why, math.inf, False, _extend(runs, budget, n))
    b, lo, hi, ok, reason = (
        float(env.bopt[0]),
        float(env.lo[0]),
        float(env.hi[0]),
        bool(env.identified[0]),
        env.reason[0],
    )
    prec = precision(b, lo, hi) if ok else math.inf
    if ok and prec <= tol:
        return Plan(budget, b, lo, hi, ok, reason, prec, True, [])
    ratio = float(np.exp(np.median(np.diff(np.log(reach))))) if reach.size > 1 else 2.0
    if not ok and "apart" in reason:
        best = [x for x in reach if lo < x < hi]  # the best batch, between its far-away neighbours
        cands = [math.sqrt(lo * x) for x in best] + [math.sqrt(x * hi) for x in best]
        props = _new_runs(cands, runs, budget, n, granularity, "the grid around the minimum is too coarse")
    elif not ok:
        edge = reach[0] if "below" in reason else reach[-1]
        step = 1 / ratio if "below" in reason else ratio
        cands = [edge * step, edge * step**2]
        props = _new_runs(cands, runs, budget, n, granularity, f"Bopt lies beyond the grid edge {edge:g}")
    else:
        cands = [b, lo, hi, math.sqrt(lo * b), math.sqrt(b * hi)]
        props = _new_runs(cands, runs, budget, n, granularity, "narrows the interval around the minimum")
        if not props:
            near = reach[int(np.argmin(np.abs(np.log(reach / b))))]
            props = [
                Proposal(
                    float(near),
                    budget,
                    "the grid is already dense here; another seed averages the noise that sets the interval",
                )
            ]
    if not props:
        reason += (
            f"; no batch within 2x of the ones wanted ({', '.join(f'{c:.3g}' for c in cands[:3])}) is a "
            f"multiple of the granularity {granularity:g} and takes a step within the budget"
        )
    return Plan(budget, b, lo, hi, ok, reason, prec, False, props)


def _envelope_at(runs, budget, bootstrap, seed):
    env = envelope_bopt(runs, [budget], bootstrap=bootstrap, seed=seed)
    return env if np.isfinite(env.loss[0]) else None


def _new_runs(cands, runs, budget, n, granularity, why):
    """Proposals for the candidate batches, first ``n``: a batch near one that already reaches the
    budget (within ``NEAR``) or near one already chosen is skipped; near a run that stops short, that
    run is extended; otherwise a new run, rounded to ``granularity``."""
    out, taken = [], [r.batch_size for r in runs if reaches(r, budget)]
    for c in cands:
        if not math.isfinite(c) or c <= 0:
            continue
        b = max(granularity, granularity * round(c / granularity))
        if b > budget or max(b / c, c / b) > 2:  # not one step within the budget, or rounded to another batch
            continue
        if any(max(b / t, t / b) < NEAR for t in taken):
            continue
        short = [r for r in runs if max(b / r.batch_size, r.batch_size / b) < NEAR]
        taken.append(b)
        if short:
            r = max(short, key=lambda r: r.tokens[-1])
            out.append(Proposal(r.batch_size, float(budget), why, extends=r.name))
        else:
            out.append(Proposal(float(b), float(budget), why))
        if len(out) == n:
            break
    return out


def _extend(runs, budget, n):
    """Runs that stop short of the budget, those nearest the current best batch first."""
    short = [r for r in runs if not reaches(r, budget)]
    if not short:
        return []
    last = max(float(r.tokens[-1]) for r in short)
    env = envelope_bopt(runs, [last], bootstrap=0) if len({r.batch_size for r in runs}) >= 3 else None
    best = (
        float(env.bopt[0]) if env is not None and env.identified[0] else float(np.median([r.batch_size for r in short]))
    )
    short.sort(key=lambda r: (abs(math.log(r.batch_size / best)), -r.tokens[-1]))
    out, seen = [], set()
    for r in short:
        if r.batch_size in seen:
            continue
        seen.add(r.batch_size)
        out.append(
            Proposal(r.batch_size, float(budget), f"stops at {r.tokens[-1]:.4g}, short of the budget", extends=r.name)
        )
        if len(out) == n:
            break
    return out
