"""Does the sweep planner save runs? A comparison on the NQM, where ``Bopt`` is known.

Two ways to pin ``Bopt`` at a data budget to a relative tolerance:

* **plain grids**: a log grid over ``[lo, hi]`` with ratio 2; when its 90%
  interval is still wider than the tolerance, the next denser grid (ratio
  ``sqrt 2``, then ``2**(1/4)``) is run from scratch -- what a user without a
  planner does.
* **planner**: a coarse grid (ratio 8) over the same range, then rounds of
  :func:`dbs_theory.measure.planner.plan_sweep` proposals, each simulated, until the
  interval is within the tolerance.

Every run is an exact expected-loss log to the budget, or (``noise="mc"``)
one Monte Carlo SGD run with its own seed; a proposal that extends a run
costs only the extra data. With noise the plain grids get more seeds per
batch instead of denser grids (the noise, not the grid, limits them). Reported per spectrum: runs, total
data (examples), the final estimate and its error against the exact best
fixed batch (``sim.schedule_eval.best_fixed_batch``).
"""

from __future__ import annotations

import numpy as np

from dbs_theory.measure.planner import plan_sweep

from dbs_theory.logs.runs import Run

from .identify import design_batches, exact_runs
from .montecarlo import monte_carlo
from .schedule_eval import nqm_best_fixed_batch

__all__ = ["compare", "grid_sweep", "planned_sweep", "SPECTRA"]

#: name -> constructor arguments for :class:`sim.nqm.NQM`
SPECTRA = {
    "zhang2019": ("zhang2019", {}),
    "power law, alpha 1.5": ("power_law", {"alpha": 1.5}),
    "power law, alpha 2.0": ("power_law", {"alpha": 2.0}),
}


def _log_grid(lo, hi, ratio):
    """The batches ``lo, lo r, lo r^2, ...`` up to ``hi``."""
    return design_batches(ratio, int(np.floor(np.log(hi / lo) / np.log(ratio) + 1e-9)) + 1, lo)


class _Maker:
    """Makes runs of one kind (exact or Monte Carlo), each Monte Carlo run with a fresh seed."""

    def __init__(self, nqm, eta, noise, seed=0, points=400):
        self.nqm, self.eta, self.noise, self.seed, self.points = nqm, eta, noise, seed, points

    def __call__(self, batches, budget):
        if self.noise == "exact":
            return exact_runs(self.nqm, self.eta, batches, budget, self.points)
        out = []
        for B in batches:
            self.seed += 1
            steps = max(1, int(np.ceil(budget / B)))
            mc = monte_carlo(
                self.nqm,
                self.eta,
                B,
                steps=steps,
                replicas=1,
                seed=self.seed,
                record_every=max(1, steps // self.points),
            )
            out.append(Run(f"b{B:.4g}s{self.seed}", float(B), mc.step.astype(float), mc.D.astype(float), mc.loss[0]))
        return out


def grid_sweep(make, budget, lo, hi, tol, bootstrap=200):
    """Plain grids until one pins ``Bopt``: ratio 2, sqrt 2, 2**(1/4) (exact), or the ratio-2 grid with
    1, 2, 4 and 8 seeds per batch (noisy); ``(runs, data, plan)`` summed over the grids run."""
    exact = make.noise == "exact"
    designs = [(r, 1) for r in (2.0, 2**0.5, 2**0.25)] if exact else [(2.0, k) for k in (1, 2, 4, 8)]
    n_runs, data, plan = 0, 0.0, None
    for ratio, seeds in designs:
        runs = [r for _ in range(seeds) for r in make(_log_grid(lo, hi, ratio), budget)]
        n_runs += len(runs)
        data += budget * len(runs)
        plan = plan_sweep(runs, budget, tol=tol, bootstrap=bootstrap)
        if plan.done:
            break
    return n_runs, data, plan


def planned_sweep(make, budget, lo, hi, tol, per_round=3, max_runs=120, bootstrap=200):
    """A ratio-8 grid, then planner rounds; ``(runs, data, plan)``."""
    runs = make(_log_grid(lo, hi, 8.0), budget)
    n_runs, data = len(runs), budget * len(runs)
    plan = plan_sweep(runs, budget, n=per_round, tol=tol, bootstrap=bootstrap)
    while not plan.done and plan.proposals and n_runs < max_runs:
        for p in plan.proposals:
            new = make([p.batch], p.data)[0]
            if p.extends is not None:  # a continued run: the same seed's log, now to the budget
                old = next(r for r in runs if r.name == p.extends)
                new = Run(old.name, new.batch_size, new.step, new.tokens, new.loss)
                data += p.data - float(old.tokens[-1])
                runs = [r for r in runs if r.name != p.extends]
            else:
                data += p.data
                n_runs += 1
            runs.append(new)
        plan = plan_sweep(runs, budget, n=per_round, tol=tol, bootstrap=bootstrap)
    return n_runs, data, plan


def compare(
    d=1000, eta=0.5, budget=1e5, lo=1.0, hi=4096.0, tol=0.10, spectra=None, noise="exact", seed=0, progress=False
):
    """One row per spectrum and method: runs, data, estimate, interval and error."""
    from tqdm.auto import tqdm

    from .nqm import NQM

    rows = []
    for name, (ctor, kw) in tqdm((spectra or SPECTRA).items(), desc="spectra", disable=not progress):
        nqm = getattr(NQM, ctor)(d, **kw)
        truth = nqm_best_fixed_batch(nqm, eta, budget)[0]
        for method, fn in (("plain grids", grid_sweep), ("planner", planned_sweep)):
            n_runs, data, plan = fn(_Maker(nqm, eta, noise, seed), budget, lo, hi, tol)
            rows.append(
                dict(
                    spectrum=name,
                    method=method,
                    noise=noise,
                    runs=n_runs,
                    data=data,
                    done=plan.done,
                    bopt=plan.bopt,
                    lo=plan.lo,
                    hi=plan.hi,
                    exact=truth,
                    error=plan.bopt / truth - 1 if plan.identified else float("nan"),
                )
            )
    return rows
