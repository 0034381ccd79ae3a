"""Where each optimizer step's samples lie in the data: shared by the integrations (no framework import).

The data is read as one stream of samples (sequences of ``seq_len`` tokens):
global sample position ``p`` (samples consumed before it, over all processes)
is dataset index ``p mod len(dataset)``, or, with a ``seed``, that index
through a permutation drawn once per pass over the data. A step of an
:class:`~dbs_theory.schedules.accumulation.AccumulationPlan` that starts at
``samples_before`` takes positions ``samples_before .. samples_before +
samples - 1``; the position is therefore a function of the plan's state only,
which is what makes a resume land on the right data.
"""

from __future__ import annotations

import numpy as np

from ..schedules.accumulation import AccumulationPlan

__all__ = ["fresh", "StepClock", "sample_ids", "rank_micro_batches"]


def fresh(plan) -> AccumulationPlan:
    """A copy of ``plan``'s configuration with nothing consumed (tokens, samples, steps all 0)."""
    return AccumulationPlan(plan.schedule, plan.micro_batch_size, plan.seq_len, plan.world_size, plan.lr)


class StepClock:
    """Optimizer step ``k`` of a plan replayed from zero (:meth:`at`); forward reads are O(1) amortised."""

    def __init__(self, plan):
        self._proto = plan
        self._reset()

    def _reset(self):
        self._plan = fresh(self._proto)
        self._step = self._plan.peek()

    def at(self, k: int):
        """The :class:`~dbs_theory.schedules.accumulation.Step` with index ``k`` (optimizer steps taken before it)."""
        if k < 0:
            raise ValueError(f"optimizer step index {k} must be >= 0")
        if k < self._step.index:
            self._reset()
        while self._step.index < k:
            self._plan.advance()
            self._step = self._plan.peek()
        return self._step


def sample_ids(start: int, count: int, n_data: int, seed=None) -> list:
    """Dataset indices of ``count`` samples from global sample position ``start`` (module docstring)."""
    if n_data < 1:
        raise ValueError("the dataset is empty: no samples to read")
    pos = np.arange(start, start + count, dtype=np.int64)
    if seed is None:
        return (pos % n_data).tolist()
    out = np.empty_like(pos)
    passes = pos // n_data
    for p in np.unique(passes):
        perm = np.random.default_rng([int(seed), int(p)]).permutation(n_data)
        sel = passes == p
        out[sel] = perm[pos[sel] % n_data]
    return out.tolist()


def rank_micro_batches(plan, step, rank: int, n_data: int, seed=None, first: int = 0):
    """This rank's micro-batches of ``step`` (a Step of ``plan``), from its ``first``-th: lists of dataset indices.

    Micro-batch ``j`` of the step, on rank ``r``, holds global positions
    ``samples_before + (j x world_size + r) x micro`` onwards (``micro`` samples).
    """
    m, w = plan.micro_batch_size, plan.world_size
    for j in range(first, step.micro_batches):
        yield sample_ids(step.samples_before + (j * w + rank) * m, m, n_data, seed)
