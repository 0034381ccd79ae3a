"""``dbs validate decay``: continue the dynamic and best-fixed runs with a WSD decay to 10% of the LR.

Each decay run branches from the stable run's final checkpoint
(``branch_from``) and decays linearly over ``tier.decay_tokens`` more
tokens, so the comparison is the paper's: the same stable phase, then a decay.
"""
from __future__ import annotations

from .ablation import setup, train
from .common import final_val, gain_claim
from .runner import run_dir
from .schedule import arm

__all__ = ["run"]


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("decay", tier, root, jobs, progress)
    stable = {k: arm(tier, p, k) for k in ("dynamic", "best")}
    runs0, dirs0 = train(exp, list(stable.values()), jobs, progress)  # cached from the schedule experiment
    total = tier.budget + tier.decay_tokens
    branches = {k: arm(tier, p, k, tokens=total, label=f"{k}-s0-decay", decay=tier.decay_tokens / total, final_ratio=0.1,
                       warmup=min(tier.warmup / total, 0.5), branch_from=str(run_dir(root, s) / "ckpt.pt"))
                for k, s in stable.items()}
    runs, _ = train(exp, list(branches.values()), jobs, progress)
    before = {k: final_val(runs0[s.label]) for k, s in stable.items()}
    after = {k: final_val(runs[s.label]) for k, s in branches.items()}
    g0, g1 = before["best"] - before["dynamic"], after["best"] - after["dynamic"]
    claim = gain_claim("The dynamic schedule's gain persists through a WSD decay to 10% of the LR",
                       f"gain (fixed - dynamic val loss) {g0:+.4f} before the decay; after it", [g1], spread)
    return exp.write([claim], dict(before=before, after=after, gain_before=g0, gain_after=g1, spread=spread))
