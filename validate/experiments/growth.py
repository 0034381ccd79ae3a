"""``dbs validate growth``: do loss curves cross, and does ``Bopt`` grow with data? Paired over fresh seeds.

The sweep shows both on one seed, where a crossing of two noisy curves or a
rise of a noisy ``Bopt`` can be chance. Here three fixed batch sizes
``b1 < b2 < b3`` are chosen from the sweep (seed 0) and compared on fresh
seeds (the tier's seeds plus one), each arm sharing its seed's
initialisation and data order, at an early data amount ``D1`` (past the
warmup) and at the budget ``D2``; every comparison reads the final
validation loss on the large held-out slice (``final_eval_tokens``), so a
run is trained to ``D1`` and, for ``b2`` and ``b3``, also to ``D2``.

- **Curves cross**: ``b2`` is ahead of ``b3`` at ``D1`` and behind it at
  ``D2`` (both paired intervals exclude zero the claimed way).
- **Bopt grows**: ``b1`` is ahead of ``b2`` at ``D1`` and ``b3`` ahead of
  ``b2`` at ``D2``. Where the loss at fixed data has one minimum in ``B``
  (quasi-convex), the first puts ``Bopt(D1)`` below ``b2`` and the second
  ``Bopt(D2)`` above it: ``Bopt(D1) < b2 < Bopt(D2)``.

The choice (:func:`choose_batches`): ``b1`` is the batch nearest the sweep's
envelope ``Bopt(D1)`` at most ``b2 / 2``, ``b3`` the one nearest ``Bopt(D2)``
at least ``2 b2``, and ``b2`` the batch whose smaller lead on the sweep is
largest. Data amounts and batch sizes are tokens; losses nats.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dbs_theory.estimators import envelope_bopt
from dbs_theory.runs import load_runs
from dbs_theory.table import format_table
from dbs_theory.verdicts import Claim, all_of, paired_interval, verdict

from .common import Experiment, config_for, final_val, loss_near, micro_for
from .runner import RunSpec, train_runs

__all__ = ["data_points", "choose_batches", "sweep_gaps", "specs", "claims", "run"]


def data_points(tier) -> tuple:
    """``(D1, D2)``, tokens: an early amount past twice the warmup (at least 1/24 of the budget), and the
    budget."""
    return float(max(2 * tier.warmup, tier.budget / 24)), float(tier.budget)


def choose_batches(grid, bopt_early: float, bopt_late: float, gaps=None) -> tuple:
    """``(b1, b2, b3)`` from the tier's ``grid`` (tokens) and the sweep's ``Bopt`` at ``D1`` and ``D2``.

    For each candidate ``b2`` (a batch with one at most ``b2 / 2`` and one at
    least ``2 b2``), ``b1`` is the batch nearest ``bopt_early`` (in log) among
    those at most ``b2 / 2`` and ``b3`` the batch nearest ``bopt_late`` among
    those at least ``2 b2``. ``gaps(b1, b2, b3)``, if given, is the smaller of
    the two leads the claims test as the sweep measured them (``L(b2, D1) -
    L(b1, D1)`` and ``L(b2, D2) - L(b3, D2)``, NaN where its runs do not
    reach): the candidate with the largest is chosen, so the fresh seeds test
    the design the sweep makes most decisive. Otherwise (or when no gap is
    finite) ``b2`` is the candidate nearest ``sqrt(bopt_early * bopt_late)``.
    Raises ``ValueError`` when the grid spans less than 4x.
    """
    grid = sorted(float(b) for b in grid)
    if not (math.isfinite(bopt_early) and math.isfinite(bopt_late) and bopt_early > 0 and bopt_late > 0):
        raise ValueError(f"the sweep's Bopt at D1 and D2 must be positive; got {bopt_early!r}, {bopt_late!r}")
    middle = [b for b in grid if grid[0] <= b / 2 and b * 2 <= grid[-1]]
    if not middle:
        raise ValueError(f"the batch grid {grid[0]:g}..{grid[-1]:g} spans less than 4x: no b1 <= b2/2, b3 >= 2 b2")
    near = lambda xs, x: min(xs, key=lambda b: (abs(math.log(b / x)), b))
    triple = lambda b2: (near([b for b in grid if b <= b2 / 2], bopt_early), b2,
                         near([b for b in grid if b >= 2 * b2], bopt_late))
    scored = [(g, b2) for b2 in middle if gaps is not None and math.isfinite(g := gaps(*triple(b2)))]
    b2 = max(scored)[1] if scored else near(middle, math.sqrt(bopt_early * bopt_late))
    return triple(b2)


def _label(B, D, seed):
    return f"b{B:g}-d{D:g}-s{seed}"


def specs(tier, batches, seeds) -> list:
    """The runs: each seed trains ``b1``, ``b2``, ``b3`` to ``D1`` and ``b2``, ``b3`` to ``D2``."""
    (b1, b2, b3), (D1, D2) = batches, data_points(tier)
    out = []
    for seed in seeds:
        for B, D in ((b1, D1), (b2, D1), (b3, D1), (b2, D2), (b3, D2)):
            out.append(RunSpec(_label(B, D, seed), config_for(tier, D, batch=B, micro=micro_for(tier, B), seed=seed)))
    return out


def claims(early, late) -> list:
    """The two claims from final validation losses per seed: ``early = (L(b1), L(b2), L(b3))`` at ``D1`` and
    ``late = (L(b2), L(b3))`` at ``D2``, each a sequence over seeds (same seed order everywhere).

    Differences are arranged so that the claimed sign is positive.
    """
    e1, e2, e3 = (np.asarray(x, float) for x in early)
    l2, l3 = (np.asarray(x, float) for x in late)
    small_ahead = paired_interval(e2 - e1)   # b1 ahead of b2 early
    mid_ahead = paired_interval(e3 - e2)     # b2 ahead of b3 early
    large_ahead = paired_interval(l2 - l3)   # b3 ahead of b2 late
    v_late = verdict(large_ahead)
    cross = Claim("Loss-vs-data curves of different batch sizes cross (the classical law forbids it)",
                  f"b2 ahead of b3 at D1 by {mid_ahead.text()}; b3 ahead of b2 at D2 by {large_ahead.text()}",
                  all_of(verdict(mid_ahead), v_late), large_ahead)
    grows = Claim("Bopt grows with data: Bopt(D1) < b2 < Bopt(D2)",
                  f"b1 ahead of b2 at D1 by {small_ahead.text()}; b3 ahead of b2 at D2 by {large_ahead.text()}",
                  all_of(verdict(small_ahead), v_late), small_ahead)
    return [cross, grows]


def _sweep_design(tier, root, jobs, progress):
    """``(batches, bopt, reasons)`` from the sweep (seed 0): its envelope ``Bopt`` at ``D1`` and ``D2`` (the grid
    edge where it lies outside) and the batches :func:`choose_batches` picks with the sweep's own leads."""
    from . import ensure

    folder = ensure("sweep", tier, root, jobs, progress)
    runs = [load_runs(f)[0] for f in sorted((Path(folder) / "logs").glob("*.csv"))]
    D = data_points(tier)
    env = envelope_bopt(runs, np.array(D), bootstrap=0)
    bopt = []
    for j in range(2):
        b = env.bopt[j] if env.identified[j] else (env.hi[j] if np.isfinite(env.hi[j]) else env.lo[j])
        bopt.append(float(b) if np.isfinite(b) else float(np.sqrt(min(tier.batches) * max(tier.batches))))
    return choose_batches(tier.batches, *bopt, gaps=sweep_gaps(runs, *D)), bopt, [r or "located" for r in env.reason]


