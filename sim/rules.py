"""Batch-size rules built from what a user can have, scored on the NQM against the optimal schedule (issue 29).

Every rule is a function of a :class:`RuleInputs` and returns ``(BatchSchedule,
lr)``: the batch schedule (examples) and the learning-rate schedule it runs
with (the given one, except Seesaw's). What a rule may read:

- ``curve``: a sweep's envelope ``Bopt(D)`` (exact: the NQM's own, as
  :func:`sim.schedule_eval.nqm_bopt_curve` fits it; measured: the envelope of
  a Monte Carlo sweep, one SGD replica per batch ``1, 2, ..., 4096``);
- ``fixed_batch``: the sweep's best fixed batch for this run (exact: the best
  fixed batch under this LR schedule; measured: the grid batch whose Monte
  Carlo loss at the budget is lowest);
- the budget and the LR schedule;
- quantities measured online, at each decision point (the start of each of the
  optimiser's pieces, :func:`sim.optimal.problem`): the gradient noise scale of
  the current state and short branch probes. Online rules run the NQM's exact
  moment recursion (continuous steps, as :func:`sim.optimal.relaxed_loss`) to
  know the state they measure; measured readings carry lognormal noise of sd
  ``noise_sd`` (0.3 when measured: about what a few hundred steps of two-batch
  estimates give).

Noise scales on the NQM (per-example gradient covariance ``diag(c)``, true
gradient ``h theta``, moments ``m = E theta^2``; sums weighted by ``counts``):
``B_simple = tr(Sigma) / |G|^2 = sum c / sum h^2 m`` (what the trainer's
two-batch estimates measure) and McCandlish's ``B_noise = tr(H Sigma) / G^T H G
= sum h c / sum h^3 m``, both in expectation over the run's randomness.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dbs_theory.batch_schedules import BatchSchedule, constant_batch

from .nqm import NQM
from .optimal import Problem, _cell_arrays, optimal_schedule, problem

__all__ = ["RuleInputs", "rule_inputs", "noise_scales", "RULES", "MONOTONE", "paper", "noise_scale",
           "seesaw", "late_switch", "merrill_doubling", "floor_ratio", "compare_rules", "GAMMA",
           "ANNEAL", "NOISE_SD", "SPECTRA", "study", "summarize"]

#: our rule: batch over Bmin(current loss) while the rate holds, and while it decays (docs/optimal_schedules.md)
GAMMA, ANNEAL = 1.5, 3.0
#: sd of the log of a measured online reading (noise scale, probe ratio)
NOISE_SD = 0.3


@dataclass
class RuleInputs:
    """What a rule may read (module doc). Batches and data in examples."""

    nqm: NQM
    eta: float
    budget: float
    lr_schedule: str
    prob: Problem
    curve: object
    fixed_batch: float
    fixed_loss: float
    noise_sd: float = 0.0
    seed: int = 0
    measured: bool = False
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def reading(self, value: float) -> float:
        """``value`` as measured: times ``exp(noise_sd z)``, ``z`` standard normal."""
        return float(value * math.exp(self.noise_sd * self.rng.standard_normal())) if self.noise_sd else value


def noise_scales(nqm: NQM, m) -> tuple:
    """``(B_simple, B_noise)`` (examples) at second moments ``m`` (module doc)."""
    w = nqm.weights
    return (float(np.sum(w * nqm.c) / np.sum(w * nqm.h**2 * m)),
            float(np.sum(w * nqm.h * nqm.c) / np.sum(w * nqm.h**3 * m)))


_SWEEPS = {}  # (id(nqm), eta, budget, seed) -> (nqm, result): one Monte Carlo sweep serves every LR schedule


def _measured_sweep(nqm, eta, budget, seed):
    """``(curve, best grid batch)`` from a Monte Carlo sweep at constant ``eta``, one replica per batch."""
    key = (id(nqm), float(eta), float(budget), int(seed))
    if key in _SWEEPS and _SWEEPS[key][0] is nqm:
        return _SWEEPS[key][1]
    from dbs_theory.bopt_curve import fit_bopt_curve
    from dbs_theory.estimators import envelope_bopt

    from .identify import mc_runs

    batches = 2.0 ** np.arange(13)
    runs = mc_runs(nqm, eta, batches, budget, replicas=1, seeds_per_run=1, seed=seed)[0]
    env = envelope_bopt(runs, np.geomspace(budget / 300, budget, 24), bootstrap=0)
    curve = fit_bopt_curve(env, form="monotone", extrapolate=True, lr=eta)
    last = [float(np.mean(r.loss[-max(3, r.loss.size // 20):])) for r in runs]
    _SWEEPS[key] = (nqm, (curve, float(batches[int(np.argmin(last))])))
    return _SWEEPS[key][1]


def rule_inputs(nqm: NQM, eta: float, budget: float, lr_schedule="constant", measured=False, seed=0,
                pieces=32, fixed=None) -> RuleInputs:
    """The inputs of every rule for one run; ``measured`` swaps exact inputs for measured ones (module doc)."""
    from .schedule_eval import best_fixed_batch, loss_at_budget, nqm_bopt_curve

    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = fixed or best_fixed_batch(nqm, prob.lr, prob.horizon)
    if measured:
        curve, B_fix = _measured_sweep(nqm, eta, budget, seed)
        L_fix = loss_at_budget(nqm, prob.lr, B_fix, prob.horizon)
    else:
        curve, (B_fix, L_fix) = nqm_bopt_curve(nqm, eta, budget), fixed
    return RuleInputs(nqm, eta, budget, lr_schedule, prob, curve, B_fix, L_fix,
                      NOISE_SD if measured else 0.0, seed, measured)


def _online(inp: RuleInputs, decide):
    """Run the NQM piece by piece; ``decide(k, D, eta, m, prev)`` picks piece ``k``'s batch from the state."""
    nqm, prob = inp.nqm, inp.prob
    loga, q, _ = _cell_arrays(nqm, prob)
    m, prev, batches = nqm.m0.astype(float).copy(), None, []
    for k, D in enumerate(prob.starts):
        cells = np.nonzero(prob.cell_piece == k)[0]
        B = float(decide(k, float(D), float(prob.cell_eta[cells[0]]), m, prev))
        B = min(max(B, inp.budget * 1e-7), 0.5 * (prob.ends[k] - D))
        for j in cells:
            E = np.exp(prob.cell_data[j] / B * loga[j])
            m = E * m + (1.0 - E) * q[j] / B
        batches.append(B)
        prev = B
    return batches


