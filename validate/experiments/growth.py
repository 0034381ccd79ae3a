"""``dbs validate growth``: do loss curves cross, and does ``Bopt`` grow with data? Paired over fresh seeds.

The sweep shows both on one seed, where a crossing of two noisy curves or a
rise of a noisy ``Bopt`` can be chance. This experiment trains three batches
``b1 < b2 < b3`` under fresh paired seeds (:func:`fresh_seeds`) to an early amount ``D1``
(past the warmup) and ``b2``, ``b3`` on to the budget ``D2``, and compares
final validation losses on the large held-out slice (``final_eval_tokens``),
each pair sharing its seed's initialisation and data order. Seed 0 is left
out: the sweep that chose the batches ran it.

- **Curves cross**: ``b2`` is ahead of ``b3`` at ``D1`` and behind it at
  ``D2`` (both paired intervals exclude zero the claimed way).
- **Bopt grows**: ``b1`` is ahead of ``b2`` at ``D1`` and ``b3`` ahead of
  ``b2`` at ``D2``. Where the loss at fixed data has one minimum in ``B``
  (quasi-convex), the first puts ``Bopt(D1)`` below ``b2`` and the second
  ``Bopt(D2)`` above it: ``Bopt(D1) < b2 < Bopt(D2)``.

The batches (:func:`choose_batches`): ``b3`` is the schedule experiment's
best fixed batch (its runs to ``D2`` are cached), ``b1`` the grid batch
nearest the sweep's envelope ``Bopt(D1)`` at most ``b3 / 4``, and ``b2`` the
grid batch nearest their geometric mean, at least ``2 b1`` and at most
``b3 / 2``: both comparisons then span the same factor in batch size. (A
``b2`` near ``Bopt(D1)`` cannot show ``b1`` ahead of it: the loss at fixed
data is flat around its minimum; the CPU tier's first design, ``b2`` = the
schedule's mid-range batch 768 against ``b1`` = 256, did exactly that.)
Every batch is whole micro-batches. When the best fixed batch leaves no room
below it, ``b3`` is the grid batch nearest the sweep's ``Bopt(D2)`` at least
4 times the smallest one. Data amounts and batch sizes are tokens; losses
nats.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dbs_theory.measure.estimators import envelope_bopt
from dbs_theory.logs.runs import load_runs
from dbs_theory.table import format_table
from dbs_theory.measure.verdicts import Claim, all_of, paired_interval, verdict

from .common import Experiment, config_for, final_val
from .runner import RunSpec, train_runs

__all__ = ["data_points", "fresh_seeds", "nearest_batch", "choose_batches", "specs", "claims", "run"]


def data_points(tier) -> tuple:
    """``(D1, D2)``, tokens: an early amount past twice the warmup (at least 1/24 of the budget), and the
    budget."""
    return float(max(2 * tier.warmup, tier.budget / 24)), float(tier.budget)


def fresh_seeds(tier) -> list:
    """The experiment's seeds: the tier's ``growth_seeds`` (or, when empty, its ``seeds``) without seed 0, which
    the sweep that chose the batches ran."""
    return [s for s in (tier.growth_seeds or tier.seeds) if s != 0]


def nearest_batch(grid, target: float, granularity: float, lo: float = 0.0, hi: float = math.inf) -> float:
    """The batch of ``grid`` nearest ``target`` (in log) among the multiples of ``granularity`` in ``[lo, hi]``
    (tokens). Raises ``ValueError`` when there is none or ``target`` is not positive."""
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"the sweep's Bopt must be positive; got {target!r}")
    cand = [float(b) for b in grid if lo <= b <= hi and b % granularity == 0]
    if not cand:
        raise ValueError(f"no batch of the grid lies in [{lo:g}, {hi:g}] tokens and is a multiple of {granularity:g}")
    return min(cand, key=lambda b: (abs(math.log(b / target)), b))


def _label(B, D, seed):
    return f"b{B:g}-d{D:g}-s{seed}"


def specs(tier, batches, seeds) -> list:
    """The runs: each seed trains ``b1``, ``b2``, ``b3`` to ``D1`` and ``b2``, ``b3`` to ``D2`` (the last two are
    the config of the schedule experiment's fixed arms, so its run of ``b3`` is cached)."""
    (b1, b2, b3), (D1, D2) = batches, data_points(tier)
    cfg = lambda B, D, seed: config_for(tier, D, batch=B, micro=tier.dyn_micro, seed=seed)
    return [
        RunSpec(_label(B, D, seed), cfg(B, D, seed))
        for seed in seeds
        for B, D in ((b1, D1), (b2, D1), (b3, D1), (b2, D2), (b3, D2))
    ]


def claims(early, late) -> list:
    """The two claims from final validation losses per seed: ``early = (L(b1), L(b2), L(b3))`` at ``D1`` and
    ``late = (L(b2), L(b3))`` at ``D2``, each a sequence over seeds (same seed order everywhere).

    Differences are arranged so that the claimed sign is positive.
    """
    e1, e2, e3 = (np.asarray(x, float) for x in early)
    l2, l3 = (np.asarray(x, float) for x in late)
    small_ahead = paired_interval(e2 - e1)  # b1 ahead of b2 early
    mid_ahead = paired_interval(e3 - e2)  # b2 ahead of b3 early
    large_ahead = paired_interval(l2 - l3)  # b3 ahead of b2 late
    v_late = verdict(large_ahead)
    cross = Claim(
        "Loss-vs-data curves of different batch sizes cross (the classical law forbids it)",
        f"b2 ahead of b3 at D1 by {mid_ahead.text()}; b3 ahead of b2 at D2 by {large_ahead.text()}",
        all_of(verdict(mid_ahead), v_late),
        large_ahead,
    )
    grows = Claim(
        "Bopt grows with data: Bopt(D1) < b2 < Bopt(D2)",
        f"b1 ahead of b2 at D1 by {small_ahead.text()}; b3 ahead of b2 at D2 by {large_ahead.text()}",
        all_of(verdict(small_ahead), v_late),
        small_ahead,
    )
    return [cross, grows]


def choose_batches(grid, bopt, best_fixed, granularity) -> tuple:
    """``(b1, b2, b3)``, tokens, from the grid, the sweep's ``bopt = (Bopt(D1), Bopt(D2))`` and the schedule's
    best fixed batch (see the module doc). Raises ``ValueError`` when the grid has no room for three batches
    2x apart."""
    usable = [float(b) for b in grid if b % granularity == 0]
    if not usable:
        raise ValueError(f"no batch of the grid is a multiple of {granularity:g} tokens")
    b3 = float(best_fixed)
    if b3 < 4 * min(usable) or b3 % granularity:
        b3 = nearest_batch(grid, bopt[1], granularity, lo=4 * min(usable))
    b1 = nearest_batch(grid, bopt[0], granularity, hi=b3 / 4)
    b2 = nearest_batch(grid, math.sqrt(b1 * b3), granularity, lo=2 * b1, hi=b3 / 2)
    return b1, b2, b3


def _design(tier, root, jobs, progress):
    """``(batches, bopt, note)`` from the schedule experiment's plan and the sweep's envelope ``Bopt``."""
    from . import ensure
    from .schedule import PLAN, Arms

    p = Arms.load(ensure("schedule", tier, root, jobs, progress) / PLAN)
    runs = [load_runs(f)[0] for f in sorted((Path(root) / "sweep" / "logs").glob("*.csv"))]
    env = envelope_bopt(runs, np.array(data_points(tier)), bootstrap=0)
    # located: the estimate; at a grid edge: that edge (its one finite bound); nothing: the grid's middle
    located = np.where(env.identified, env.bopt, np.where(np.isfinite(env.hi), env.hi, env.lo))
    bopt = [float(b) if np.isfinite(b) else math.sqrt(min(tier.batches) * max(tier.batches)) for b in located]
    b1, b2, b3 = choose_batches(tier.batches, bopt, p.best_fixed, tier.dyn_micro * tier.seq_len)
    why3 = (
        "the schedule experiment's best fixed batch (its runs to D2 for the schedule's seeds are reused)"
        if b3 == p.best_fixed
        else f"nearest the sweep's envelope Bopt at D2 ({bopt[1]:.4g} tokens), as the schedule's best fixed "
        f"batch ({p.best_fixed:g}) leaves no room below it"
    )
    note = (
        f"b3 is {why3}; b1 is nearest the sweep's envelope Bopt at D1 ({bopt[0]:.4g} tokens) at most b3/4; "
        f"b2 is nearest their geometric mean ({math.sqrt(b1 * b3):.4g} tokens)"
    )
    return (b1, b2, b3), bopt, note


def run(tier, root, jobs=None, progress=True):
    seeds = fresh_seeds(tier)
    if not seeds:
        raise ValueError(
            f"tier {tier.name!r}: the growth experiment needs a seed other than 0 in growth_seeds "
            "or seeds (the sweep that chooses its batches ran seed 0)"
        )
    batches, bopt, note = _design(tier, root, jobs, progress)
    exp = Experiment(root, "growth", tier)
    sp = specs(tier, batches, seeds)
    dirs = train_runs(root, sp, jobs or tier.jobs, progress, desc="growth", launcher=tier.launcher, store=tier.store)
    runs = exp.collect(sp, dirs)
    (b1, b2, b3), (D1, D2) = batches, data_points(tier)
    val = lambda B, D: [final_val(runs[_label(B, D, s)]) for s in seeds]
    early, late = [val(b, D1) for b in batches], [val(b, D2) for b in (b2, b3)]
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None
    rows = [
        dict(arm=f"b{i}", batch=B, data=D, val_mean=float(np.mean(v)), val_sd=sd(v), seeds=len(v))
        for i, B, D, v in (
            (1, b1, D1, early[0]),
            (2, b2, D1, early[1]),
            (3, b3, D1, early[2]),
            (2, b2, D2, late[0]),
            (3, b3, D2, late[1]),
        )
    ]
    md = (
        "```\n" + format_table(rows, ["arm", "batch", "data", "val_mean", "val_sd", "seeds"]) + "\n```\n\n"
        f"b1 = {b1:g}, b2 = {b2:g}, b3 = {b3:g} tokens: {note}. Seeds {seeds} (the sweep that chose the "
        "batches ran seed 0). "
        "Final validation loss on the large held-out slice."
    )
    data = dict(
        batches=list(batches), data=[D1, D2], seeds=seeds, sweep_bopt=bopt, val_loss=dict(early=early, late=late)
    )
    return exp.write(claims(early, late), data, [("Final validation loss per arm (mean and sd over seeds)", md)])