def sweep_gaps(runs, D1, D2):
    """``gaps(b1, b2, b3)`` for :func:`choose_batches` from one run per batch: the smaller of ``L(b2, D1) -
    L(b1, D1)`` and ``L(b2, D2) - L(b3, D2)`` (training loss averaged over the last 5% before each amount),
    NaN when a run is missing or stops short of the data it is compared at."""
    by_batch = {float(r.batch_size): r for r in runs}

    def L(B, d):
        r = by_batch.get(float(B))
        return loss_near(r, d) if r is not None and r.tokens[-1] >= 0.999 * d else math.nan

    return lambda b1, b2, b3: float(np.min([L(b2, D1) - L(b1, D1), L(b2, D2) - L(b3, D2)]))  # NaN if either is


def run(tier, root, jobs=None, progress=True):
    batches, (be, bl), why = _sweep_design(tier, root, jobs, progress)
    seeds = [s + 1 for s in tier.seeds]  # fresh: the sweep that chose the batches ran seed 0
    exp = Experiment(root, "growth", tier)
    sp = specs(tier, batches, seeds)
    dirs = train_runs(root, sp, jobs or tier.jobs, progress, desc="growth")
    runs = exp.collect(sp, dirs)
    (b1, b2, b3), (D1, D2) = batches, data_points(tier)
    val = lambda B, D: [final_val(runs[_label(B, D, s)]) for s in seeds]
    early, late = [val(b, D1) for b in batches], [val(b, D2) for b in (b2, b3)]
    rows = [dict(arm=f"b{i}", batch=B, data=D, val_mean=float(np.mean(v)), val_sd=float(np.std(v, ddof=1)),
                 seeds=len(v)) for i, B, D, v in ((1, b1, D1, early[0]), (2, b2, D1, early[1]), (3, b3, D1, early[2]),
                                                  (2, b2, D2, late[0]), (3, b3, D2, late[1]))]
    md = ("```\n" + format_table(rows, ["arm", "batch", "data", "val_mean", "val_sd", "seeds"]) + "\n```\n\n"
          f"Batches chosen from the sweep's envelope Bopt at D1 = {D1:g} ({be:.4g} tokens; {why[0]}) and "
          f"D2 = {D2:g} ({bl:.4g}; {why[1]}) and the sweep's leads (the b2 whose smaller lead on the sweep is "
          f"largest): b1 = {b1:g}, b2 = {b2:g}, b3 = {b3:g}. Seeds {seeds} "
          "(fresh: the sweep ran seed 0). Final validation loss on the large held-out slice.")
    data = dict(batches=list(batches), data=[D1, D2], seeds=seeds, sweep_bopt=[be, bl],
                val_loss=dict(early=early, late=late))
    return exp.write(claims(early, late), data, [("Final validation loss per arm (mean and sd over seeds)", md)])
