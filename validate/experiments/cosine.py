"""``dbs validate cosine``: dynamic vs best fixed batch under a cosine LR schedule (to 10%)."""
from __future__ import annotations

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("cosine", tier, root, jobs, progress)
    over = dict(lr_schedule="cosine", final_ratio=0.1)
    dyn, fix = arm(tier, p, "dynamic", **over), arm(tier, p, "best", **over)
    runs, _ = train(exp, [dyn, fix], jobs, progress)
    vd, vf = final_val(runs[dyn.label]), final_val(runs[fix.label])
    claim = gain_claim("The dynamic schedule's gain also holds under a cosine LR schedule",
                       f"val loss fixed {vf:.4f} vs dynamic {vd:.4f}: gain", [vf - vd], spread)
    return exp.write([claim], dict(val_dynamic=vd, val_fixed=vf, gain=vf - vd, spread=spread))
