"""Batch-size schedules judged on the NQM, at equal data, with the exact dynamics.

Compared at a data budget ``D`` (examples):

(a) the best fixed batch for that budget;
(b) a mid-range fixed batch (the paper's baseline: the geometric mean of the
    dynamic schedule's first and last batch);
(c) the paper's dynamic schedule built from the NQM's own ``Bopt(D)``, with
    ``interval = D/50`` and ``momentum = 1``: on the NQM the curve is exact,
    so there is no estimation noise for the momentum to smooth;
(d) the best K-piece schedule found: K piecewise-constant batches on a log
    grid of data, optimised (Powell, in log B) from both (a) and (c).

The loss at the budget is read from the exact trajectory, interpolated
linearly in data between the last two steps, so every schedule is judged at
exactly ``D``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from dbs_theory.schedules.batch_schedules import BatchSchedule, constant_batch, dynamic_batch, lr_rescale
from dbs_theory.measure.bopt_curve import fit_bopt_curve
from dbs_theory.deprecation import renamed
from dbs_theory.schedules.lr_schedules import cosine, wsd

from .dynamics import as_schedule, expected_loss
from .frontier import argmin_log, bopt, steps_to_target
from .nqm import NQM

__all__ = [
    "ScheduleComparison",
    "loss_at_budget",
    "nqm_best_fixed_batch",
    "nqm_bopt_curve",
    "best_k_piece",
    "compare_schedules",
    "ablations",
    "trajectories",
    "measured_schedules",
    "crossing_step",
]


@renamed(batch="batch_size")
def loss_at_budget(nqm: NQM, lr, batch_size, budget: float) -> float:
    """Expected loss after exactly ``budget`` examples under the given schedules.

    Linear in data between the start and the end of the step that crosses the
    budget (:func:`crossing_step`: the step's own batch, which is the batch at
    its start, not the batch at ``budget``). Interpolating from step 0 instead
    biased the loss by up to ``L0 B / budget``, a sawtooth in ``B`` that moved
    the best fixed batch by 15%; from the step a batch change past the crossing
    step's start would place, by up to 8%.
    """
    start = crossing_step(batch_size, budget)
    # recorded a hair below: the simulator sums the steps one by one where the rate varies, and its sum may
    # end a few ulps below the closed form's, which would then record the crossing step's end instead
    at = start - 1e-9 * max(1.0, start)
    tr = expected_loss(nqm, lr, batch_size, data=budget, record_at=[at] if start > 0 else None)
    if tr.D.size == 1 or tr.D[-1] == budget:
        return float(tr.loss[-1])
    f = (budget - tr.D[-2]) / (tr.D[-1] - tr.D[-2])
    return float(tr.loss[-2] + f * (tr.loss[-1] - tr.loss[-2]))


def crossing_step(batch_size, budget: float) -> float:
    """Data (examples) where the step that reaches ``budget`` starts: each step takes the batch at its own
    start (:func:`sim.dynamics.expected_loss`), so over constant pieces the step starts are closed form. A
    batch schedule that varies step by step is walked one step at a time."""
    b_s, D = as_schedule(batch_size, "batch_size"), 0.0
    nxt = getattr(b_s, "next_change", None)
    while True:
        b = float(b_s(D))
        if not b > 0:
            raise ValueError(f"batch size must be positive; got {b!r} at D={D:g}")
        edge = nxt(D) if nxt is not None else D
        to_budget = max(1, math.ceil((budget - D) / b - 1e-12))
        if edge >= budget or edge == math.inf:
            return D + (to_budget - 1) * b
        to_edge = max(1, math.ceil((edge - D) / b - 1e-12)) if edge > D else 1
        if to_budget <= to_edge:
            return D + (to_budget - 1) * b
        D += to_edge * b


def nqm_best_fixed_batch(nqm: NQM, lr, budget: float, min_batch: float = 0.0):
    """``(B, loss)``: the fixed batch with the lowest loss at the budget (10 to 200 000 steps, and at least
    ``min_batch`` examples)."""
    fun = lambda B: loss_at_budget(nqm, lr, B, budget)
    return argmin_log(fun, max(budget / 2e5, min(min_batch, budget / 20)), budget / 10, n=40, xtol=1e-6)


def nqm_bopt_curve(nqm: NQM, eta: float, budget: float, n=10):
    """``Bopt(D)`` fitted (power law) through exact ``(Emin, Bopt)`` pairs spanning the budget."""
    L0 = nqm.initial_loss()
    _, L_end = nqm_best_fixed_batch(nqm, eta, 3 * budget)
    targets = np.geomspace(0.5 * L0, L_end * 1.01, n)
    E, B = [], []
    for t in targets:
        b = bopt(nqm, eta, t)
        B.append(b)
        E.append(b * float(steps_to_target(nqm, eta, b, t)))
    return fit_bopt_curve(np.array(E), np.array(B), lr=eta, extrapolate=True)


def paper_schedule(curve, budget, horizon=None):
    interval = budget / 50
    return dynamic_batch(
        curve,
        interval=interval,
        momentum=1.0,
        initial=float(curve(interval)),
        granularity=1e-9,
        min_batch=1e-9,
        max_batch=budget,
        monotone=True,
        horizon=horizon or budget,
        unit="examples",
        lr=curve.lr,
    )


def _pieces(budget, K):
    return [0.0] + list(budget * np.geomspace(1 / 200, 1, K)[:-1])


def best_k_piece(nqm: NQM, lr, budget: float, starts_from, K=8):
    """The best K-piece schedule found from each schedule in ``starts_from``.

    Returns
    -------
    (BatchSchedule, float)
        The schedule and its loss at the budget.
    """
    grid = _pieces(budget, K)
    mids = [math.sqrt(max(a, budget / 400) * b) for a, b in zip(grid, grid[1:] + [budget])]
    lo, hi = math.log(budget * 1e-7), math.log(budget / 4)
    make = lambda x: BatchSchedule(tuple(grid), tuple(np.exp(np.clip(x, lo, hi))), "examples")
    fun = lambda x: loss_at_budget(nqm, lr, make(x), budget)
    best = None
    for sched in starts_from:
        x0 = np.log([sched(m) for m in mids])
        res = optimize.minimize(
            fun, x0, method="Powell", bounds=[(lo, hi)] * K, options=dict(xtol=1e-4, ftol=1e-10, maxfev=4000)
        )
        cand = (res.fun, res.x) if res.fun <= fun(x0) else (fun(x0), x0)
        if best is None or cand[0] < best[0]:
            best = cand
    return make(best[1]), float(best[0])


@dataclass(frozen=True)
class ScheduleComparison:
    """(a)-(d) at one budget (the module docstring): each schedule and its exact final loss.

    Attributes
    ----------
    budget, eta : float             Data (examples) and the learning rate.
    fixed_batch, best_fixed_loss    (a) the best fixed batch (examples) and its loss.
    mid_batch, mid_loss             (b) the fixed batch midway (geometric) between the dynamic schedule's ends.
    dynamic, dynamic_loss           (c) the paper's dynamic schedule (BatchSchedule) and its loss.
    k_piece, k_piece_loss           (d) the best K-piece schedule and its loss.
    bopt_curve : BoptCurve          The NQM's exact Bopt(D) the dynamic schedule follows.
    pieces : int                    K, the pieces (d) may use.
    """

    budget: float
    eta: float
    fixed_batch: float
    best_fixed_loss: float
    mid_batch: float
    mid_loss: float
    dynamic: BatchSchedule
    dynamic_loss: float
    k_piece: BatchSchedule
    k_piece_loss: float
    bopt_curve: object
    pieces: int = 8

    @property
    def gap_closed(self) -> float:
        """The fraction of the best-fixed to K-piece loss gap the dynamic schedule closes (NaN without a gap)."""
        gap = self.best_fixed_loss - self.k_piece_loss
        return (self.best_fixed_loss - self.dynamic_loss) / gap if gap > 0 else float("nan")

    def losses(self) -> dict:
        """``{best_fixed, mid_fixed, dynamic, k_piece}`` -> final loss: the arms by name."""
        return dict(
            best_fixed=self.best_fixed_loss,
            mid_fixed=self.mid_loss,
            dynamic=self.dynamic_loss,
            k_piece=self.k_piece_loss,
        )

    def rows(self) -> list:
        """The table for people: ``name``, ``loss``, ``batch`` (a summary of the schedule) per arm."""
        d, kp = self.dynamic, self.k_piece
        return [
            dict(name="(a) best fixed", loss=self.best_fixed_loss, batch=f"{self.fixed_batch:.4g}"),
            dict(name="(b) mid-range fixed", loss=self.mid_loss, batch=f"{self.mid_batch:.4g}"),
            dict(
                name="(c) dynamic (paper)",
                loss=self.dynamic_loss,
                batch=f"{d.sizes[0]:.3g} -> {d.sizes[-1]:.3g} ({len(d.sizes)} steps)",
            ),
            dict(
                name=f"(d) best {self.pieces}-piece",
                loss=self.k_piece_loss,
                batch=" ".join(f"{b:.3g}" for b in kp.sizes),
            ),
        ]


def compare_schedules(nqm: NQM, eta: float, budget: float, K=8) -> ScheduleComparison:
    """(a)-(d) at one budget (see the module docstring) as a :class:`ScheduleComparison`."""
    nqm.check_stable(eta)
    curve = nqm_bopt_curve(nqm, eta, budget)
    B_a, L_a = nqm_best_fixed_batch(nqm, eta, budget)
    dyn = paper_schedule(curve, budget)
    B_b = math.sqrt(dyn.sizes[0] * dyn.sizes[-1])
    L_b = loss_at_budget(nqm, eta, B_b, budget)
    L_c = loss_at_budget(nqm, eta, dyn, budget)
    kp, L_d = best_k_piece(nqm, eta, budget, [constant_batch(B_a, "examples"), dyn], K)
    return ScheduleComparison(budget, eta, B_a, L_a, B_b, L_b, dyn, L_c, kp, L_d, curve, K)


def ablations(nqm: NQM, eta: float, budget: float, decay_frac=0.2, curve=None, fixed_batch=None) -> list:
    """The paper's ablations on the NQM at equal data (rows of name, fixed, dynamic losses).

    ``curve`` and ``fixed_batch`` may be passed from :func:`compare_schedules` at the same
    budget, which has already computed them.
    """
    curve = curve or nqm_bopt_curve(nqm, eta, budget)
    dyn = paper_schedule(curve, budget, horizon=budget * (1 + decay_frac))
    B_fix = fixed_batch or nqm_best_fixed_batch(nqm, eta, budget)[0]
    rows = []
    # 1. constant LR vs sqrt-rescaled at each increase
    sqrt = lr_rescale("sqrt", dyn.sizes[0])
    scaled = [(a, sqrt(eta, b)) for a, b in dyn.segments]
    hmax = float(nqm.h.max())
    if max(v for _, v in scaled) * hmax < 2:
        L_sqrt = loss_at_budget(nqm, scaled, dyn, budget)
    else:
        L_sqrt = float("inf")  # the rescaled rate leaves the stable range: SGD diverges
    rows.append(
        dict(
            name="lr: constant vs sqrt-rescaled (dynamic batch)",
            baseline=loss_at_budget(nqm, eta, dyn, budget),
            variant=L_sqrt,
            note="variant = sqrt(B/B0) rescaling",
        )
    )
    # 2. WSD decay after the stable phase, to 10% over decay_frac * budget
    total = budget * (1 + decay_frac)
    lr_wsd = wsd(eta, 0.0, budget, budget * decay_frac, 0.1)
    rows.append(
        dict(
            name=f"WSD decay to 10% over {decay_frac:.0%} more data",
            baseline=loss_at_budget(nqm, lr_wsd, B_fix, total),
            variant=loss_at_budget(nqm, lr_wsd, dyn, total),
            note="baseline = best fixed batch of the stable phase; variant = dynamic",
        )
    )
    # 3. cosine schedule: best fixed batch (re-optimised under cosine) vs dynamic
    lr_cos = cosine(eta, budget)
    B_cos, L_cos = nqm_best_fixed_batch(nqm, lr_cos, budget)
    rows.append(
        dict(
            name="cosine LR: best fixed vs dynamic batch",
            baseline=L_cos,
            variant=loss_at_budget(nqm, lr_cos, dyn, budget),
            note=f"best fixed under cosine: B={B_cos:.4g}",
        )
    )
    for r in rows:
        r["gain"] = r["baseline"] - r["variant"]
    return rows


def trajectories(nqm: NQM, lr, batches: dict, budget: float, n=200) -> dict:
    """Expected-loss curves of several batch schedules up to ``budget`` examples, for plots.

    ``batches`` maps a name to a batch schedule (a constant, ``(from_D, B)``
    pairs or a :class:`~dbs_theory.schedules.batch_schedules.BatchSchedule`). Returns
    ``{name: {"D": [...], "loss": [...]}}`` at about ``n`` log-spaced data points.
    """
    at = np.geomspace(budget / 1e3, budget, n)
    out = {}
    for name, b in batches.items():
        spec = list(b.segments) if isinstance(b, BatchSchedule) else b
        tr = expected_loss(nqm, lr, spec, data=budget, record_at=at)
        out[name] = dict(D=tr.D.tolist(), loss=tr.loss.tolist())
    return out


def measured_schedules(nqm: NQM, eta: float, swept: float, budgets, batches=None) -> list:
    """Schedules built from a measured sweep, judged at budgets inside and beyond it.

    A plain 2x sweep (exact runs, every run cut at ``swept`` examples) gives
    the envelope ``Bopt(D)`` up to ``swept``. Two curves are made from the
    same envelope points: the measured curve itself (monotone; held at its
    last value past ``swept``) and a power law fitted through them (followed
    past ``swept``). Each drives the paper's dynamic schedule (interval
    ``budget/50``); the loss at each budget is compared with the best fixed
    batch and with the schedule from the NQM's exact ``Bopt(D)``.

    Returns one row per (budget, schedule): ``budget``, ``inside`` (budget <=
    ``swept``), ``schedule``, ``loss``, ``gain`` (best fixed minus it: > 0 is
    better than the best fixed batch), ``batches`` (first -> last).
    """
    from dbs_theory.measure.estimators import envelope_bopt

    from .identify import exact_runs

    batches = 2.0 ** np.arange(13) if batches is None else np.asarray(batches, float)
    runs = exact_runs(nqm, eta, batches, swept)
    env = envelope_bopt(runs, np.geomspace(swept / 300, swept, 24), bootstrap=0)
    curves = {
        "envelope (measured)": fit_bopt_curve(env, form="monotone", extrapolate=True, lr=eta),
        "power law through the envelope": fit_bopt_curve(env, form="power", extrapolate=True, lr=eta),
    }
    rows = []
    for budget in budgets:
        B_fix, L_fix = nqm_best_fixed_batch(nqm, eta, budget)
        scheds = {name: paper_schedule(c, budget) for name, c in curves.items()}
        scheds["exact Bopt(D) (NQM)"] = paper_schedule(nqm_bopt_curve(nqm, eta, budget), budget)
        rows.append(
            dict(
                budget=budget,
                inside=budget <= swept * (1 + 1e-9),
                schedule="best fixed batch",
                loss=L_fix,
                gain=0.0,
                batches=f"{B_fix:.4g}",
            )
        )
        for name, s in scheds.items():
            L = loss_at_budget(nqm, eta, s, budget)
            rows.append(
                dict(
                    budget=budget,
                    inside=budget <= swept * (1 + 1e-9),
                    schedule=name,
                    loss=L,
                    gain=L_fix - L,
                    batches=f"{s.sizes[0]:.3g} -> {s.sizes[-1]:.3g}",
                )
            )
    return rows
