"""``dbs validate seq-len``: grow the batch by a longer sequence vs by more micro-batches.

Both arms double the batch (tokens per step) at half the budget, from the
dynamic schedule's first batch. The ``micro`` arm accumulates twice as many
micro-batches; the ``seq`` arm keeps the micro-batch count and doubles the
sequence length. The loss jump at the switch is the mean training loss just
after it minus just before (windows of 2% of the budget); validation stays at
the first sequence length, so the arms are compared on the same held-out data.
"""
from __future__ import annotations

import math

from dbs_theory.batch_schedules import step_batch
from dbs_theory.verdicts import Claim, interval_from_se, negate, verdict

from .ablation import setup, train
from .common import config_for, final_val, gain_claim
from .runner import RunSpec
from .schedule import _save_schedule

__all__ = ["run", "loss_jump"]


def loss_jump(run, at, window):
    """``(jump, standard error)`` of the mean training loss over ``(at, at + window]`` minus ``(at - window, at]``."""
    before = run.loss[(run.tokens > at - window) & (run.tokens <= at)]
    after = run.loss[(run.tokens > at) & (run.tokens <= at + window)]
    if before.size < 2 or after.size < 2:
        return math.nan, math.nan
    se = math.sqrt(before.var(ddof=1) / before.size + after.var(ddof=1) / after.size)
    return float(after.mean() - before.mean()), se


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("seq-len", tier, root, jobs, progress)
    gran = tier.dyn_micro * tier.seq_len
    B0 = float(max(gran, round(p.sizes[0] / gran) * gran))
    at = tier.budget / 2
    sched = _save_schedule(root, step_batch([at], [B0, 2 * B0], unit="tokens", lr=tier.lr))
    micro = RunSpec("grow-by-micro", config_for(tier, tier.budget, schedule=sched, micro=tier.dyn_micro))
    seq = RunSpec("grow-by-seq", config_for(tier, tier.budget, schedule=sched, micro=tier.dyn_micro,
                                            seq_len_schedule=f"{at:g}:{2 * tier.seq_len}"))
    runs, _ = train(exp, [micro, seq], jobs, progress)
    w = max(0.02 * tier.budget, 10 * 2 * B0)  # at least 10 steps on each side
    (jm, sm), (js, ss) = loss_jump(runs[micro.label], at, w), loss_jump(runs[seq.label], at, w)
    diff, se = js - jm, math.sqrt(sm**2 + ss**2)
    vm, vs = final_val(runs[micro.label]), final_val(runs[seq.label])
    jump = interval_from_se(diff, se, n=1)
    seq_lower = gain_claim("", f"final val loss (seq {tier.seq_len}) micro {vm:.4f} vs seq {vs:.4f}; advantage of seq",
                           [vm - vs], spread)
    claims = [
        Claim("Growing the batch via a longer sequence causes a loss jump; via micro-batches it does not",
              f"training-loss jump at {at:.3g} tokens: {js:+.4f} +/- {ss:.4f} (seq {tier.seq_len}->"
              f"{2 * tier.seq_len}) vs {jm:+.4f} +/- {sm:.4f} (micro-batches); difference {jump.text()}",
              verdict(jump), jump),
        # "at least as low" is the negation of "the sequence route ends lower by the smallest reported effect"
        Claim("(consequence) the micro-batch route ends at least as low", seq_lower.measured,
              negate(seq_lower.verdict), seq_lower.interval),
    ]
    data = dict(batch=[B0, 2 * B0], switch_tokens=at, jump_micro=[jm, sm], jump_seq=[js, ss],
                val_micro=vm, val_seq=vs, spread=spread)
    return exp.write(claims, data)
