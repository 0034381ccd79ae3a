"""``dbs validate lr-scaling``: the dynamic schedule with a constant LR vs sqrt rescaling at each increase."""
from __future__ import annotations

from dbs_theory.verdicts import Claim, negate

from .ablation import setup, train
from .common import final_val, gain_claim
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("lr-scaling", tier, root, jobs, progress)
    base, var = arm(tier, p, "dynamic"), arm(tier, p, "dynamic", lr_rescale="sqrt")
    runs, _ = train(exp, [base, var], jobs, progress)
    vb, vv = final_val(runs[base.label]), final_val(runs[var.label])
    helps = gain_claim("", f"val loss constant LR {vb:.4f} vs sqrt-rescaled {vv:.4f}; gain from sqrt",
                       [vb - vv], spread)
    # "does not help" is the negation of "helps by at least the smallest reported effect"
    claim = Claim("Rescaling the LR by sqrt(batch ratio) at each increase does not help (paper: no help, "
                  "sometimes hurt)", helps.measured, negate(helps.verdict), helps.interval)
    return exp.write([claim], dict(val_constant=vb, val_sqrt=vv, spread=spread, schedule=p.sizes))
