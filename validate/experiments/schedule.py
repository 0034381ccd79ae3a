"""``dbs validate schedule``: the paper's dynamic batch schedule vs fixed batches at equal tokens.

The schedule is built from the sweep's envelope ``Bopt(D)`` (the best batch at
each data amount up to the budget, measured: the sweep covers the budget) with
:func:`dbs_theory.batch_schedules.dynamic_batch`:
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dbs_theory.batch_schedules import dynamic_batch
from dbs_theory.bopt_curve import fit_bopt_curve
from dbs_theory.estimators import envelope_bopt
from dbs_theory.io import atomic_write
from dbs_theory.runs import load_runs
from dbs_theory.table import format_table
from dbs_theory.verdicts import Claim, paired_interval, verdict

from .common import EFFECT, Experiment, config_for, final_val, loss_near, spread_of
from .runner import RunSpec, train_runs

__all__ = ["Arms", "PLAN", "plan", "arm", "run"]


#: The plan's file in the schedule experiment's folder, read by the ablations.
PLAN = "plan.json"


@dataclass(frozen=True)
class Arms:
    """The schedule experiment's arms, saved once (``<root>/schedule/plan.json``) and read by every ablation.

    Batch sizes and data amounts are tokens.
    """

    schedule: str        # path of the dynamic schedule's JSON (content-addressed under <root>/schedules/)
    sizes: list          # the dynamic schedule's batch sizes
    starts: list         # data at which each size starts
    best_fixed: float    # the sweep's best fixed batch at the budget
    mid_fixed: float     # the geometric mean of the schedule's first and last size
    source: str          # where the schedule's Bopt(D) came from
    notes: list = field(default_factory=list)
    sweep_loss_at_budget: dict = field(default_factory=dict)  # str(batch) -> training loss at the budget

    def fixed(self, kind: str) -> float:
        """The fixed batch of arm ``kind`` (``best`` or ``mid``)."""
        return self.best_fixed if kind == "best" else self.mid_fixed

    def save(self, path) -> None:
        with atomic_write(path) as fh:
            json.dump(asdict(self), fh, indent=1)

    @classmethod
    def load(cls, path) -> "Arms":
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read the schedule plan {str(path)!r} ({exc.__class__.__name__}); "
                             "rerun dbs validate schedule") from None


def _sweep_summary(tier, root, jobs, progress):
    from . import ensure

    return json.loads((ensure("sweep", tier, root, jobs, progress) / "summary.json").read_text())


def _save_schedule(root, sched) -> str:
    """Write a schedule JSON under ``<root>/schedules/`` named by its content (cache-safe)."""
    text = sched.to_json()
    path = Path(root) / "schedules" / f"{hashlib.sha256(text.encode()).hexdigest()[:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with atomic_write(path) as fh:
            fh.write(text)
    return str(path)


def plan(tier, root, jobs=None, progress=True) -> Arms:
    """The dynamic schedule and both fixed baselines, from the sweep (run first if missing)."""
    s = _sweep_summary(tier, root, jobs, progress)
    gran = tier.dyn_micro * tier.seq_len
    lo, hi = min(tier.batches), max(tier.batches)
    rnd = lambda b: float(max(gran, round(b / gran) * gran))
    runs = [load_runs(f)[0] for f in sorted((Path(root) / "sweep" / "logs").glob("*.csv"))]
    # best fixed batch: the sweep run with the lowest (window-averaged) training loss at the budget
    at_budget = {r.batch_size: loss_near(r, tier.budget) for r in runs if r.tokens[-1] >= tier.budget * 0.999}
    if not at_budget:
        raise ValueError(f"no sweep run reached the budget {tier.budget:g} tokens")
    best = min(at_budget, key=at_budget.get)
    notes = []
    if best == min(at_budget) and best > lo:
        notes.append(f"the best fixed batch {best:g} is the smallest sweep run that reached the budget; "
                     "smaller batches stopped early (step cap), so a smaller best cannot be ruled out")
    curve, source = _bopt_of_data(tier, runs, s, best)
    if curve is None:
        curve = lambda D: best
        notes.append(source)
    interval = tier.budget * tier.interval_frac
    dyn = dynamic_batch(curve, interval=interval, momentum=1.0, initial=float(np.clip(curve(interval), lo, hi)),
                        granularity=gran, min_batch=lo, max_batch=hi, horizon=tier.budget, lr=tier.lr)
    mid = rnd(math.sqrt(dyn.sizes[0] * dyn.sizes[-1]))
    return Arms(schedule=_save_schedule(root, dyn), sizes=[float(b) for b in dyn.sizes],
                starts=[float(d) for d in dyn.starts], best_fixed=rnd(best), mid_fixed=mid, source=source,
                notes=notes, sweep_loss_at_budget={str(k): float(v) for k, v in sorted(at_budget.items())})


def _bopt_of_data(tier, runs, summary, best):
    """``(curve or None, source)``: the sweep's envelope Bopt(D) measured up to the budget (monotone, no
    extrapolation needed: the sweep covers the budget); else the power law through its per-target optima."""
    start = min(max(tier.budget / 100, 2 * tier.warmup), tier.budget / 2)  # past the warmup transient
    env = envelope_bopt(runs, np.geomspace(start, tier.budget, 16), bootstrap=0)
    if int(np.sum(env.identified)) >= 2:
        curve = fit_bopt_curve(env, form="monotone", extrapolate=True, lr=tier.lr)
        D = np.asarray(env.data)[env.identified]
        return curve, (f"the sweep's envelope Bopt(D), measured at {len(D)} data amounts from {D.min():.3g} to "
                       f"{D.max():.3g} tokens (monotone)")
    if summary.get("bopt_curve"):
        c = summary["bopt_curve"]
        curve = fit_bopt_curve(np.array(c["D"]), np.array(c["B"]), extrapolate=True)
        return curve, (f"power law through the sweep's per-target optima, Bopt(D) = {curve.params['k']:.4g} "
                       f"D^{curve.params['alpha']:.3f} (the envelope identified < 2 data amounts)")
    return None, f"no Bopt(D) from the sweep; constant at the best fixed batch {best:g}"


def arm(tier, p, kind, seed=0, tokens=None, label=None, **over) -> RunSpec:
    """One arm: ``kind`` is ``dynamic``, ``best`` (best fixed) or ``mid`` (mid-range fixed).

    ``over`` are :class:`~validate.config.TrainConfig` overrides; the label
    names them unless ``label`` is given.
    """
    tokens = tokens or tier.budget
    common = dict(micro=tier.dyn_micro, seed=seed, **over)
    if kind == "dynamic":
        cfg = config_for(tier, tokens, schedule=p.schedule, **common)
    else:
        cfg = config_for(tier, tokens, batch=p.fixed(kind), **common)
    tag = "".join(f"-{k}{v}" for k, v in sorted(over.items()) if k not in ("branch_from",))
    return RunSpec(label or f"{kind}-s{seed}{tag}".replace("_", ""), cfg)


def run(tier, root, jobs=None, progress=True):
    p = plan(tier, root, jobs, progress)
    exp = Experiment(root, "schedule", tier)
    exp.dir.mkdir(parents=True, exist_ok=True)
    p.save(exp.dir / PLAN)
    specs = [arm(tier, p, k, seed) for seed in tier.seeds for k in ("dynamic", "best", "mid")]
    dirs = train_runs(root, specs, jobs or tier.jobs, progress, desc="schedule", launcher=tier.launcher)
    runs = exp.collect(specs, dirs)
    val = {k: [final_val(runs[f"{k}-s{s}"]) for s in tier.seeds] for k in ("dynamic", "best", "mid")}
    rows, claims = [], []
    for k in ("best", "mid"):
        gains = [f - d for f, d in zip(val[k], val["dynamic"])]  # paired: each seed's arms share data and init
        iv = paired_interval(gains)
        rows.append(dict(baseline=f"{k} fixed ({p.fixed(k):g})",
                         baseline_val=float(np.mean(val[k])), dynamic_val=float(np.mean(val["dynamic"])),
                         gain=iv.mean, lo=iv.lo, hi=iv.hi, seeds=iv.n,
                         gain_sd=float(np.std(gains, ddof=1)) if len(gains) > 1 else math.nan))
        claims.append(Claim(
            f"The dynamic schedule reaches a lower loss than the {'best' if k == 'best' else 'mid-range'} "
            f"fixed batch at equal tokens (paper: about 0.04 lower vs fixed 4M)",
            f"val loss {np.mean(val[k]):.4f} fixed vs {np.mean(val['dynamic']):.4f} dynamic: paired gain "
            f"{iv.text()}", verdict(iv, effect=EFFECT), iv))
    sched_txt = " -> ".join(f"{b:g}" for b in p.sizes)
    md = ("```\n" + format_table(rows, ["baseline", "baseline_val", "dynamic_val", "gain", "lo", "hi", "seeds"]) +
          f"\n```\n\nDynamic schedule ({p.source}): {sched_txt} tokens per step, changes at "
          + ", ".join(f"{d:.3g}" for d in p.starts[1:]) + " tokens."
          + "".join(f"\n\nNote: {n}." for n in p.notes))
    data = dict(plan=p, val_loss=val, rows=rows, spread=spread_of(rows[0]))
    return exp.write(claims, data, [("Validation loss at the budget (mean over seeds)", md)])