def paper(inp: RuleInputs):
    """The paper's rule (baseline): ``B = Bopt(D)`` from the envelope every ``budget / 50``, never falling."""
    from .schedule_eval import _paper_schedule

    return _paper_schedule(inp.curve, inp.budget, horizon=inp.prob.horizon), inp.prob.lr


def noise_scale(inp: RuleInputs):
    """McCandlish et al. (2018): ``B = B_noise`` of the current state, read at each decision point."""
    pick = lambda k, D, eta, m, prev: inp.reading(noise_scales(inp.nqm, m)[1])
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
        floor_B = float(w @ (eta * inp.nqm.c / (inp.nqm.h * (2.0 - eta * inp.nqm.h))))  # floor x B
        late = (inp.lr_schedule == "wsd" and eta < peak) or (inp.lr_schedule == "constant" and D >= 0.9 * horizon)
        B = (anneal if late else gamma) * inp.reading(floor_B / float(w @ m))
        return B if prev is None else max(B, prev)

    return inp.prob.schedule(_online(inp, pick), rule="floor ratio"), inp.prob.lr


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


def late_switch(inp: RuleInputs, at=0.75, ratio=4.0):
    """Late switching (arXiv 2602.14208): half the best fixed batch until ``at`` of the budget, then
    ``ratio`` times that (one switch, late)."""
    small = 0.5 * inp.fixed_batch
    return BatchSchedule((0.0, at * inp.budget), (small, ratio * small), "examples", kind="step",
                         params=dict(rule="late switch", at=at, ratio=ratio)), inp.prob.lr


def merrill_doubling(inp: RuleInputs, tol=0.1, branch=0.25):
    """Merrill et al. (2025): start at the envelope's ``Bopt`` of the first piece; at each decision point
    run a branch probe (``branch * D`` examples at the current rate) at the current batch and at twice
    it, and double when the doubled branch's loss is within ``tol`` of the branch's loss drop (the
    critical batch has reached twice the batch)."""
    nqm = inp.nqm
    w = 0.5 * nqm.weights * nqm.h

    def branch_loss(m, eta, B, data):
        a = np.abs(1.0 - eta * nqm.h) ** 2
        E = a ** (data / B)
        return float(w @ (E * m + (1.0 - E) * eta * nqm.c / (B * nqm.h * (2.0 - eta * nqm.h))))

    def pick(k, D, eta, m, prev):
        if prev is None:
            return float(inp.curve(inp.prob.ends[0]))
        data = max(branch * D, 4 * prev)
        L0, L1, L2 = float(w @ m), branch_loss(m, eta, prev, data), branch_loss(m, eta, 2 * prev, data)
        return 2 * prev if (L2 - L1) <= tol * inp.reading(L0 - L1) else prev

    return inp.prob.schedule(_online(inp, pick), rule="merrill doubling"), inp.prob.lr


