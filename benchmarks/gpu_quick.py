"""The GPU tier, reduced to fit 8 minutes on one H200: a short sweep plus the schedule experiment's two main arms.

Trains the ``gpu-quick`` tier -- the 10M-parameter ``cpu-large`` preset at
sequence length 512 on the byte-level default corpus (nothing to download),
six batch sizes 16K..512K tokens to 40M tokens, bf16 and compiled -- then
builds the default (calibrated) rule's schedule from the sweep's fit under
WSD with a 20% decay and trains it beside the sweep's best fixed batch, one
seed each. Every finished run's log goes to the repository's log store
(``docs/data/runs``), where ``dbs validate`` finds it by config hash.

Prints the sweep's tokens/s, the time each stage took, and the two
arms' final validation losses. ``--tier tiny --device cpu`` runs the same path
in seconds (the tests do).

Run: python benchmarks/gpu_quick.py [--tier gpu-quick] [--out results/validate/gpu-quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from validate.experiments import schedule, sweep  # noqa: E402
from validate.experiments.common import final_val  # noqa: E402
from validate.experiments.log_store import DEFAULT_STORE, LogStore  # noqa: E402
from validate.experiments.runner import train_runs  # noqa: E402
from validate.experiments.tiers import get_tier  # noqa: E402

#: the two arms run after the sweep: the sweep's best fixed batch and the package's default rule
ARMS = ("best", "calibrated")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tier", default="gpu-quick")
    ap.add_argument("--device", default=None, help="auto, cpu or cuda (default: the tier's)")
    ap.add_argument("--out", default=None, help="results root (default results/validate/<tier>)")
    ap.add_argument("--logs", default=str(DEFAULT_STORE), help="log store (default: the repository's)")
    args = ap.parse_args(argv)
    tier = get_tier(args.tier)
    tier = tier.with_(store=LogStore(Path(args.logs)), **({"device": args.device} if args.device else {}))
    root = Path(args.out or f"results/validate/{tier.name}")
    print("machine:", describe())
    t0 = time.perf_counter()
    s = sweep.run(tier, root, jobs=1, progress=False)
    t1 = time.perf_counter()
    p = schedule.plan(tier, root, jobs=1, progress=False)
    specs = [schedule.wsd_arm(tier, p, k, 0) for k in ARMS]
    dirs = train_runs(root, specs, 1, False, desc="arms", store=tier.store)
    t2 = time.perf_counter()
    val = {k: final_val(_run(dirs[spec.label])) for k, spec in zip(ARMS, specs)}
    tokens = sum(spec.config.tokens for spec in sweep.specs(tier))
    print(
        f"sweep: {len(tier.batches)} runs, {tokens:.3g} tokens in {t1 - t0:.0f} s ({tokens / (t1 - t0):,.0f} tokens/s; "
        f"{s['claims'][0]['verdict']}: "
        f"{s['claims'][0]['measured']})"
    )
    print(
        f"arms: {t2 - t1:.0f} s; final validation loss best fixed {p.best_fixed:g}: {val['best']:.4f}, calibrated "
        f"({p.rules['calibrated']['recommendation']}): {val['calibrated']:.4f}; total {t2 - t0:.0f} s"
    )
    return dict(val=val, seconds=t2 - t0)


def _run(d):
    from dbs_theory.logs.runs import load_runs

    return load_runs(d / "log.csv")[0]


if __name__ == "__main__":
    main()
