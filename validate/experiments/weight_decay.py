"""``dbs validate weight-decay``: the dynamic-vs-fixed gain under weight decay 0.01 and 0.1."""
from __future__ import annotations

import math

from dbs_theory.verdicts import Claim, all_of

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("weight-decay", tier, root, jobs, progress)
    gains, specs = {}, []
    for wd in (0.01, 0.1):
        over = {} if wd == tier.weight_decay else dict(weight_decay=wd)
        specs += [(wd, arm(tier, p, "dynamic", **over)), (wd, arm(tier, p, "best", **over))]
    runs, _ = train(exp, [s for _, s in specs], jobs, progress)
    vals = {}
    for wd, s in specs:
        vals.setdefault(wd, []).append(final_val(runs[s.label]))
    gains = {wd: v[1] - v[0] for wd, v in vals.items()}  # fixed - dynamic
    clear = gain_claim("", "gain at wd 0.1", [gains[0.1]], spread)
    # the difference of two single-seed paired gains has sqrt(2) times the spread of one
    wider = dict(spread, sd=math.sqrt(2) * spread["sd"]) if spread.get("sd") is not None else spread
    drop = gain_claim("", "its drop at wd 0.01", [gains[0.1] - gains[0.01]], wider)
    claim = Claim("The dynamic schedule's gain nearly vanishes with weight decay 0.01 and is clear with 0.1",
                  f"gain (fixed - dynamic val loss) {gains[0.01]:+.4f} at wd 0.01; {clear.measured}; "
                  f"{drop.measured}", all_of(clear.verdict, drop.verdict), clear.interval)
    return exp.write([claim], dict(val={str(k): v for k, v in vals.items()},
                                   gain={str(k): v for k, v in gains.items()}, spread=spread))
