"""``dbs validate power``: how many seeds a comparison needs at this tier, measured.

Two fixed batch sizes from the middle of the tier's grid (2x apart) train
to the tier's budget under ``power_seeds`` seeds; arms with the same seed share
initialisation and data order, so they differ only in the batch size. From the
final validation losses (on the large final slice) come the spread of a single
arm across seeds (what an unpaired comparison fights) and of the paired
difference (what a paired one fights), each with its 95% upper bound, and
from those the seeds a paired or unpaired comparison needs to resolve the
paper's effect sizes (0.01-0.04 nats) with a 95% interval, 80% of the time.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from dbs_theory.table import format_table
from dbs_theory.measure.verdicts import paired_interval, seeds_needed

from .common import Experiment, config_for, final_val, micro_for
from .runner import RunSpec, train_runs

__all__ = ["run", "arms", "spread_table", "EFFECTS"]

EFFECTS = (0.01, 0.02, 0.04)  # nats: the paper's range of gains


def arms(tier) -> tuple:
    """The two batch sizes compared: the grid's middle and the size 2x above it (or the next one)."""
    grid = sorted(tier.batches)
    a = grid[(len(grid) - 1) // 2]
    b = next((x for x in grid if x >= 2 * a), grid[-1])
    return a, b


def _specs(tier):
    out = []
    for seed in range(tier.power_seeds):
        for B in arms(tier):
            cfg = config_for(tier, tier.budget, batch=B, micro=micro_for(tier, B), seed=seed)
            out.append(RunSpec(f"b{B:g}-s{seed}", cfg))
    return out


def _sd_upper(sd, n, level=0.95):
    """One-sided ``level`` upper bound of a standard deviation from ``n`` values (chi-square)."""
    return sd * math.sqrt((n - 1) / stats.chi2.ppf(1 - level, n - 1)) if n >= 2 else math.nan


def spread_table(val_a, val_b) -> tuple:
    """``(spread, rows)``: sds of one arm and of the paired difference, and the seeds each design needs."""
    a, b = np.asarray(val_a, float), np.asarray(val_b, float)
    n = int(min(a.size, b.size))
    single = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)) if n >= 2 else math.nan
    paired = float(np.std(b - a, ddof=1)) if n >= 2 else math.nan
    spread = dict(
        n=n,
        sd_single=single,
        sd_single_hi=_sd_upper(single, n),
        sd_paired=paired,
        sd_paired_hi=_sd_upper(paired, n),
        difference=paired_interval(b - a),
    )
    need = lambda sd, e: seeds_needed(sd, e) if math.isfinite(sd) else math.nan
    rows = []
    for e in EFFECTS:
        rows.append(
            dict(
                effect=e,
                paired=need(paired, e),
                paired_conservative=need(spread["sd_paired_hi"], e),
                unpaired=need(math.sqrt(2) * single, e),
                unpaired_conservative=need(math.sqrt(2) * spread["sd_single_hi"], e),
            )
        )
    return spread, rows


def run(tier, root, jobs=None, progress=True):
    exp = Experiment(root, "power", tier)
    specs = _specs(tier)
    dirs = train_runs(root, specs, jobs or tier.jobs, progress, desc="power", launcher=tier.launcher, store=tier.store)
    runs = exp.collect(specs, dirs)
    A, B = arms(tier)
    val = {X: [final_val(runs[f"b{X:g}-s{s}"]) for s in range(tier.power_seeds)] for X in (A, B)}
    spread, rows = spread_table(val[A], val[B])
    md = (
        "```\n"
        + format_table(rows, ["effect", "paired", "paired_conservative", "unpaired", "unpaired_conservative"])
        + "\n```\n\n"
        f"Seeds for a 95% interval that excludes zero 80% of the time, from the measured spread over "
        f"{spread['n']} seeds (conservative: its 95% upper bound). One arm's final validation loss varies "
        f"by sd {spread['sd_single']:.4f} (upper {spread['sd_single_hi']:.4f}); the paired difference "
        f"(B = {B:g} minus B = {A:g}, same seed) by sd {spread['sd_paired']:.4f} "
        f"(upper {spread['sd_paired_hi']:.4f})."
    )
    claim = dict(
        claim="(design) pairing arms by seed cancels most seed noise",
        measured=f"sd of one arm {spread['sd_single']:.4f} vs sd of the paired difference "
        f"{spread['sd_paired']:.4f} nats over {spread['n']} seeds",
        verdict="holds"
        if spread["sd_paired_hi"] < spread["sd_single"]
        else ("does not hold" if spread["sd_paired"] >= spread["sd_single"] else "inconclusive"),
    )
    return exp.write(
        [claim],
        dict(arms=[A, B], val_loss={str(k): v for k, v in val.items()}, spread=spread, seeds_needed=rows),
        [("Seeds each comparison needs", md)],
    )
