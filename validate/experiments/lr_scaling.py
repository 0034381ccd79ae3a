"""``dbs validate lr-scaling``: the dynamic schedule with a constant LR vs sqrt rescaling at each increase."""
from __future__ import annotations

from .ablation import gain_verdict, noise_text, setup, train
from .common import final_val
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, noise = setup("lr-scaling", tier, root, jobs, progress)
    base, var = arm(tier, p, "dynamic"), arm(tier, p, "dynamic", lr_rescale="sqrt")
    runs, _ = train(exp, [base, var], jobs, progress)
    vb, vv = final_val(runs[base.label]), final_val(runs[var.label])
    claim = dict(claim="Rescaling the LR by sqrt(batch ratio) at each increase does not help (paper: no help, "
                       "sometimes hurt)",
                 measured=f"val loss constant LR {vb:.4f} vs sqrt-rescaled {vv:.4f} "
                          f"(sqrt better by {vb - vv:+.4f}; {noise_text(noise)})",
                 verdict={"holds": "does not hold", "does not hold": "holds",
                          "inconclusive": "holds"}[gain_verdict(vb - vv, noise)])
    return exp.write([claim], dict(val_constant=vb, val_sqrt=vv, noise=noise, schedule=p["sizes"]))
