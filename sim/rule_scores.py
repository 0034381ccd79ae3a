"""The oracle rules of :mod:`sim.rules` scored on the NQM: each one's exact loss against the best fixed batch and
the optimal schedule at equal data (:func:`compare_rules`), its JSON record, and the study over spectra.

A score is a :class:`RuleScore`: the rule's id and display name, its exact
loss at the run's horizon, the share of the best-fixed-to-optimal gap it
closes, its schedule and learning rate. A rule that cannot be built from the
inputs (:class:`sim.rules.Unavailable`) has no schedule, a NaN loss and the
reason in its note. Batches and data in examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dbs_theory.schedules.batch_schedules import BatchSchedule, constant_batch

from .nqm import NQM
from .optimal import optimal_schedule, problem
from .rules import MONOTONE, RULES, TITLES, RuleInputs, Unavailable, curves_along, exact_envelope, rule_inputs

__all__ = [
    "RuleScore",
    "BEST_FIXED",
    "OPTIMAL",
    "compare_rules",
    "same_noise",
    "optimum_shape",
    "budget_record",
    "SPECTRA",
    "study",
    "summarize",
]

#: the ids of the two references every comparison holds
BEST_FIXED, OPTIMAL = "best-fixed", "optimal"
_TITLES = {BEST_FIXED: "best fixed", OPTIMAL: "optimal", **TITLES}


@dataclass(frozen=True)
class RuleScore:
    """One schedule scored at the run's horizon (exact loss, NQM units).

    rule        The id: :data:`BEST_FIXED`, :data:`OPTIMAL` or a key of :data:`sim.rules.RULES`.
    title       Its display name.
    loss        The exact loss at the horizon; NaN where the rule could not be built.
    gap_closed  ``(L_fixed - loss) / (L_fixed - L_optimal)``: 1 as good as the optimum, < 0 worse than the best
                fixed batch; NaN where there is no gap to close or no loss.
    schedule    The batch schedule (examples), None where the rule could not be built.
    lr          The learning-rate schedule it runs with (a number or a callable of data).
    monotone    Whether the rule claims a batch that never falls.
    note        Why the rule could not be built, else "".
    """

    rule: str
    title: str
    loss: float
    gap_closed: float
    schedule: BatchSchedule | None
    lr: object = field(repr=False)
    monotone: bool = False
    note: str = ""

    @property
    def available(self) -> bool:
        """Whether the rule could be built (it has a schedule and a loss)."""
        return self.schedule is not None

    def record(self) -> dict:
        """Plain JSON: ``rule``, ``title``, ``loss``, ``gap_closed`` (null for NaN), ``note``, ``schedule``
        (:meth:`BatchSchedule.to_json`'s object, or null)."""
        import json

        return dict(
            rule=self.rule,
            title=self.title,
            loss=_finite(self.loss),
            gap_closed=_finite(self.gap_closed),
            note=self.note,
            schedule=json.loads(self.schedule.to_json()) if self.schedule is not None else None,
        )


def same_noise(inp: RuleInputs, schedule: BatchSchedule, lr) -> BatchSchedule:
    """The batch schedule (examples) that, under the run's own LR schedule, matches a rule that also changes
    the rate (Seesaw): on each of the optimiser's cells ``B eta_run / eta_rule``, which keeps the per-example
    drift ``eta h m / B`` and noise ``eta^2 c / B^2`` of the rule's (the same to first order in ``eta h``)."""
    prob = inp.prob
    mid = np.cumsum(prob.cell_data) - 0.5 * prob.cell_data
    rate = lambda f: np.asarray(f(mid), float) if callable(f) else np.full(mid.size, float(f))
    B = np.asarray(schedule.sizes, float)[np.searchsorted(schedule.starts, mid, side="right") - 1]
    starts = np.append(0.0, np.cumsum(prob.cell_data)[:-1])
    return BatchSchedule(
        tuple(starts.tolist()),
        tuple((B * prob.cell_eta / rate(lr)).tolist()),
        "examples",
        kind="step",
        params=dict(rule="same noise", of=schedule.params.get("rule")),
    )


def _build(inp: RuleInputs, rules) -> tuple[dict, dict]:
    """``(built, refused)``: per rule id, its ``(schedule, lr)``, or the reason it could not be built."""
    built, refused = {}, {}
    for rule, fn in rules.items():
        try:
            built[rule] = fn(inp)
        except Unavailable as exc:
            refused[rule] = str(exc)
    return built, refused


def compare_rules(
    nqm: NQM, eta: float, budget: float, lr_schedule="constant", pieces=32, rules=None, optimal=None
) -> list[RuleScore]:
    """Every rule against the best fixed batch and the optimal schedule, at equal data: one :class:`RuleScore`
    for :data:`BEST_FIXED`, :data:`OPTIMAL` and each of ``rules`` (id -> rule; default :data:`sim.rules.RULES`),
    in that order.

    The optimum is searched from the rules' schedules too
    (:func:`sim.optimal.optimal_schedule`'s ``candidates``; a rule that changes
    the rate enters as :func:`same_noise`'s schedule under this one), so it never
    loses to a rule run under this LR schedule; ``optimal`` (``(schedule, loss)``)
    skips that search. A rule that cannot be built (e.g. the paper's rule where
    no envelope ``Bopt(D)`` can be fitted because the loss never halves) keeps
    its place with a NaN loss and the reason in its note.
    """
    from .schedule_eval import loss_at_budget, nqm_best_fixed_batch

    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = nqm_best_fixed_batch(nqm, prob.lr, prob.horizon)
    inp = rule_inputs(nqm, eta, budget, lr_schedule, pieces, fixed=fixed)
    rules = rules or RULES
    built, refused = _build(inp, rules)
    own = inp.prob.lr  # the rules return this very object where they keep the run's rate
    own_lr = {
        rule if lr is own else f"{rule}-same-noise": s if lr is own else same_noise(inp, s, lr)
        for rule, (s, lr) in built.items()
    }
    opt, L_opt = optimal or optimal_schedule(nqm, eta, budget, lr_schedule, pieces, fixed=fixed, candidates=own_lr)
    gap = fixed[1] - L_opt

    def score(rule, L, s, lr, note=""):
        closed = (fixed[1] - L) / gap if gap > 0 else math.nan
        return RuleScore(rule, _TITLES.get(rule, rule), float(L), closed, s, lr, rule in MONOTONE, note)

    rows = [
        score(BEST_FIXED, fixed[1], constant_batch(fixed[0], "examples"), prob.lr),
        score(OPTIMAL, L_opt, opt, prob.lr),
    ]
    for rule in rules:
        if rule in refused:
            rows.append(score(rule, math.nan, None, None, refused[rule]))
        else:
            s, lr = built[rule]
            rows.append(score(rule, loss_at_budget(nqm, lr, s, prob.horizon), s, lr))
    return rows


def optimum_shape(nqm: NQM, eta: float, budget: float, schedule, lr_schedule="constant", pieces=32) -> dict:
    """How an optimal ``schedule`` (examples) sits against ``Bopt(D)``, ``Bmin(L(D))`` and ``B_noise(D)``
    (:func:`sim.rules.curves_along`; ``Bopt``: :func:`sim.rules.exact_envelope`, NaN where none). Ratios of
    batch sizes:

    ``early_bopt`` (min, max of ``B / Bopt`` over the first 1% of the budget), ``end_bopt`` (``B / Bopt`` at
    the end), ``cross`` (``D / budget`` from which on ``B >= Bopt``), ``stable_bmin`` and ``stable_noise``
    (min, max of ``B / Bmin(L)`` and ``B / B_noise`` from 1% to 90% of the budget), ``late_bmin`` (min, max
    of ``B / Bmin(L)`` past 90% of the budget, or through a WSD decay).
    """
    prob = problem(eta, budget, lr_schedule, pieces)
    a = curves_along(nqm, prob, schedule)
    D, B = a["D"], a["batch"]
    curve = exact_envelope(nqm, eta, budget)[0]
    bopt = np.asarray(curve(D), float) if curve is not None else np.full(D.size, math.nan)
    rng = lambda v, sel: (float(np.min(v[sel])), float(np.max(v[sel]))) if np.any(sel) else (math.nan, math.nan)
    stable = (D > 0.01 * budget) & (D <= 0.9 * budget)
    late = D > budget if lr_schedule == "wsd" else D > 0.9 * budget
    below = np.nonzero(~(B >= bopt))[0]
    cross = math.nan if curve is None else float(D[below[-1]] / budget) if below.size else 0.0
    return dict(
        early_bopt=rng(B / bopt, D <= 0.01 * budget),
        end_bopt=float(B[-1] / bopt[-1]),
        cross=cross,
        stable_bmin=rng(B / a["bmin"], stable),
        stable_noise=rng(B / a["b_noise"], stable),
        late_bmin=rng(B / a["bmin"], late),
    )


def _finite(v):
    """A float for JSON: None where NaN or infinite."""
    return float(v) if math.isfinite(v) else None


def budget_record(nqm: NQM, eta: float, budget: float, rows, lr_schedule="constant", pieces=32) -> dict:
    """One budget of ``dbs simulate optimal``'s JSON (plain lists and numbers; NaN written as null).

    ``rows``: :func:`compare_rules`'s. Keys: ``budget``, ``horizon`` (examples), ``rows``
    (:meth:`RuleScore.record` each), ``along_optimal`` (:func:`sim.rules.curves_along` on the optimal
    schedule) and ``bopt``: the NQM's exact envelope at the peak rate (:func:`sim.rules.exact_envelope`): its
    ``(Emin, Bopt)`` points ``D``, ``B`` and the fitted curve on a grid (``curve_D``, ``curve_B``), or
    ``error`` where it cannot be fitted. Data and batches in examples.
    """
    prob = problem(eta, budget, lr_schedule, pieces)
    opt = next(r for r in rows if r.rule == OPTIMAL)
    along = {k: [_finite(x) for x in v] for k, v in curves_along(nqm, prob, opt.schedule).items()}
    curve, why = exact_envelope(nqm, eta, budget)
    bopt = dict(error=why)
    if curve is not None:
        grid = np.geomspace(prob.ends[0], prob.horizon, 60)
        bopt = dict(
            D=[float(x) for x in curve.D],
            B=[float(x) for x in curve.B],
            curve_D=grid.tolist(),
            curve_B=[float(x) for x in curve(grid)],
        )
    out = [r.record() for r in rows]
    return dict(budget=float(budget), horizon=float(prob.horizon), rows=out, along_optimal=along, bopt=bopt)


#: the study's spectra (d = 1000 modes each)
SPECTRA = {
    "Zhang (h = c = 1/i)": lambda: NQM.zhang2019(1000),
    "power law 1.5": lambda: NQM.power_law(1000, 1.5),
    "power law 2.5, c ~ h^0.5": lambda: NQM.power_law(1000, 2.5, noise_exponent=0.5),
    "power law 1.2 + L_irr = 1": lambda: NQM.power_law(1000, 1.2, L_irr=1.0),
}


def study(
    budgets=(1e4, 1e5, 1e6),
    lr_schedules=("constant", "wsd", "cosine"),
    eta=0.5,
    spectra=None,
    progress=False,
    shape=False,
) -> list:
    """:func:`compare_rules` over spectra x budgets x LR schedules: one plain row per (case, rule) (``spectrum``,
    ``budget``, ``lr_schedule``, ``rule``, ``title``, ``loss``, ``gap_closed``, ``first`` and ``last`` batch,
    ``note``; schedules dropped); with ``shape``, the optimum's row carries :func:`optimum_shape` (``shape``)."""
    from tqdm.auto import tqdm

    rows = []
    cases = [(n, b, s) for n in (spectra or SPECTRA) for b in budgets for s in lr_schedules]
    made = {}
    for name, budget, sched in tqdm(cases, desc="cases", disable=not progress):
        nqm = made.setdefault(name, (spectra or SPECTRA)[name]())
        for r in compare_rules(nqm, eta, budget, sched):
            sizes = r.schedule.sizes if r.schedule is not None else (math.nan,)
            rows.append(
                dict(
                    spectrum=name,
                    budget=budget,
                    lr_schedule=sched,
                    rule=r.rule,
                    title=r.title,
                    loss=r.loss,
                    gap_closed=r.gap_closed,
                    first=sizes[0],
                    last=sizes[-1],
                    note=r.note,
                )
            )
            if r.rule == OPTIMAL and shape:
                rows[-1]["shape"] = optimum_shape(nqm, eta, budget, r.schedule, sched)
    return rows


def summarize(rows) -> list:
    """Per (LR schedule, rule) of :func:`study`'s rows: cases, min and median gap closed, and how often it loses
    to the best fixed; cases with no gap (the rule could not be built: ``unavailable``; or no gap to close) are
    left out."""
    out = []
    titles = {r["rule"]: r["title"] for r in rows}
    for sched in dict.fromkeys(r["lr_schedule"] for r in rows):
        for rule, title in titles.items():
            mine = [r for r in rows if r["lr_schedule"] == sched and r["rule"] == rule]
            ok = np.array([r["gap_closed"] for r in mine if np.isfinite(r["gap_closed"])])
            missing = sum(not np.isfinite(r["loss"]) for r in mine)
            out.append(
                dict(
                    lr_schedule=sched,
                    rule=rule,
                    title=title,
                    cases=int(ok.size),
                    unavailable=int(missing),
                    min_gap=float(np.min(ok)) if ok.size else math.nan,
                    median_gap=float(np.median(ok)) if ok.size else math.nan,
                    loses=int(np.sum(ok < -1e-9)),
                    at_least_60=int(np.sum(ok >= 0.6)),
                )
            )
    return out
