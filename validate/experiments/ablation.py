"""Shared machinery of the ablations: each compares a variant with its matched baseline at equal tokens.

An ablation runs its arms under the tier's ``ablation_seeds``, paired by
seed. With one seed its interval borrows the spread of one paired difference
measured over the schedule experiment's seeds
(:func:`~validate.experiments.common.spread_of`), with that many degrees of
freedom; with more it uses its own.
"""

from __future__ import annotations

import json

from .common import Experiment
from .runner import train_runs
from . import schedule as sched_exp

__all__ = ["setup", "train"]


def setup(name, tier, root, jobs, progress):
    """``(experiment, plan, spread)``: the schedule experiment's saved plan (run first if missing)."""
    from . import ensure

    folder = ensure("schedule", tier, root, jobs, progress)
    spread = json.loads((folder / "summary.json").read_text()).get("spread") or {}
    return Experiment(root, name, tier), sched_exp.Arms.load(folder / sched_exp.PLAN), spread


def train(exp, specs, jobs, progress):
    dirs = train_runs(
        exp.root,
        specs,
        jobs or exp.tier.jobs,
        progress,
        desc=exp.name,
        launcher=exp.tier.launcher,
        store=exp.tier.store,
    )
    return exp.collect(specs, dirs), dirs
