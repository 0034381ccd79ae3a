"""``dbs validate weight-decay``: the dynamic-vs-fixed gain under weight decay 0.01 and 0.1."""

from __future__ import annotations

import math

import numpy as np

from dbs_theory.measure.verdicts import Claim, all_of

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("weight-decay", tier, root, jobs, progress)
    seeds, specs, wds, kinds = tier.ablation_seeds, {}, (0.01, 0.1), ("dynamic", "best")
    for wd in wds:
        over = {} if wd == tier.weight_decay else dict(weight_decay=wd)
        for s in seeds:
            specs.update({(wd, k, s): arm(tier, p, k, s, **over) for k in kinds})
    runs, _ = train(exp, list(specs.values()), jobs, progress)
    vals = {(wd, k): [final_val(runs[specs[wd, k, s].label]) for s in seeds] for wd in wds for k in kinds}
    gains = {wd: np.subtract(vals[wd, "best"], vals[wd, "dynamic"]) for wd in wds}  # fixed - dynamic
    clear = gain_claim("", "gain at wd 0.1", gains[0.1], spread)
    # the difference of two single-seed paired gains has sqrt(2) times the spread of one
    wider = dict(spread, sd=math.sqrt(2) * spread["sd"]) if spread.get("sd") is not None else spread
    drop = gain_claim("", "its drop at wd 0.01", gains[0.1] - gains[0.01], wider)
    claim = Claim(
        "The dynamic schedule's gain nearly vanishes with weight decay 0.01 and is clear with 0.1",
        f"gain (fixed - dynamic val loss) {np.mean(gains[0.01]):+.4f} at wd 0.01; {clear.measured}; {drop.measured}",
        all_of(clear.verdict, drop.verdict),
        clear.interval,
    )
    val = {str(wd): {k: vals[wd, k] for k in ("dynamic", "best")} for wd in (0.01, 0.1)}
    return exp.write([claim], dict(val=val, gain={str(k): v.tolist() for k, v in gains.items()}, spread=spread))