#: name -> rule; every rule's schedule is scored at the run's horizon with the LR it returns
RULES = {"paper": paper, "noise scale (McCandlish)": noise_scale, "Seesaw": seesaw, "late switch": late_switch,
         "Merrill doubling": merrill_doubling, "floor ratio (ours)": floor_ratio}
#: rules that claim a non-decreasing batch
MONOTONE = {"paper", "Seesaw", "late switch", "Merrill doubling", "floor ratio (ours)"}


def compare_rules(nqm: NQM, eta: float, budget: float, lr_schedule="constant", measured=False, seed=0,
                  pieces=32, rules=None, optimal=None) -> list:
    """Every rule against the best fixed batch and the optimal schedule, at equal data.

    Returns one dict per rule (``"best fixed"``, ``"optimal"`` and each of
    :data:`RULES`): ``rule``, ``loss`` (exact, at the run's horizon),
    ``gap_closed`` ``= (L_fixed - L) / (L_fixed - L_optimal)`` (1: as good as
    the optimum; < 0: worse than the best fixed batch), ``schedule``, ``lr``,
    ``monotone`` (claimed). ``measured`` swaps the rules' inputs for measured
    ones; ``best fixed`` and ``optimal`` are always the exact ones.
    """
    from .schedule_eval import best_fixed_batch, loss_at_budget

    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = best_fixed_batch(nqm, prob.lr, prob.horizon)
    opt, L_opt = optimal or optimal_schedule(nqm, eta, budget, lr_schedule, pieces, fixed=fixed)
    inp = rule_inputs(nqm, eta, budget, lr_schedule, measured, seed, pieces, fixed=fixed)
    gap = fixed[1] - L_opt
    row = lambda name, L, s, lr: dict(rule=name, loss=float(L), schedule=s, lr=lr, monotone=name in MONOTONE,
                                      gap_closed=(fixed[1] - L) / gap if gap > 0 else math.nan)
    rows = [row("best fixed", fixed[1], constant_batch(fixed[0], "examples"), prob.lr), row("optimal", L_opt, opt, prob.lr)]
    for name, fn in (rules or RULES).items():
        sched, lr = fn(inp)
        rows.append(row(name, loss_at_budget(nqm, lr, sched, prob.horizon), sched, lr))
    return rows


#: the study's spectra (d = 1000 modes each)
SPECTRA = {"Zhang (h = c = 1/i)": lambda: NQM.zhang2019(1000),
           "power law 1.5": lambda: NQM.power_law(1000, 1.5),
           "power law 2.5, c ~ h^0.5": lambda: NQM.power_law(1000, 2.5, noise_exponent=0.5),
           "power law 1.2 + L_irr = 1": lambda: NQM.power_law(1000, 1.2, L_irr=1.0)}


def study(budgets=(1e4, 1e5, 1e6), lr_schedules=("constant", "wsd", "cosine"), measured=False, eta=0.5,
          spectra=None, seed=0, progress=False) -> list:
    """:func:`compare_rules` over spectra x budgets x LR schedules: one row per (case, rule), schedules dropped."""
    from tqdm.auto import tqdm

    rows = []
    cases = [(n, b, s) for n in (spectra or SPECTRA) for b in budgets for s in lr_schedules]
    made = {}
    for name, budget, sched in tqdm(cases, desc="cases", disable=not progress):
        nqm = made.setdefault(name, (spectra or SPECTRA)[name]())
        for r in compare_rules(nqm, eta, budget, sched, measured=measured, seed=seed):
            rows.append(dict(spectrum=name, budget=budget, lr_schedule=sched, measured=measured, rule=r["rule"],
                             loss=r["loss"], gap_closed=r["gap_closed"],
                             first=r["schedule"].sizes[0], last=r["schedule"].sizes[-1]))
    return rows


def summarize(rows) -> list:
    """Per (LR schedule, rule): cases, min and median gap closed, and how often it loses to the best fixed."""
    out = []
    for sched in dict.fromkeys(r["lr_schedule"] for r in rows):
        for rule in dict.fromkeys(r["rule"] for r in rows):
            g = np.array([r["gap_closed"] for r in rows if r["lr_schedule"] == sched and r["rule"] == rule])
            out.append(dict(lr_schedule=sched, rule=rule, cases=int(g.size), min_gap=float(np.min(g)),
                            median_gap=float(np.median(g)), loses=int(np.sum(g < -1e-9)),
                            at_least_60=int(np.sum(g >= 0.6))))
    return out
