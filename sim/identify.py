"""Which sweep designs identify Bmin and Bopt? A study on the NQM, where the truth is known.

For each design (a log grid of batch sizes, every run truncated at the same
data budget, as real sweeps are) and each noise level (the exact expected
loss; Monte Carlo SGD with one seed per batch; the mean of four seeds), the
estimators of :func:`dbs_theory.measure.tabulate.bopt_table` -- the envelope Bopt,
the floor Bmin and the three-phase fit's Bmin and Bopt -- are run and scored
against the exact answers (``sim.bopt`` and ``numeric.bmin``): how often each
is identified, its bias and spread (relative error), and how often its 90%
bootstrap interval covers the truth.

Units: batch sizes and data in examples, ``eta`` the fixed learning rate.
"""

from __future__ import annotations

import math

import numpy as np

from dbs_theory.theory import numeric
from dbs_theory.measure.tabulate import SOURCES, bopt_table
from dbs_theory.logs.runs import Run

from .frontier import bopt as exact_bopt
from .nqm import NQM
from .trainer_logs import exact_log, mc_log

__all__ = ["DESIGNS", "design_batches", "exact_runs", "mc_runs", "score", "study", "QUANTITIES"]

#: name -> (grid ratio, number of batch sizes, smallest batch)
DESIGNS = {
    "2x, 12 sizes": (2.0, 12, 1.0),
    "sqrt2, 16 sizes": (math.sqrt(2), 16, 1.0),
    "1.5x, 12 sizes": (1.5, 12, 2.0),
    "2x, 8 sizes from 4": (2.0, 8, 4.0),
}

#: table column -> (label, which truth it estimates): every estimator of the table (law-free first)
QUANTITIES = {
    SOURCES[q][i][0]: (f"{q.capitalize()}, {SOURCES[q][i][1].removesuffix(' fit').removeprefix('loss ')}", q)
    for i in (0, 1)
    for q in ("bopt", "bmin")
}


def design_batches(ratio, n, lo):
    """``lo, lo r, lo r^2, ...`` (``n`` batch sizes, examples)."""
    return lo * float(ratio) ** np.arange(int(n))


def exact_runs(nqm: NQM, eta, batches, budget, points=400, spacing="linear"):
    """One exact expected-loss log per batch, each to ``budget`` examples, logged as a trainer logs
    (``spacing="linear"``: every ``steps // points`` steps; ``"log"``: ``points`` log-spaced steps)."""
    return [exact_log(nqm, eta, B, data=budget, spacing=spacing, points=points, name=f"b{B:.4g}") for B in batches]


def mc_runs(nqm: NQM, eta, batches, budget, replicas, seeds_per_run, seed=0, points=400, spacing="linear"):
    """``replicas // seeds_per_run`` noisy sweeps: each run the mean of ``seeds_per_run`` SGD replicas,
    logged as :func:`exact_runs` logs."""
    reps = replicas // seeds_per_run
    sweeps = [[] for _ in range(reps)]
    for i, B in enumerate(batches):
        steps = max(1, int(math.ceil(budget / B)))
        st, D, loss = mc_log(
            nqm, eta, B, steps, replicas=reps * seeds_per_run, seed=seed + 7919 * i, spacing=spacing, points=points
        )
        loss = loss.reshape(reps, seeds_per_run, -1).mean(axis=1)
        for r in range(reps):
            sweeps[r].append(Run(f"b{B:.4g}", float(B), st, D, loss[r]))
    return sweeps


def score(table, truth):
    """Per quantity: identified flags, relative errors and interval coverage at each target."""
    out = {}
    for key, (_, kind) in QUANTITIES.items():
        ident, err, cover = [], [], []
        for e in table.estimates(kind, key):
            true = truth[kind][e.target]
            ok = e.identified and math.isfinite(true)
            ident.append(ok)
            if ok:
                err.append(e.value / true - 1)
                if e.has_interval:
                    cover.append(e.lo <= true <= e.hi)
        out[key] = dict(identified=ident, errors=err, covered=cover)
    return out


def _truth(nqm, eta, targets):
    bmin = {t: float(numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, t, nqm.L_irr)) for t in targets}
    bopt = {t: exact_bopt(nqm, eta, t) for t in targets}
    return dict(bmin=bmin, bopt=bopt)


def _summary(design, noise, scores):
    rows = []
    for key, (label, _) in QUANTITIES.items():
        ident = np.concatenate([s[key]["identified"] for s in scores])
        err = np.concatenate([s[key]["errors"] for s in scores]) if ident.any() else np.array([])
        cov = np.concatenate([s[key]["covered"] for s in scores]) if ident.any() else np.array([])
        rows.append(
            dict(
                design=design,
                noise=noise,
                quantity=label,
                n=int(ident.size),
                identified=float(ident.mean()),
                bias=float(np.median(err)) if err.size else math.nan,
                spread=float(np.median(np.abs(err - np.median(err)))) if err.size else math.nan,
                max_error=float(np.max(np.abs(err))) if err.size else math.nan,
                coverage=float(cov.mean()) if cov.size else math.nan,
                n_intervals=int(cov.size),
            )
        )
    return rows


def study(nqm: NQM, eta, budget, designs=None, replicas=16, bootstrap=100, seed=0, n_targets=5, progress=False):
    """Score every estimator on every design and noise level; a list of summary rows.

    Targets (``n_targets``, log-spaced) run from half the initial loss down
    to 10% above the lowest loss the exact sweep of the first design reaches.
    Noise levels: ``exact``; ``1 seed`` (``replicas`` repetitions); ``4 seeds``
    (``replicas // 4`` repetitions of four-seed means).
    """
    from tqdm.auto import tqdm

    designs = designs or DESIGNS
    first = exact_runs(nqm, eta, design_batches(*next(iter(designs.values()))), budget)
    low = min(float(r.loss.min()) for r in first)
    targets = np.geomspace(0.5 * nqm.initial_loss(), 1.1 * low, n_targets)
    truth = _truth(nqm, eta, targets)
    rows = []
    for name, spec in tqdm(designs.items(), desc="designs", disable=not progress):
        batches = design_batches(*spec)
        runs = exact_runs(nqm, eta, batches, budget)
        rows += _summary(name, "exact", [score(bopt_table(runs, targets, bootstrap=0), truth)])
        for noise, per in (("1 seed", 1), ("4 seeds", 4)):
            sweeps = mc_runs(nqm, eta, batches, budget, replicas, per, seed)
            scores = [
                score(bopt_table(s, targets, bootstrap=bootstrap, seed=seed + k), truth) for k, s in enumerate(sweeps)
            ]
            rows += _summary(name, noise, scores)
    return rows, targets
