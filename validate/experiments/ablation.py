"""Shared machinery of the ablations: each compares a variant with its matched baseline at equal tokens."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .common import Experiment, verdict_gain
from .runner import train_runs
from . import schedule as sched_exp

__all__ = ["setup", "train", "noise_text", "gain_verdict"]


def setup(name, tier, root, jobs, progress):
    """``(experiment, plan, noise)``; runs the schedule experiment first if it is missing."""
    summary_path = Path(root) / "schedule" / "summary.json"
    if not summary_path.exists():
        sched_exp.run(tier, root, jobs, progress)
    p = sched_exp.plan(tier, root, jobs, progress)
    noise = json.loads(summary_path.read_text()).get("noise", math.nan)
    return Experiment(root, name, tier), p, float(noise)


def train(exp, specs, jobs, progress):
    dirs = train_runs(exp.root, specs, jobs or exp.tier.jobs, progress, desc=exp.name)
    return exp.collect(specs, dirs), dirs


def noise_text(noise):
    return "no seed spread measured" if not math.isfinite(noise) else f"seed noise +/- {noise:.4f}"


def gain_verdict(gain, noise, expect_positive=True):
    """One gain against the seed-to-seed noise of a single arm (from the schedule experiment):
    :func:`~validate.experiments.common.verdict_gain`, the one rule."""
    return verdict_gain([gain], noise, expect_positive)
