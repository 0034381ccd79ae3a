"""``dbs validate decay``: continue the dynamic and best-fixed runs with a WSD decay to 10% of the LR.

Each decay run branches from the stable run's final checkpoint
(``branch_from``) and decays linearly over ``tier.decay_tokens`` more
tokens, so the comparison is the paper's: the same stable phase, then a decay.
"""

from __future__ import annotations

import numpy as np

from .ablation import setup, train
from .common import final_val, gain_claim
from .runner import run_dir
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("decay", tier, root, jobs, progress)
    seeds, arms = tier.ablation_seeds, ("dynamic", "best")
    stable = {(k, s): arm(tier, p, k, s) for s in seeds for k in arms}
    runs0, _ = train(exp, list(stable.values()), jobs, progress)  # cached from the schedule experiment
    total = tier.budget + tier.decay_tokens
    branches = {
        (k, s): arm(
            tier,
            p,
            k,
            s,
            tokens=total,
            label=f"{k}-s{s}-decay",
            decay=tier.decay_tokens / total,
            final_ratio=0.1,
            warmup=min(tier.warmup / total, 0.5),
            branch_from=str(run_dir(root, a) / "ckpt.pt"),
        )
        for (k, s), a in stable.items()
    }
    runs, _ = train(exp, list(branches.values()), jobs, progress)
    before = {k: [final_val(runs0[stable[k, s].label]) for s in seeds] for k in arms}
    after = {k: [final_val(runs[branches[k, s].label]) for s in seeds] for k in arms}
    g0, g1 = (np.subtract(v["best"], v["dynamic"]) for v in (before, after))
    claim = gain_claim(
        "The dynamic schedule's gain persists through a WSD decay to 10% of the LR",
        f"gain (fixed - dynamic val loss) {np.mean(g0):+.4f} before the decay; after it",
        g1,
        spread,
    )
    return exp.write(
        [claim], dict(before=before, after=after, gain_before=g0.tolist(), gain_after=g1.tolist(), spread=spread)
    )
