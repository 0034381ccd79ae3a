"""Batch-size rules beside the paper's: what ``dbs schedule --rule`` and ``dbs train --batch-rule`` build.

The rules fixed before the run (``dbs schedule --rule``) are listed and
chosen in :mod:`dbs_theory.rules.from_fit` (``late-switch`` builds on
:func:`late_switch` here: half the sweep's best fixed batch until
``switch_at``, then ``ratio`` times that; arXiv 2602.14208).

Rules decided during the run from what it measures (:class:`OnlineRule`,
:data:`ONLINE`), every ``every`` tokens, never falling:

- ``noise-scale`` (McCandlish et al. 2018): the batch is the measured simple
  noise scale ``B_simple`` (the trainer's two-batch estimate, tokens);
- ``floor-ratio`` (ours): the batch is ``gamma Bmin(L)``, where ``Bmin(L)`` is
  the sweep's smallest batch that reaches the run's current loss ``L``
  (``fit.json``'s ``Bmin`` per target, interpolated in log-log; held at the
  edge values outside the targets), with ``gamma`` = :data:`GAMMA` while the
  rate holds and :data:`ANNEAL` while it decays.

Units: data and batch sizes in tokens (or the sweep's unit, consistently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..schedules.batch_schedules import BatchSchedule

__all__ = ["ONLINE", "GAMMA", "ANNEAL", "late_switch", "bmin_table", "OnlineRule", "online_rule"]

#: rules ``dbs train --batch-rule`` runs inside the training loop
ONLINE = ("noise-scale", "floor-ratio")
#: the floor-ratio rule's ``B / Bmin(L)`` while the rate holds, and while it decays (docs/optimal_schedules.md)
GAMMA, ANNEAL = 1.5, 3.0


def late_switch(
    fixed_batch: float, switch_at: float, ratio: float = 4.0, unit="tokens", lr=None, granularity: float | None = None
) -> BatchSchedule:
    """Late switching: ``fixed_batch / 2`` until data ``switch_at``, then ``ratio`` times that (one switch).

    ``fixed_batch``: the sweep's best fixed batch for the run; ``switch_at``: the data of the switch (the
    study scored 75% of the stable phase's data). With ``granularity`` sizes are rounded to its multiples
    (at least one).
    """
    if not (fixed_batch > 0 and switch_at > 0 and ratio >= 1 and (granularity is None or granularity > 0)):
        raise ValueError(
            f"late switch needs a positive batch and switch point and ratio >= 1; got batch "
            f"{fixed_batch!r}, switch at {switch_at!r}, ratio {ratio!r}"
        )
    snap = lambda b: b if granularity is None else max(granularity, round(b / granularity) * granularity)
    small = snap(0.5 * fixed_batch)  # the large batch is ratio x the small one as run (an integer ratio stays exact)
    return BatchSchedule(
        (0.0, float(switch_at)),
        (small, snap(ratio * small)),
        unit,
        kind="step",
        lr=lr,
        params=dict(rule="late switch", switch_at=float(switch_at), ratio=float(ratio), fixed_batch=float(fixed_batch)),
    )


def bmin_table(rows) -> tuple:
    """``(targets, Bmin)`` (ascending targets) from a fit's rows (``fit.json``), by the estimator
    :func:`dbs_theory.measure.tabulate.chosen` picks; ``ValueError`` when fewer than two targets identify ``Bmin``."""
    from ..measure.tabulate import chosen

    est = [e for e in chosen(rows, "bmin") if e.identified and e.value > 0 and e.target > 0]
    if len(est) < 2:
        raise ValueError(
            f"the fit identifies Bmin at {len(est)} target(s); the floor-ratio rule needs at least 2 "
            "(add batches below the sweep's smallest, or longer runs: dbs plan)"
        )
    est.sort(key=lambda e: e.target)
    return tuple(float(e.target) for e in est), tuple(float(e.value) for e in est)


@dataclass
class OnlineRule:
    """An online rule's decisions and the readings since the last one; the trainer's batch is :meth:`batch_for`.

    Parameters (tokens): ``name`` (one of :data:`ONLINE`), ``initial`` batch, ``every`` (data between
    decisions), ``min_batch``/``max_batch``, ``granularity`` (sizes are whole multiples), ``bmin``
    (:func:`bmin_table`'s pair, for ``floor-ratio``), ``anneal_from`` (data from which the rate decays:
    ``floor-ratio`` uses ``anneal`` there). ``decisions`` holds ``(data, batch)`` pairs from 0;
    :meth:`state_dict` is what a checkpoint keeps so a resumed run decides as an uninterrupted one.
    """

    name: str
    initial: float
    every: float
    min_batch: float
    max_batch: float
    granularity: float = 1.0
    bmin: tuple = ()
    gamma: float = GAMMA
    anneal: float = ANNEAL
    anneal_from: float = math.inf
    decisions: list = field(default_factory=list)
    loss_sum: float = 0.0
    loss_n: int = 0
    b_simple: float = math.nan

    def __post_init__(self):
        if self.name not in ONLINE:
            raise ValueError(f"unknown online rule {self.name!r}; choose one of {', '.join(ONLINE)}")
        if not (self.every > 0 and 0 < self.min_batch <= self.max_batch and self.granularity > 0):
            raise ValueError(
                f"online rule needs every > 0 and 0 < min_batch <= max_batch; got every={self.every!r}"
                f", min_batch={self.min_batch!r}, max_batch={self.max_batch!r}"
            )
        if self.name == "floor-ratio" and len(self.bmin) != 2:
            raise ValueError("bmin: the floor-ratio rule needs the sweep's Bmin per target (from a fit.json)")
        if not self.decisions:
            self.decisions = [(0.0, self._snap(self.initial))]

    def _snap(self, b: float) -> float:
        b = min(max(b, self.min_batch), self.max_batch)
        return float(max(self.granularity, math.floor(b / self.granularity + 1e-9) * self.granularity))

    def batch_for(self, tokens: float) -> float:
        """The batch (tokens) at data ``tokens``: the last decision at or before it."""
        return next(b for d, b in reversed(self.decisions) if d <= tokens)

    __call__ = batch_for

    @property
    def starts(self) -> tuple:
        """Data of each decision so far (as a schedule's segment starts)."""
        return tuple(d for d, _ in self.decisions)

    def observe(self, loss: float, b_simple: float = math.nan) -> None:
        """One step's training loss and the current ``B_simple`` moving average (NaN while unmeasured or not
        positive: the rule then keeps its batch)."""
        if math.isfinite(loss):
            self.loss_sum, self.loss_n = self.loss_sum + float(loss), self.loss_n + 1
        self.b_simple = float(b_simple) if math.isfinite(b_simple) and b_simple > 0 else math.nan

    def due(self, tokens: float) -> bool:
        """Whether a decision is due at data ``tokens`` (each ``every`` tokens after the last)."""
        return tokens >= self.decisions[-1][0] + self.every

    def decide(self, tokens: float) -> float:
        """The batch from ``tokens`` on (never below the current one); clears the readings."""
        current = self.decisions[-1][1]
        want = self.proposal(tokens >= self.anneal_from)
        new = max(current, self._snap(want)) if math.isfinite(want) else current
        self.decisions.append((float(tokens), new))
        self.loss_sum, self.loss_n = 0.0, 0
        return new

    def proposal(self, decaying: bool = False) -> float:
        """What the rule asks for from the readings since the last decision (NaN when it has none)."""
        if self.name == "noise-scale":
            return self.b_simple
        if not self.loss_n:
            return math.nan
        L = self.loss_sum / self.loss_n
        targets, bmin = (np.log(np.asarray(v, float)) for v in self.bmin)
        at = float(np.exp(np.interp(math.log(L), targets, bmin))) if L > 0 else float(np.exp(bmin[0]))
        return (self.anneal if decaying else self.gamma) * at

    def schedule(self, unit="tokens", lr=None) -> BatchSchedule:
        """The decisions so far as a step schedule (the batch each run segment used)."""
        keep = [self.decisions[0]] + [p for q, p in zip(self.decisions, self.decisions[1:]) if p[1] != q[1]]
        return BatchSchedule(
            tuple(d for d, _ in keep), tuple(b for _, b in keep), unit, kind="step", lr=lr, params=dict(rule=self.name)
        )

    def state_dict(self) -> dict:
        """Everything a checkpoint keeps (plain numbers and lists)."""
        return dict(
            name=self.name,
            decisions=[list(p) for p in self.decisions],
            loss_sum=self.loss_sum,
            loss_n=self.loss_n,
            b_simple=self.b_simple,
            bmin=[list(v) for v in self.bmin],
        )

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; refuses another rule or another ``Bmin`` table."""
        if state.get("name") != self.name or [list(v) for v in self.bmin] != state.get("bmin"):
            raise ValueError(
                f"the checkpoint's online rule ({state.get('name')!r}) differs from this run's "
                f"({self.name!r}) or was read from another sweep"
            )
        self.decisions = [(float(d), float(b)) for d, b in state["decisions"]]
        self.loss_sum, self.loss_n = float(state["loss_sum"]), int(state["loss_n"])
        self.b_simple = float(state["b_simple"])


def online_rule(
    name: str,
    initial: float,
    horizon: float,
    plan=None,
    *,
    granularity: float = 1.0,
    rows=None,
    every: float | None = None,
    max_batch: float | None = None,
) -> OnlineRule:
    """The :class:`OnlineRule` ``dbs train --batch-rule NAME`` runs (and the NQM study scores): a decision every
    ``every`` (default ``horizon / 50``) data, batches whole multiples of ``granularity`` up to ``max_batch``
    (default ``horizon / 10``, never below ``initial``), the floor-ratio rule's ``Bmin`` from a fit's ``rows``
    (:func:`bmin_table`), its ``anneal`` factor from the decay of ``plan`` (a
    :class:`~dbs_theory.schedules.lr_plan.LRPlan`:
    a WSD decay's start; the last tenth of a constant-rate run; never under cosine). Units: the run's (tokens)."""
    from ..schedules.lr_plan import LRPlan

    plan = LRPlan() if plan is None else plan
    if plan.shape == "cosine":
        anneal_from = math.inf
    else:
        anneal_from = plan.stable_end(horizon) if plan.decay else 0.9 * horizon
    bmin = bmin_table(rows) if name == "floor-ratio" and rows is not None else ()
    return OnlineRule(
        name,
        initial,
        every or horizon / 50,
        min_batch=granularity,
        max_batch=max(max_batch or horizon / 10, initial),
        granularity=granularity,
        bmin=bmin,
        anneal_from=anneal_from,
    )
