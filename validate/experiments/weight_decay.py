"""``dbs validate weight-decay``: the dynamic-vs-fixed gain under weight decay 0.01 and 0.1."""
from __future__ import annotations

from .ablation import gain_verdict, noise_text, setup, train
from .common import final_val
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, noise = setup("weight-decay", tier, root, jobs, progress)
    gains, specs = {}, []
    for wd in (0.01, 0.1):
        over = {} if wd == tier.weight_decay else dict(weight_decay=wd)
        specs += [(wd, arm(tier, p, "dynamic", **over)), (wd, arm(tier, p, "best", **over))]
    runs, _ = train(exp, [s for _, s in specs], jobs, progress)
    vals = {}
    for wd, s in specs:
        vals.setdefault(wd, []).append(final_val(runs[s.label]))
    gains = {wd: v[1] - v[0] for wd, v in vals.items()}  # fixed - dynamic
    clear = gain_verdict(gains[0.1], noise) == "holds"
    n = noise if noise == noise else 0.0
    # the claim needs a clear gain at 0.1 that (nearly) vanishes at 0.01; without a clear gain it is untestable
    verdict = "inconclusive" if not clear else ("holds" if gains[0.01] < gains[0.1] - n else "does not hold")
    claim = dict(claim="The dynamic schedule's gain nearly vanishes with weight decay 0.01 and is clear with 0.1",
                 measured=f"gain (fixed - dynamic val loss) {gains[0.01]:+.4f} at wd 0.01, {gains[0.1]:+.4f} "
                          f"at wd 0.1 ({noise_text(noise)})",
                 verdict=verdict)
    return exp.write([claim], dict(val={str(k): v for k, v in vals.items()},
                                   gain={str(k): v for k, v in gains.items()}, noise=noise))
