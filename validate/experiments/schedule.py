"""``dbs validate schedule``: the paper's dynamic batch schedule vs fixed batches at equal tokens.

The schedule is built from the sweep's ``Bopt(D)`` (a power law through the
per-target ``(Emin, Bopt)`` points) with :func:`dbs_theory.batch_schedules.dynamic_batch`:
re-evaluated every ``interval_frac`` of the budget, momentum 1 (the fitted
curve is already smooth), never decreasing, clamped to the sweep's grid.
Baselines: the sweep's best fixed batch at the budget, and a mid-range
fixed batch (the geometric mean of the schedule's first and last batch, as
the paper's fixed 4M sat inside its 2M to 6M schedule). Every arm uses the
same micro-batch, learning rate and data order; seeds vary the initialisation.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from dbs_theory.batch_schedules import dynamic_batch
from dbs_theory.bopt_curve import fit_bopt_curve
from dbs_theory.io import atomic_write
from dbs_theory.table import format_table

from .common import Experiment, config_for, final_val, loss_near, verdict_gain
from .runner import RunSpec, train_runs

__all__ = ["plan", "arm", "run"]


def _sweep_summary(tier, root, jobs, progress):
    path = Path(root) / "sweep" / "summary.json"
    if not path.exists():
        from . import sweep

        sweep.run(tier, root, jobs, progress)
    return json.loads(path.read_text())


def _save_schedule(root, sched) -> str:
    """Write a schedule JSON under ``<root>/schedules/`` named by its content (cache-safe)."""
    text = sched.to_json()
    path = Path(root) / "schedules" / f"{hashlib.sha256(text.encode()).hexdigest()[:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with atomic_write(path) as fh:
            fh.write(text)
    return str(path)


def plan(tier, root, jobs=None, progress=True) -> dict:
    """The dynamic schedule and both fixed baselines, from the sweep (run first if missing)."""
    s = _sweep_summary(tier, root, jobs, progress)
    gran = tier.dyn_micro * tier.seq_len
    lo, hi = min(tier.batches), max(tier.batches)
    rnd = lambda b: float(max(gran, round(b / gran) * gran))
    # best fixed batch: the sweep run with the lowest (window-averaged) training loss at the budget
    from dbs_theory.runs import load_runs

    at_budget = {}
    for f in sorted((Path(root) / "sweep" / "logs").glob("*.csv")):
        (r,) = load_runs(f)
        if r.tokens[-1] >= tier.budget * 0.999:
            at_budget[r.batch_size] = loss_near(r, tier.budget)
    if not at_budget:
        raise ValueError(f"no sweep run reached the budget {tier.budget:g} tokens")
    best = min(at_budget, key=at_budget.get)
    notes = []
    if best == min(at_budget) and best > lo:
        notes.append(f"the best fixed batch {best:g} is the smallest sweep run that reached the budget; "
                     "smaller batches stopped early (step cap), so a smaller best cannot be ruled out")
    if s.get("bopt_curve"):
        c = s["bopt_curve"]
        curve = fit_bopt_curve(np.array(c["D"]), np.array(c["B"]), extrapolate=True)
        source = f"sweep Bopt(D) = {curve.params['k']:.4g} D^{curve.params['alpha']:.3f}"
    else:  # no usable fit (e.g. the tiny tier): fall back to the measured best fixed batch
        curve = lambda D: best
        source = "no Bopt(D) fit from the sweep; constant at the best fixed batch"
        notes.append(source)
    interval = tier.budget * tier.interval_frac
    dyn = dynamic_batch(curve, interval=interval, momentum=1.0, initial=float(np.clip(curve(interval), lo, hi)),
                        granularity=gran, min_batch=lo, max_batch=hi, horizon=tier.budget, lr=tier.lr)
    mid = rnd(math.sqrt(dyn.sizes[0] * dyn.sizes[-1]))
    return dict(schedule=_save_schedule(root, dyn), sizes=list(dyn.sizes), starts=list(dyn.starts),
                best_fixed=rnd(best), mid_fixed=mid, source=source, notes=notes,
                sweep_loss_at_budget={str(k): v for k, v in sorted(at_budget.items())})


def arm(tier, p, kind, seed=0, tokens=None, label=None, **over) -> RunSpec:
    """One arm: ``kind`` is ``dynamic``, ``best`` (best fixed) or ``mid`` (mid-range fixed).

    ``over`` are :class:`~validate.config.TrainConfig` overrides; the label
    names them unless ``label`` is given.
    """
    tokens = tokens or tier.budget
    common = dict(micro=tier.dyn_micro, seed=seed, **over)
    if kind == "dynamic":
        cfg = config_for(tier, tokens, schedule=p["schedule"], **common)
    else:
        cfg = config_for(tier, tokens, batch=p["best_fixed" if kind == "best" else "mid_fixed"], **common)
    tag = "".join(f"-{k}{v}" for k, v in sorted(over.items()) if k not in ("branch_from",))
    return RunSpec(label or f"{kind}-s{seed}{tag}".replace("_", ""), cfg)


def run(tier, root, jobs=None, progress=True):
    p = plan(tier, root, jobs, progress)
    exp = Experiment(root, "schedule", tier)
    specs = [arm(tier, p, k, seed) for seed in tier.seeds for k in ("dynamic", "best", "mid")]
    dirs = train_runs(root, specs, jobs or tier.jobs, progress, desc="schedule")
    runs = exp.collect(specs, dirs)
    val = {k: [final_val(runs[f"{k}-s{s}"]) for s in tier.seeds] for k in ("dynamic", "best", "mid")}
    half_range = lambda v: (max(v) - min(v)) / 2 if len(v) > 1 else math.nan
    noise = max(half_range(v) for v in val.values())
    rows, claims = [], []
    for k in ("best", "mid"):
        gains = [f - d for f, d in zip(val[k], val["dynamic"])]
        g_spread = half_range(gains)
        rows.append(dict(baseline=f"{k} fixed ({p['best_fixed' if k == 'best' else 'mid_fixed']:g})",
                         baseline_val=float(np.mean(val[k])), dynamic_val=float(np.mean(val["dynamic"])),
                         gain=float(np.mean(gains)), spread=g_spread))
        claims.append(dict(
            claim=f"The dynamic schedule reaches a lower loss than the {'best' if k == 'best' else 'mid-range'} "
                  f"fixed batch at equal tokens (paper: about 0.04 lower vs fixed 4M)",
            measured=f"val loss {np.mean(val[k]):.4f} fixed vs {np.mean(val['dynamic']):.4f} dynamic: gain "
                     f"{np.mean(gains):+.4f} +/- {g_spread:.4f} (half-range over {len(tier.seeds)} seeds)",
            verdict=verdict_gain(gains, g_spread)))
    sched_txt = " -> ".join(f"{b:g}" for b in p["sizes"])
    md = ("```\n" + format_table(rows, ["baseline", "baseline_val", "dynamic_val", "gain", "spread"]) +
          f"\n```\n\nDynamic schedule ({p['source']}): {sched_txt} tokens per step, changes at "
          + ", ".join(f"{d:.3g}" for d in p["starts"][1:]) + " tokens."
          + "".join(f"\n\nNote: {n}." for n in p["notes"]))
    data = dict(plan=p, val_loss=val, noise=noise, rows=rows)
    return exp.write(claims, data, [("Validation loss at the budget (mean over seeds)", md)])
