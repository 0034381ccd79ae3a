"""Batch-size rules with oracle inputs, scored on the NQM against the optimal schedule: what each rule's idea can do.

Every rule here reads the NQM's *exact* quantities -- its own envelope
``Bopt(D)`` (:func:`sim.schedule_eval.nqm_bopt_curve`), the exact best fixed
batch under the run's LR schedule, and at each decision point (the start of
each of the optimiser's pieces, :func:`sim.optimal.problem`) the exact state's
noise scale, loss floor or branch probes (the NQM's moment recursion with
continuous steps, as :func:`sim.optimal.relaxed_loss`). No user has these
inputs: this is a ceiling for each idea, not a rule to run. The rules a user
runs -- from logs read by ``dbs fit``, through the code ``dbs schedule`` and
``dbs train --batch-rule`` run -- are scored by :mod:`sim.rule_chain`. The
scores of these (:func:`sim.rule_scores.compare_rules`) are in :mod:`sim.rule_scores`.

Every rule is a function of a :class:`RuleInputs` and returns ``(BatchSchedule,
lr)``: the batch schedule (examples) and the learning-rate schedule it runs
with (the given one, except Seesaw's).

Noise scales on the NQM (per-example gradient covariance ``diag(c)``, true
gradient ``h theta``, moments ``m = E theta^2``; sums weighted by ``counts``):
``B_simple = tr(Sigma) / |G|^2 = sum c / sum h^2 m`` (what the trainer's
two-batch estimates measure) and McCandlish's ``B_noise = tr(H Sigma) / G^T H G
= sum h c / sum h^3 m``, both in expectation over the run's randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dbs_theory.rules.online import ANNEAL, GAMMA
from dbs_theory.schedules.batch_schedules import BatchSchedule
from dbs_theory.theory.numeric import stationary_moment

from .nqm import NQM
from .optimal import Problem, cell_arrays, problem

__all__ = [
    "Unavailable",
    "RuleInputs",
    "rule_inputs",
    "noise_scales",
    "curves_along",
    "exact_envelope",
    "RULES",
    "TITLES",
    "MONOTONE",
    "paper",
    "noise_scale",
    "seesaw",
    "late_switch_rule",
    "merrill_doubling",
    "floor_ratio",
    "GAMMA",
    "ANNEAL",
]


class Unavailable(ValueError):
    """A rule cannot be built from these inputs (e.g. it reads an envelope ``Bopt(D)`` that could not be fitted)."""


@dataclass
class RuleInputs:
    """What a rule may read (module doc). Batches and data in examples; ``curve`` is None where no
    envelope could be fitted, ``curve_error`` then says why."""

    nqm: NQM
    eta: float
    budget: float
    lr_schedule: str
    prob: Problem
    curve: object
    fixed_batch: float
    fixed_loss: float
    curve_error: str = ""

    def envelope(self):
        """The envelope ``Bopt(D)`` (a callable of data, examples); :class:`Unavailable` where there is none."""
        if self.curve is None:
            raise Unavailable(f"no Bopt(D) envelope ({self.curve_error})")
        return self.curve


def noise_scales(nqm: NQM, m) -> tuple:
    """``(B_simple, B_noise)`` (examples) at second moments ``m`` (module doc)."""
    w = nqm.weights
    return (
        float(np.sum(w * nqm.c) / np.sum(w * nqm.h**2 * m)),
        float(np.sum(w * nqm.h * nqm.c) / np.sum(w * nqm.h**3 * m)),
    )


def curves_along(nqm: NQM, prob: Problem, schedule: BatchSchedule) -> dict:
    """What a run of ``schedule`` (examples; mapped onto ``prob``'s pieces, :meth:`Problem.on_pieces`) sees,
    at the end of each of ``prob``'s cells (continuous steps, as :func:`sim.optimal.relaxed_loss`).

    Returns a dict of arrays: ``D`` (examples), ``loss`` (expected loss, NQM units), ``batch`` (the
    schedule's batch on the cell, examples), ``b_noise`` (McCandlish's noise scale of the state,
    :func:`noise_scales`, examples) and ``bmin`` (``Bmin(L)``: the batch whose noise floor at the cell's rate
    equals the current excess loss, examples; :func:`floor_ratio` reads it).
    """
    loga, q, w = cell_arrays(nqm, prob)
    B = prob.on_pieces(schedule)[prob.cell_piece]
    m, rows = nqm.m0.astype(float).copy(), []
    for j in range(B.size):
        E = np.exp(prob.cell_data[j] / B[j] * loga[j])
        m = E * m + (1.0 - E) * q[j] / B[j]
        excess = float(w @ m)
        rows.append((excess, noise_scales(nqm, m)[1], float(w @ q[j]) / excess if excess > 0 else math.inf))
    loss, b_noise, bmin = np.array(rows).T
    return dict(D=np.cumsum(prob.cell_data), loss=nqm.L_irr + loss, batch=B, b_noise=b_noise, bmin=bmin)


def _fitted(make):
    """``(curve, "")`` from ``make()``, or ``(None, why)`` where it refuses (e.g. a loss that never halves)."""
    try:
        return make(), ""
    except ValueError as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def exact_envelope(nqm: NQM, eta: float, budget: float):
    """``(curve, why)``: the NQM's exact envelope ``Bopt(D)`` at rate ``eta`` over ``budget`` examples
    (:func:`sim.schedule_eval.nqm_bopt_curve`), or ``(None, why)`` where it cannot be fitted."""
    from .schedule_eval import nqm_bopt_curve

    return _fitted(lambda: nqm_bopt_curve(nqm, eta, budget))


def rule_inputs(nqm: NQM, eta: float, budget: float, lr_schedule="constant", pieces=32, fixed=None) -> RuleInputs:
    """The (oracle) inputs of every rule for one run (module doc). Where no envelope can be fitted the inputs
    carry none (``curve`` None, ``curve_error`` why)."""
    from .schedule_eval import nqm_best_fixed_batch

    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = fixed or nqm_best_fixed_batch(nqm, prob.lr, prob.horizon)
    curve = exact_envelope(nqm, eta, budget)
    return RuleInputs(nqm, eta, budget, lr_schedule, prob, curve[0], fixed[0], fixed[1], curve[1])


def _online(inp: RuleInputs, decide, monotone=False):
    """Run the NQM piece by piece; ``decide(k, D, eta, m, prev)`` picks piece ``k``'s batch (examples) from the
    state. The batch is held to ``[1e-7 budget, half the piece's data]``; a ``monotone`` rule's batch then
    never falls below the previous piece's (a narrow piece may hold less than one step of it: the
    simulation's steps are continuous)."""
    nqm, prob = inp.nqm, inp.prob
    loga, q, _ = cell_arrays(nqm, prob)
    m, prev, batches = nqm.m0.astype(float).copy(), None, []
    for k, D in enumerate(prob.starts):
        cells = np.nonzero(prob.cell_piece == k)[0]
        B = float(decide(k, float(D), float(prob.cell_eta[cells[0]]), m, prev))
        B = min(max(B, inp.budget * 1e-7), 0.5 * (prob.ends[k] - D))
        B = max(B, prev) if monotone and prev is not None else B
        for j in cells:
            E = np.exp(prob.cell_data[j] / B * loga[j])
            m = E * m + (1.0 - E) * q[j] / B
        batches.append(B)
        prev = B
    return batches


def paper(inp: RuleInputs):
    """The paper's rule (baseline): ``B = Bopt(D)`` from the envelope every ``budget / 50``, never falling."""
    from .schedule_eval import paper_schedule

    return paper_schedule(inp.envelope(), inp.budget, horizon=inp.prob.horizon), inp.prob.lr


def noise_scale(inp: RuleInputs):
    """McCandlish et al. (2018): ``B = B_noise`` of the current state, read at each decision point."""
    pick = lambda k, D, eta, m, prev: noise_scales(inp.nqm, m)[1]
    return inp.prob.schedule(_online(inp, pick), rule="noise scale"), inp.prob.lr


def floor_ratio(inp: RuleInputs, gamma=GAMMA, anneal=ANNEAL):
    """Ours: ``B = gamma Bmin(L)``: the noise floor held at ``1/gamma`` of the current excess loss.

    ``Bmin(L)`` is the batch whose loss floor at the current rate equals the
    current loss ``L`` (a sweep's ``Bmin(L*)``, scaled to the current rate). The
    optimum keeps ``B Bmin(L)^-1`` near 1.2 through the stable phase on every
    spectrum, budget and LR schedule tried, and raises it to 2-5 while the rate
    decays in a WSD run or in the last tenth of a constant-rate run (not under cosine) (docs/optimal_schedules.md):
    ``anneal`` is used there. Stable feedback: a larger batch lowers the loss by
    only ``1/gamma`` of the relative change.
    """
    w = 0.5 * inp.nqm.weights * inp.nqm.h
    horizon, peak = inp.prob.horizon, inp.eta

    def pick(k, D, eta, m, prev):
        floor_B = float(w @ stationary_moment(inp.nqm.h, inp.nqm.c, eta, 1.0))  # floor x B
        late = (inp.lr_schedule == "wsd" and eta < peak) or (inp.lr_schedule == "constant" and D >= 0.9 * horizon)
        B = (anneal if late else gamma) * floor_B / float(w @ m)
        return B

    return inp.prob.schedule(_online(inp, pick, monotone=True), rule="floor ratio"), inp.prob.lr


class _SeesawLR:
    """``lr(D) 2^(k/2)`` where ``k`` counts the halvings of ``lr`` so far (capped); a callable of data."""

    def __init__(self, lr, eta, kmax):
        self.lr, self.eta, self.kmax = lr, eta, kmax

    def halvings(self, D):
        v = np.asarray(self.lr(D) if callable(self.lr) else np.full(np.shape(D), self.lr), float)
        with np.errstate(divide="ignore"):
            return np.minimum(np.floor(np.log2(self.eta / np.maximum(v, 1e-300)) + 1e-12), self.kmax)

    def __call__(self, D):
        base = self.lr(D) if callable(self.lr) else self.lr
        return base * 2.0 ** (self.halvings(D) / 2)

    def next_change(self, D):
        nc = getattr(self.lr, "next_change", None)
        return nc(D) if nc is not None else math.inf


def seesaw(inp: RuleInputs, kmax=8):
    """Seesaw (arXiv 2510.14717): where the LR schedule would halve the rate, double the batch instead
    and multiply the rate by ``1/sqrt 2`` (from the best fixed batch; at most ``kmax`` doublings)."""
    prob = inp.prob
    lr = _SeesawLR(prob.lr, inp.eta, kmax)
    D = np.linspace(0.0, prob.horizon, 4001)[:-1]
    k = lr.halvings(D)
    starts = [0.0] + [float(D[i]) for i in np.nonzero(np.diff(k) > 0)[0] + 1]
    sizes = [inp.fixed_batch * 2.0 ** float(k[np.searchsorted(D, s)]) for s in starts]
    return BatchSchedule(tuple(starts), tuple(sizes), "examples", kind="step", params=dict(rule="seesaw")), lr


def late_switch_rule(inp: RuleInputs, at=0.75, ratio=4.0):
    """Late switching (arXiv 2602.14208, :func:`dbs_theory.rules.online.late_switch`): half the best fixed batch
    until ``at`` of the budget, then ``ratio`` times that (one switch, late)."""
    from dbs_theory.rules.online import late_switch as build

    sched = build(inp.fixed_batch, at * inp.budget, ratio, unit="examples")
    return sched, inp.prob.lr


def merrill_doubling(inp: RuleInputs, tol=0.1, branch=0.25):
    """Merrill et al. (2025): start at the envelope's ``Bopt`` of the first piece; at each decision point
    run a branch probe (``branch * D`` examples at the current rate) at the current batch and at twice
    it, and double when the doubled branch's loss is within ``tol`` of the branch's loss drop (the
    critical batch has reached twice the batch)."""
    nqm, curve = inp.nqm, inp.envelope()
    w = 0.5 * nqm.weights * nqm.h

    def branch_loss(m, eta, B, data):
        a = np.abs(1.0 - eta * nqm.h) ** 2
        E = a ** (data / B)
        return float(w @ (E * m + (1.0 - E) * stationary_moment(nqm.h, nqm.c, eta, B)))

    def pick(k, D, eta, m, prev):
        if prev is None:
            return float(curve(inp.prob.ends[0]))
        data = max(branch * D, 4 * prev)
        L0, L1, L2 = float(w @ m), branch_loss(m, eta, prev, data), branch_loss(m, eta, 2 * prev, data)
        return 2 * prev if (L2 - L1) <= tol * (L0 - L1) else prev

    return inp.prob.schedule(_online(inp, pick, monotone=True), rule="merrill doubling"), inp.prob.lr


#: id -> rule; every rule's schedule is scored at the run's horizon with the LR it returns
RULES = {
    "paper": paper,
    "noise-scale": noise_scale,
    "seesaw": seesaw,
    "late-switch": late_switch_rule,
    "merrill-doubling": merrill_doubling,
    "floor-ratio": floor_ratio,
}
#: id -> display name
TITLES = {
    "paper": "paper",
    "noise-scale": "noise scale (McCandlish)",
    "seesaw": "Seesaw",
    "late-switch": "late switch",
    "merrill-doubling": "Merrill doubling",
    "floor-ratio": "floor ratio (ours)",
}
#: the ids of the rules that claim a non-decreasing batch
MONOTONE = frozenset({"paper", "seesaw", "late-switch", "merrill-doubling", "floor-ratio"})
