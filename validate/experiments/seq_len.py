"""``dbs validate seq-len``: grow the batch by a longer sequence vs by more micro-batches.

Both arms double the batch (tokens per step) at half the budget, from the
dynamic schedule's first batch, on each of the tier's ablation seeds (paired). The ``micro`` arm accumulates twice
as many
micro-batches; the ``seq`` arm keeps the micro-batch count and doubles the
sequence length. The loss jump at the switch is the mean training loss just
after it minus just before (windows of 2% of the budget); validation stays at
the first sequence length, so the arms are compared on the same held-out data.
"""

from __future__ import annotations

import math

import numpy as np

from dbs_theory.schedules.batch_schedules import step_batch
from dbs_theory.measure.verdicts import Claim, interval_from_se, negate, paired_interval, verdict

from .ablation import setup, train
from .common import config_for, final_val, gain_claim
from .runner import RunSpec
from .schedule import save_schedule

__all__ = ["run", "loss_jump"]


def loss_jump(run, at, window):
    """``(jump, standard error)`` of the mean training loss over ``(at, at + window]`` minus ``(at - window, at]``."""
    before = run.loss[(run.tokens > at - window) & (run.tokens <= at)]
    after = run.loss[(run.tokens > at) & (run.tokens <= at + window)]
    if before.size < 2 or after.size < 2:
        return math.nan, math.nan
    se = math.sqrt(before.var(ddof=1) / before.size + after.var(ddof=1) / after.size)
    return float(after.mean() - before.mean()), se


def _arms(tier, seeds, sched, at) -> dict:
    """``{seed: (micro-batch run, sequence run)}``: both follow the batch schedule ``sched`` (doubling at
    ``at`` tokens); one grows it by micro-batches, the other by doubling the sequence length at ``at``."""
    return {
        s: (
            RunSpec(f"grow-by-micro-s{s}", config_for(tier, tier.budget, schedule=sched, micro=tier.dyn_micro, seed=s)),
            RunSpec(
                f"grow-by-seq-s{s}",
                config_for(
                    tier,
                    tier.budget,
                    schedule=sched,
                    micro=tier.dyn_micro,
                    seed=s,
                    seq_len_schedule=f"{at:g}:{2 * tier.seq_len}",
                ),
            ),
        )
        for s in seeds
    }


def _jump_difference(jumps):
    """The interval of (sequence route's loss jump - micro-batch route's) from ``{seed: ((jump, se) micro,
    (jump, se) seq)}``: paired over seeds, or with one seed from the two windows' standard errors."""
    diffs = [js - jm for (jm, _), (js, _) in jumps.values()]
    if len(jumps) > 1:
        return paired_interval(diffs)
    ((_, sm), (_, ss)) = next(iter(jumps.values()))
    return interval_from_se(diffs[0], math.sqrt(sm**2 + ss**2), n=1)


def run(tier, root, jobs=None, progress=True):
    exp, p, spread = setup("seq-len", tier, root, jobs, progress)
    gran = tier.dyn_micro * tier.seq_len
    B0 = float(max(gran, round(p.sizes[0] / gran) * gran))
    at = tier.budget / 2
    sched = save_schedule(root, step_batch([at], [B0, 2 * B0], unit="tokens", lr=tier.lr))
    seeds = list(tier.ablation_seeds)
    arms = _arms(tier, seeds, sched, at)
    runs, _ = train(exp, [x for pair in arms.values() for x in pair], jobs, progress)
    w = max(0.02 * tier.budget, 10 * 2 * B0)  # at least 10 steps on each side
    jumps = {s: (loss_jump(runs[m.label], at, w), loss_jump(runs[q.label], at, w)) for s, (m, q) in arms.items()}
    vals = {s: (final_val(runs[m.label]), final_val(runs[q.label])) for s, (m, q) in arms.items()}
    jump = _jump_difference(jumps)
    mean = lambda i, j: float(np.mean([jumps[s][i][j] for s in seeds]))
    vm, vs = (float(np.mean([vals[s][i] for s in seeds])) for i in (0, 1))
    seq_lower = gain_claim(
        "",
        f"final val loss (seq {tier.seq_len}) micro {vm:.4f} vs seq {vs:.4f}; advantage of seq",
        [m - q for m, q in vals.values()],
        spread,
    )
    claims = [
        Claim(
            "Growing the batch via a longer sequence causes a loss jump; via micro-batches it does not",
            f"training-loss jump at {at:.3g} tokens, mean over {len(seeds)} seed(s): {mean(1, 0):+.4f} (seq "
            f"{tier.seq_len}->{2 * tier.seq_len}) vs {mean(0, 0):+.4f} (micro-batches); difference {jump.text()}",
            verdict(jump),
            jump,
        ),
        # "at least as low" is the negation of "the sequence route ends lower by the smallest reported effect"
        Claim(
            "(consequence) the micro-batch route ends at least as low",
            seq_lower.measured,
            negate(seq_lower.verdict),
            seq_lower.interval,
        ),
    ]
    data = dict(
        batch=[B0, 2 * B0],
        switch_tokens=at,
        seeds=seeds,
        jump_micro=[mean(0, 0), mean(0, 1)],
        jump_seq=[mean(1, 0), mean(1, 1)],
        val_micro=vm,
        val_seq=vs,
        spread=spread,
    )
    return exp.write(claims, data)
