"""``dbs validate cosine``: dynamic vs best fixed batch under a cosine LR schedule (to 10%)."""

from __future__ import annotations

import numpy as np

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("cosine", tier, root, jobs, progress)
    over = dict(lr_schedule="cosine", final_ratio=0.1)
    seeds = tier.ablation_seeds
    specs = {(k, s): arm(tier, p, k, s, **over) for s in seeds for k in ("dynamic", "best")}
    runs, _ = train(exp, list(specs.values()), jobs, progress)
    vd, vf = ([final_val(runs[specs[k, s].label]) for s in seeds] for k in ("dynamic", "best"))
    gains = np.subtract(vf, vd)
    claim = gain_claim(
        "The dynamic schedule's gain also holds under a cosine LR schedule",
        f"val loss fixed {np.mean(vf):.4f} vs dynamic {np.mean(vd):.4f}: gain",
        gains,
        spread,
    )
    return exp.write([claim], dict(val_dynamic=vd, val_fixed=vf, gain=gains.tolist(), spread=spread))
