"""``dbs validate lr-scaling``: the dynamic schedule with a constant LR vs sqrt rescaling at each increase."""

from __future__ import annotations

import numpy as np

from dbs_theory.measure.verdicts import Claim, negate

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("lr-scaling", tier, root, jobs, progress)
    pairs = [(arm(tier, p, "dynamic", s), arm(tier, p, "dynamic", s, lr_rescale="sqrt")) for s in tier.ablation_seeds]
    runs, _ = train(exp, [a for pair in pairs for a in pair], jobs, progress)
    vb, vv = ([final_val(runs[pair[i].label]) for pair in pairs] for i in (0, 1))
    helps = gain_claim(
        "",
        f"val loss constant LR {np.mean(vb):.4f} vs sqrt-rescaled {np.mean(vv):.4f}; gain from sqrt",
        np.subtract(vb, vv),
        spread,
    )
    # "does not help" is the negation of "helps by at least the smallest reported effect"
    claim = Claim(
        "Rescaling the LR by sqrt(batch ratio) at each increase does not help (paper: no help, sometimes hurt)",
        helps.measured,
        negate(helps.verdict),
        helps.interval,
    )
    return exp.write([claim], dict(val_constant=vb, val_sqrt=vv, spread=spread, schedule=p.sizes))
