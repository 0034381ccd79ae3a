"""Every offline rule of ``dbs schedule`` scored end to end on NQM sweeps, against the optimum.

The benchmark of :mod:`dbs_theory.rules.from_fit`: for each spectrum and
budget a sweep (2x grid of batches 1..1024 examples, every run to the budget
at the constant peak rate) is logged as a trainer logs it -- exact expected
losses, or Monte Carlo SGD with one or three seeds per batch, a row every
``S / 2000`` steps (:func:`sim.chain_eval.sweep_logs`) -- and read by ``dbs
fit``'s code (:func:`dbs_theory.measure.tabulate.bopt_table`, ``bootstrap=200``).
Each rule then makes the run's schedule through the one function ``dbs
schedule`` calls (:func:`dbs_theory.rules.from_fit.schedule_from_fit`), for
a run of ``budget`` examples under a constant rate and under WSD (the last
1/6 decays linearly to 10%). No rule sees the NQM: swapping the NQM behind
the logs changes no schedule (tests/test_rule_chain.py).

Scores, from exact losses at the horizon (:func:`sim.schedule_eval.loss_at_budget`):

- ``gap``: ``(L_fixed - L) / (L_fixed - L_opt)``, the share of the gap between
  the exact best fixed batch under the run's plan and the optimum
  (:func:`sim.optimal_schedule`, 32 pieces, batches >= 1 example) closed
  (1: the optimum; < 0: worse than the best fixed batch);
- ``vs_pick``: ``L / L_pick - 1``, against the batch the logs pick (the
  sweep's best batch at the horizon, run under the plan): what the user
  runs without the package (> 0: the rule loses to it).

Units: examples; steps are optimizer steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dbs_theory.schedules.lr_plan import LRPlan

from .nqm import NQM

__all__ = [
    "SPECTRA",
    "PLANS",
    "LOGS",
    "BATCHES",
    "gapped",
    "two_band",
    "reference",
    "sweep_fit",
    "score_rules",
    "study",
    "summarize",
    "markdown",
]


def gapped(d=1000, alpha=1.5, gap=(30, 300)) -> NQM:
    """A power law ``h_i = i^-alpha``, ``c = h``, with the modes ``gap[0] <= i < gap[1]`` removed."""
    i = np.arange(1, d + 1, dtype=float)
    keep = (i < gap[0]) | (i >= gap[1])
    h = i[keep] ** -alpha
    return NQM(h, h.copy(), 1.0)


def two_band(d=1000) -> NQM:
    """Two bands: fast, noisy modes ``h = i^-1``, ``c = 4 h`` (half the modes) beside slow, quiet ones
    ``h = 0.01 i^-0.5``, ``c = 0.05 h`` (the other half), each with ``m0 = 1``."""
    i = np.arange(1, d // 2 + 1, dtype=float)
    h1, h2 = i**-1.0, 0.01 * i**-0.5
    return NQM(np.r_[h1, h2], np.r_[4 * h1, 0.05 * h2], 1.0)


#: name -> (NQM constructor, peak learning rate); the last two lie outside the calibrated family
SPECTRA = {
    "Zhang (h = c = 1/i)": (lambda: NQM.zhang2019(1000), 0.5),
    "power law 1.5": (lambda: NQM.power_law(1000, 1.5), 0.5),
    "power law 2.0": (lambda: NQM.power_law(1000, 2.0), 0.5),
    "power law 2.5, c ~ h^0.5": (lambda: NQM.power_law(1000, 2.5, noise_exponent=0.5), 0.5),
    "power law 1.8, c ~ h^1.2": (lambda: NQM.power_law(800, 1.8, noise_exponent=1.2), 0.4),
    "power law 1.2 + L_irr = 1": (lambda: NQM.power_law(1000, 1.2, L_irr=1.0), 0.5),
    "gapped power law 1.5": (gapped, 0.5),
    "two bands": (two_band, 0.5),
}
#: name -> the run's learning-rate plan
PLANS = {"constant": LRPlan(), "wsd": LRPlan(decay=1 / 6, final=0.1)}
#: name -> (log kind, seeds per batch, replicate sweeps)
LOGS = {"exact": ("exact", 1, 1), "MC 1 seed": ("mc", 1, 2), "MC 3 seeds": ("mc", 3, 1)}
#: the sweep's grid: 2x from 1 to 1024 examples
BATCHES = 2.0 ** np.arange(11)


def reference(nqm: NQM, eta: float, budget: float, plan: LRPlan) -> dict:
    """The exact answers for a run of ``budget`` examples under ``plan``: the best fixed batch (>= 1 example)
    and the optimum (32 pieces, batches >= 1 example)."""
    from .optimal import optimal_schedule
    from .schedule_eval import nqm_best_fixed_batch

    lr = plan.schedule(eta, budget)
    B, L = nqm_best_fixed_batch(nqm, lr, budget, min_batch=1.0)
    opt, L_opt = optimal_schedule(nqm, eta, budget, plan, fixed=(B, L))
    return dict(
        B_fixed=float(B), L_fixed=float(L), L_opt=float(L_opt), optimum=[[float(a), float(b)] for a, b in opt.segments]
    )


def sweep_fit(nqm: NQM, eta: float, budget: float, log: str, seed: int) -> list:
    """The ``fit.json`` contents (dicts: ``rows``, ``envelope``) of the sweeps of one log kind (:data:`LOGS`), as
    ``dbs fit`` writes them."""
    from dbs_theory.measure.tabulate import bopt_table

    from .chain_eval import sweep_logs

    kind, per, reps = LOGS[log]
    sweeps = sweep_logs(nqm, eta, BATCHES, budget, kind, per, reps, seed)
    fits = [bopt_table(runs, bootstrap=200, seed=0).to_dict() for runs in sweeps]
    return [
        json.loads(json.dumps(dict(rows=f["rows"], envelope=f["envelope"], lr=f["lr"]), default=_plain)) for f in fits
    ]


def _plain(v):
    """JSON for numpy scalars (NaN as null)."""
    v = float(v)
    return v if math.isfinite(v) else None


def score_rules(nqm: NQM, eta: float, budget: float, plan: LRPlan, fit: dict, ref: dict, rules, seed=0) -> list:
    """One row per rule: its schedule from ``fit`` (``fit.json``'s contents) scored exactly (module doc). Offline
    rules: :func:`schedule_from_fit`; online ones (``floor-ratio``, ``noise-scale``): the trainer's
    :func:`~dbs_theory.rules.online.online_rule` driven by an SGD replica (:func:`sim.online_run.online_run`),
    starting at the sweep's best batch at the first decision. A rule that cannot be built from the fit gets
    NaN scores and the reason in ``note``."""
    from dbs_theory.rules.from_fit import schedule_from_fit

    from .schedule_eval import loss_at_budget

    lr = plan.schedule(eta, budget)
    pick = schedule_from_fit(fit, budget, "fixed", plan, unit="examples").schedule
    L_pick = loss_at_budget(nqm, lr, pick, budget)
    gap = ref["L_fixed"] - ref["L_opt"]
    rows = []
    for rule in rules:
        row = dict(rule=rule, pick=float(pick.sizes[0]), L_pick=float(L_pick), note="")
        try:
            sched, choice = _schedule(nqm, eta, budget, plan, fit, rule, seed)
        except ValueError as exc:
            rows.append(
                dict(
                    row,
                    loss=math.nan,
                    gap=math.nan,
                    vs_pick=math.nan,
                    recommendation="n/a",
                    first=math.nan,
                    last=math.nan,
                    pieces=0,
                    rms=math.nan,
                    blend=math.nan,
                    note=str(exc).splitlines()[0],
                )
            )
            continue
        L = loss_at_budget(nqm, lr, sched, budget)
        predicted = {} if choice is None else choice.predicted
        rows.append(
            dict(
                row,
                loss=float(L),
                gap=(ref["L_fixed"] - L) / gap if gap > 0 else math.nan,
                vs_pick=float(L / L_pick - 1),
                first=float(sched.sizes[0]),
                last=float(sched.sizes[-1]),
                recommendation="dynamic" if choice is None else choice.recommendation,
                pieces=len(sched.sizes),
                rms=predicted.get("rms", math.nan),
                blend=predicted.get("blend", math.nan),
            )
        )
    return rows


def _schedule(nqm, eta, budget, plan, fit, rule, seed):
    """``(schedule, ScheduleChoice or None)`` of one rule (:func:`score_rules`)."""
    from dbs_theory.rules.online import ONLINE, online_rule
    from dbs_theory.rules.from_fit import envelope_of, schedule_from_fit
    from dbs_theory.rules.envelope import best_fixed_batch

    from .online_run import online_run

    if rule not in ONLINE:
        choice = schedule_from_fit(fit, budget, rule, plan, unit="examples")
        return choice.schedule, choice
    initial = best_fixed_batch(envelope_of(fit), budget / 50)[0]
    made = online_rule(rule, initial, budget, plan, granularity=1.0, rows=fit.get("rows"))
    return online_run(nqm, eta, plan, budget, made, seed=seed), None


def _key(r):
    return (r["spectrum"], float(r["budget"]), r["logs"], int(r["replicate"]))


def study(budgets=(3e4, 1e5), spectra=None, logs=None, plans=None, rules=None, seed=0, out=None, progress=False):
    """Every rule on spectra x budgets x log kinds (x replicates) x plans; rows (one per rule and case).

    With ``out`` (a folder) each sweep's envelopes and each reference are kept there
    (``sweeps/``, ``refs.json``) and rows appended to ``rows.jsonl`` as they are made; a rerun reuses them
    (resumable), scoring only what is missing.
    """
    from tqdm.auto import tqdm

    from dbs_theory.rules.online import ONLINE
    from dbs_theory.rules.from_fit import RULES

    spectra, logs = list(spectra or SPECTRA), list(logs or LOGS)
    plans, rules = list(plans or PLANS), list(rules or RULES + ONLINE)
    out = None if out is None else Path(out)
    cache = _Cache(out)
    rows = [r for r in cache.rows if r["spectrum"] in spectra and r["logs"] in logs and r["plan"] in plans]
    done = {(_key(r), r["plan"], r["rule"]) for r in rows}
    cases = [(s, float(b), g) for b in budgets for s in spectra for g in logs]
    for n, (spec, budget, log) in enumerate(tqdm(cases, desc="rule chain", disable=not progress)):
        make, eta = SPECTRA[spec]
        nqm = make()
        reps = LOGS[log][2]
        todo = [
            (r, p)
            for r in range(reps)
            for p in plans
            if any(((spec, budget, log, r), p, rule) not in done for rule in rules)
        ]
        if not todo:
            continue
        envs = cache.envelopes(spec, budget, log, lambda: sweep_fit(nqm, eta, budget, log, seed + 7919 * n))
        for r, p in todo:
            ref = cache.reference(spec, budget, p, lambda: reference(nqm, eta, budget, PLANS[p]))
            want = [rule for rule in rules if ((spec, budget, log, r), p, rule) not in done]
            for row in score_rules(nqm, eta, budget, PLANS[p], envs[r], ref, want, seed=seed + r):
                row.update(
                    spectrum=spec,
                    budget=budget,
                    logs=log,
                    replicate=r,
                    plan=p,
                    L_fixed=ref["L_fixed"],
                    L_opt=ref["L_opt"],
                )
                rows.append(row)
                cache.add(row)
    return rows


class _Cache:
    """The study's files under ``out`` (module doc); all in memory where ``out`` is None."""

    def __init__(self, out):
        self.out, self.refs, self.rows = out, {}, []
        if out is None:
            return
        (out / "sweeps").mkdir(parents=True, exist_ok=True)
        if (out / "refs.json").exists():
            self.refs = json.loads((out / "refs.json").read_text())
        if (out / "rows.jsonl").exists():
            self.rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines() if line.strip()]

    def envelopes(self, spec, budget, log, make):
        path = None if self.out is None else self.out / "sweeps" / f"{_slug(spec)}-{budget:g}-{_slug(log)}.json"
        if path is not None and path.exists():
            fits = json.loads(path.read_text())
            if all(isinstance(f, dict) and "rows" in f for f in fits):
                return fits  # (a cache from before the fits kept their rows is made again)
        envs = make()
        if path is not None:
            path.write_text(json.dumps(envs))
        return envs

    def reference(self, spec, budget, plan, make):
        key = f"{spec}|{budget:g}|{plan}"
        if key not in self.refs:
            self.refs[key] = make()
            if self.out is not None:
                (self.out / "refs.json").write_text(json.dumps(self.refs, indent=1))
        return self.refs[key]

    def add(self, row):
        if self.out is not None:
            with open(self.out / "rows.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


def _slug(text):
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


def summarize(rows) -> list:
    """Per (plan, log kind, rule): sweeps scored (``n/a``: those the rule could not be built from), median and
    worst gap closed, how often and by how much at most it loses to the logs' pick."""
    out = []
    for plan in dict.fromkeys(r["plan"] for r in rows):
        for log in dict.fromkeys(r["logs"] for r in rows):
            for rule in dict.fromkeys(r["rule"] for r in rows):
                every = [r for r in rows if (r["plan"], r["logs"], r["rule"]) == (plan, log, rule)]
                mine = [r for r in every if r["loss"] is not None and math.isfinite(r["loss"])]
                if not every:
                    continue
                if not mine:
                    out.append(
                        dict(
                            plan=plan,
                            logs=log,
                            rule=rule,
                            sweeps=0,
                            median_gap=math.nan,
                            worst_gap=math.nan,
                            loses=0,
                            worst_vs_pick=math.nan,
                            fixed=0,
                            unavailable=len(every),
                            note=every[0]["note"],
                        )
                    )
                    continue
                g = np.array([r["gap"] for r in mine], float)
                v = np.array([r["vs_pick"] for r in mine], float)
                out.append(
                    dict(
                        plan=plan,
                        logs=log,
                        rule=rule,
                        sweeps=len(mine),
                        median_gap=float(np.nanmedian(g)),
                        worst_gap=float(np.nanmin(g)),
                        loses=int(np.sum(v > 1e-9)),
                        worst_vs_pick=float(max(0.0, v.max())),
                        fixed=sum(r["recommendation"] == "fixed" for r in mine),
                        unavailable=len(every) - len(mine),
                    )
                )
    return out


def markdown(summary) -> str:
    """The summary as a markdown table."""
    head = (
        "| plan | logs | rule | sweeps (n/a) | median gap closed | worst | loses to the logs' pick | worst loss "
        "vs pick | handed out fixed |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    pct = lambda v, f: "n/a" if not math.isfinite(v) else format(v, f)
    return head + "".join(
        f"| {s['plan']} | {s['logs']} | {s['rule']} | {s['sweeps']} ({s['unavailable']}) | "
        f"{pct(s['median_gap'], '.0%')} "
        f"| {pct(s['worst_gap'], '.0%')} | {s['loses']}/{s['sweeps']} | {pct(s['worst_vs_pick'], '+.1%')} "
        f"| {s['fixed']} |\n"
        for s in summary
    )
