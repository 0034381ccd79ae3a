"""``dbs validate schedule``: the package's schedule rules vs the sweep's best fixed batch, under WSD with its decay.

Every arm is what a user would run. The sweep's logs go through the same
library calls as ``dbs fit`` (:func:`~dbs_theory.measure.tabulate.bopt_table`, 200
bootstrap resamples) and ``dbs schedule --decay``
(:func:`~dbs_theory.rules.from_fit.schedule_from_fit` with the run's
:class:`~dbs_theory.schedules.lr_plan.LRPlan`); each rule's schedule -- the paper's, the
calibrated default, late switch -- is trained to the budget under WSD, the
last ``decay_tokens`` decaying linearly to 10% of the peak rate, beside the
sweep's best fixed batch at the budget (its lowest window-averaged training
loss there, as before), and the noise-scale rule decided inside the trainer
(``dbs train --batch-rule noise-scale``: it starts at two micro-batches and
follows the measured ``B_simple``). Batches are whole multiples of the micro-batch
(``dyn_micro`` sequences) within the sweep's grid. A rule that recommends the
fixed batch trains that batch (the same run as the best fixed arm when it
picks the same one). Arms of a seed share initialisation and data order.

Judged by final validation loss on the tier's final slice: each rule against
the best fixed batch and against the paper's rule, paired by seed. Seeds
start at the tier's (>= 5) and are added while a comparison is undecided and
:func:`~dbs_theory.measure.verdicts.seeds_needed` on its measured spread says that
more seeds, up to the tier's ``max_seeds``, would resolve 0.01 nats; otherwise the
summary states the effect bound and the seeds that would decide it.

The paper's schedule is also the ``dynamic`` arm of the ablations
(:func:`arm`), which run without a decay as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dbs_theory.measure.tabulate import bopt_table
from dbs_theory.io import atomic_write
from dbs_theory.schedules.lr_plan import LRPlan
from dbs_theory.logs.runs import load_runs
from dbs_theory.rules.from_fit import schedule_from_fit
from dbs_theory.table import format_table
from dbs_theory.measure.verdicts import Claim, paired_interval, seeds_needed, verdict

from .common import EFFECT, Experiment, config_for, final_val, loss_near
from .runner import RunSpec, train_runs

__all__ = [
    "Arms",
    "PLAN",
    "RULE_ARMS",
    "ONLINE_ARMS",
    "NAMES",
    "plan",
    "arm",
    "wsd_arm",
    "run",
    "comparisons",
    "seeds_to_add",
    "Comparison",
]


#: The plan's file in the schedule experiment's folder, read by the ablations.
PLAN = "plan.json"
#: rule id -> display name of the experiment's rule arms (``best`` is the best fixed batch)
RULE_ARMS = {"paper": "paper's rule", "calibrated": "calibrated (default)", "late-switch": "late switch"}
#: online rules, decided inside the trainer as the run goes (``dbs train --batch-rule``): id -> display name.
#: The floor-ratio rule is left out: it needs the sweep's Bmin, which the CPU tier's sweep does not identify.
ONLINE_ARMS = {"noise-scale": "noise-scale rule (online)"}
#: every rule the experiment compares
NAMES = {**RULE_ARMS, **ONLINE_ARMS}


@dataclass(frozen=True)
class Arms:
    """The schedule experiment's arms, saved once (``<root>/schedule/plan.json``) and read by every ablation.

    Batch sizes and data amounts are tokens.
    """

    schedule: str  # path of the dynamic schedule's JSON (content-addressed under <root>/schedules/)
    sizes: list  # the dynamic schedule's batch sizes
    starts: list  # data at which each size starts
    best_fixed: float  # the sweep's best fixed batch at the budget
    mid_fixed: float  # the geometric mean of the schedule's first and last size
    source: str  # where the schedule's Bopt(D) came from
    notes: list = field(default_factory=list)
    sweep_loss_at_budget: dict = field(default_factory=dict)  # str(batch) -> training loss at the budget
    rules: dict = field(default_factory=dict)  # rule id -> {schedule (path) or batch, sizes, starts, reason}
    lr_plan: dict = field(default_factory=dict)  # the WSD plan the rules were given (LRPlan fields)

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
            raise ValueError(
                f"cannot read the schedule plan {str(path)!r} ({exc.__class__.__name__}); rerun dbs validate schedule"
            ) from None


def _sweep_summary(tier, root, jobs, progress):
    from . import ensure

    return json.loads((ensure("sweep", tier, root, jobs, progress) / "summary.json").read_text())


def save_schedule(root, sched) -> str:
    """Write a schedule JSON under ``<root>/schedules/`` named by its content (cache-safe)."""
    text = sched.to_json()
    path = Path(root) / "schedules" / f"{hashlib.sha256(text.encode()).hexdigest()[:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with atomic_write(path) as fh:
            fh.write(text)
    return str(path)


def plan(tier, root, jobs=None, progress=True) -> Arms:
    """Each rule's schedule and the best fixed batch, from the sweep (run first if missing)."""
    from . import ensure

    ensure("sweep", tier, root, jobs, progress)
    gran = tier.dyn_micro * tier.seq_len
    lo = min(tier.batches)
    rnd = lambda b: float(max(gran, round(b / gran) * gran))
    runs = [load_runs(f)[0] for f in sorted((Path(root) / "sweep" / "logs").glob("*.csv"))]
    # best fixed batch: the sweep run with the lowest (window-averaged) training loss at the budget
    at_budget = {r.batch_size: loss_near(r, tier.budget) for r in runs if r.tokens[-1] >= tier.budget * 0.999}
    if not at_budget:
        raise ValueError(f"no sweep run reached the budget {tier.budget:g} tokens")
    best = min(at_budget, key=at_budget.get)
    notes = []
    if best == min(at_budget) and best > lo:
        notes.append(
            f"the best fixed batch {best:g} is the smallest sweep run that reached the budget; "
            "smaller batches stopped early (step cap), so a smaller best cannot be ruled out"
        )
    table = bopt_table(runs, bootstrap=200, seed=0)  # what `dbs fit` makes of the sweep's logs
    lr_plan = LRPlan(decay=tier.decay_tokens / tier.budget, final=0.1)
    rules = {rule: _rule_arm(root, tier, table, rule, lr_plan, rnd(best)) for rule in RULE_ARMS}
    paper = rules["paper"]
    mid = rnd(math.sqrt(paper["sizes"][0] * paper["sizes"][-1]))
    path = paper.get("schedule") or save_schedule(root, table_constant(paper["batch"], tier.lr))
    return Arms(
        schedule=path,
        sizes=paper["sizes"],
        starts=paper["starts"],
        best_fixed=rnd(best),
        mid_fixed=mid,
        source=paper["reason"],
        notes=notes,
        sweep_loss_at_budget={str(k): float(v) for k, v in sorted(at_budget.items())},
        rules=rules,
        lr_plan=dict(decay=lr_plan.decay, final=lr_plan.final, shape=lr_plan.shape),
    )


def _rule_arm(root, tier, table, rule, lr_plan, fixed) -> dict:
    """What ``rule`` decides from the sweep's fit ``table`` for the tier's run (the JSON record of one arm):
    its batches and where each starts (tokens), its recommendation and reason; a rule that cannot make a
    schedule gives the best fixed batch ``fixed``, as a user would fall back to."""
    gran = tier.dyn_micro * tier.seq_len
    try:
        c = schedule_from_fit(
            table,
            tier.budget,
            rule,
            lr_plan,
            granularity=gran,
            min_batch=min(tier.batches),
            max_batch=max(tier.batches),
            lr=tier.lr,
            extrapolate=True,
        )
    except ValueError as exc:
        return dict(
            batch=fixed,
            sizes=[fixed],
            starts=[0.0],
            recommendation="fixed",
            reason=f"no schedule ({exc}): the best fixed batch",
            predicted={},
        )
    sched = c.schedule
    rec = dict(
        sizes=[float(b) for b in sched.sizes],
        starts=[float(d) for d in sched.starts],
        recommendation=c.recommendation,
        reason=c.reason,
        predicted=c.predicted,
    )
    if len(set(sched.sizes)) == 1:
        rec["batch"] = float(sched.sizes[0])
    else:
        rec["schedule"] = save_schedule(root, sched)
    return rec


def table_constant(batch, lr):
    """A one-segment schedule at ``batch`` tokens (the paper's rule when it stays at one batch)."""
    from dbs_theory.schedules.batch_schedules import constant_batch

    return constant_batch(batch, "tokens", lr)


def arm(tier, p, kind, seed=0, tokens=None, label=None, **over) -> RunSpec:
    """One arm: ``kind`` is ``dynamic`` (the paper's schedule), ``best`` (best fixed), ``mid`` (mid-range
    fixed), a rule id of :data:`RULE_ARMS` (that rule's schedule, or its fixed batch) or of :data:`ONLINE_ARMS`
    (the rule run inside the trainer).

    ``over`` are :class:`~validate.config.TrainConfig` overrides; the label
    names them unless ``label`` is given.
    """
    tokens = tokens or tier.budget
    common = dict(micro=tier.dyn_micro, seed=seed, **over)
    if kind == "dynamic":
        cfg = config_for(tier, tokens, schedule=p.schedule, **common)
    elif kind in ONLINE_ARMS:  # starts at two micro-batches (the noise scale needs two) and decides as it goes
        cfg = config_for(
            tier,
            tokens,
            batch=2 * tier.dyn_micro * tier.seq_len,
            batch_rule=kind,
            gns_every=tier.gns_every,
            rule_max_batch=float(max(tier.batches)),
            **common,
        )
    elif kind in RULE_ARMS:
        r = p.rules[kind]
        cfg = (
            config_for(tier, tokens, batch=r["batch"], **common)
            if "batch" in r
            else config_for(tier, tokens, schedule=r["schedule"], **common)
        )
    else:
        cfg = config_for(tier, tokens, batch=p.fixed(kind), **common)
    tag = "".join(f"-{k}{v}" for k, v in sorted(over.items()) if k not in ("branch_from",))
    return RunSpec(label or f"{kind}-s{seed}{tag}".replace("_", ""), cfg)


#: the experiment's arms: the best fixed batch, then each rule
ARMS = ("best", *NAMES)


def wsd_arm(tier, p, kind, seed):
    """An arm of this experiment: to the budget under WSD with the tier's decay."""
    return arm(tier, p, kind, seed, label=f"wsd-{kind}-s{seed}", decay=tier.decay_tokens / tier.budget)


@dataclass(frozen=True)
class Comparison:
    """One rule against one baseline: the paired gains (baseline's final validation loss minus the rule's, one
    per seed; > 0: the rule is better), their interval and spread."""

    rule: str
    baseline: str
    gains: tuple
    iv: object

    @property
    def sd(self) -> float:
        return float(np.std(self.gains, ddof=1)) if len(self.gains) > 1 else math.nan


def comparisons(val) -> list:
    """A :class:`Comparison` for each rule against ``best`` and against ``paper``, over the seeds both ran."""
    out = []
    for rule in (r for r in NAMES if r in val):
        for base in ("best", "paper"):
            if rule != base:
                g = tuple(float(x) for x in np.subtract(val[base], val[rule]))
                out.append(Comparison(rule, base, g, paired_interval(g)))
    return out


def seeds_to_add(comps, n, cap, effect=EFFECT) -> int:
    """Seeds to add to ``n`` so every undecided comparison could resolve ``effect`` with 80% power, within
    ``cap`` in all; 0 when all are decided or more seeds than ``cap`` would be needed for each undecided one."""
    want = n
    for c in comps:
        if verdict(c.iv, effect=effect) != "inconclusive" or not math.isfinite(c.sd):
            continue
        try:
            need = seeds_needed(c.sd, effect)
        except ValueError:
            continue
        if need <= cap:
            want = max(want, need)
    return max(0, min(cap, want) - n)


def run(tier, root, jobs=None, progress=True):
    p = plan(tier, root, jobs, progress)
    exp = Experiment(root, "schedule", tier)
    exp.dir.mkdir(parents=True, exist_ok=True)
    p.save(exp.dir / PLAN)
    seeds = list(tier.seeds)
    while True:
        specs = [wsd_arm(tier, p, k, seed) for seed in seeds for k in ARMS]
        dirs = train_runs(
            root, specs, jobs or tier.jobs, progress, desc="schedule", launcher=tier.launcher, store=tier.store
        )
        runs = exp.collect(specs, dirs)
        val = {k: [final_val(runs[f"wsd-{k}-s{s}"]) for s in seeds] for k in ARMS}
        comps = comparisons(val)
        more = seeds_to_add(comps, len(seeds), tier.max_seeds)
        if not more:
            break
        seeds += [max(seeds) + 1 + i for i in range(more)]
    # the spread one-seed ablations borrow: the paper's schedule (no decay) vs the best fixed batch, on the
    # ablations' own seeds (they train these runs; at least two, so a spread exists)
    stable_seeds = list(tier.ablation_seeds) if len(tier.ablation_seeds) > 1 else list(tier.seeds[:2])
    spread_specs = [arm(tier, p, k, s) for s in stable_seeds for k in ("dynamic", "best")]
    sdirs = train_runs(
        root,
        spread_specs,
        jobs or tier.jobs,
        progress,
        desc="schedule (stable)",
        launcher=tier.launcher,
        store=tier.store,
    )
    sruns = exp.collect(spread_specs, sdirs)
    stable = np.subtract(
        [final_val(sruns[f"best-s{s}"]) for s in stable_seeds],
        [final_val(sruns[f"dynamic-s{s}"]) for s in stable_seeds],
    )
    return _write(exp, p, tier, val, comps, seeds, stable)


def _claim(c, val):
    rule, base, iv = c.rule, c.baseline, c.iv
    name = NAMES[rule]
    other = "the best fixed batch" if base == "best" else "the paper's rule"
    v = verdict(iv, effect=EFFECT)
    bound = "" if any(c.gains) else " (the rule hands out the same run as the baseline)"
    if v == "inconclusive" and math.isfinite(c.sd):
        try:
            bound = f"; {seeds_needed(c.sd, EFFECT)} seeds would resolve {EFFECT:g} nats at this spread"
        except ValueError:
            bound = f"; more than 100000 seeds would resolve {EFFECT:g} nats at this spread"
        bound += f", and the gain is at most {iv.hi:+.4f} nats with 95% confidence"
    return Claim(
        f"The {name} reaches a lower final validation loss than {other} under WSD at equal tokens",
        f"val loss {np.mean(val[base]):.4f} ({other}) vs {np.mean(val[rule]):.4f}: paired gain {iv.text()}{bound}",
        v,
        iv,
    )


def _write(exp, p, tier, val, comps, seeds, stable):
    rows, claims = [], []
    for c in comps:
        rows.append(
            dict(
                rule=NAMES[c.rule],
                against="best fixed" if c.baseline == "best" else "paper's rule",
                rule_val=float(np.mean(val[c.rule])),
                baseline_val=float(np.mean(val[c.baseline])),
                gain=c.iv.mean,
                lo=c.iv.lo,
                hi=c.iv.hi,
                seeds=c.iv.n,
                gain_sd=c.sd,
                verdict=verdict(c.iv, effect=EFFECT),
            )
        )
        claims.append(_claim(c, val))
    spread = dict(sd=float(np.std(stable, ddof=1)) if len(stable) > 1 else math.nan, dof=max(len(stable) - 1, 0))
    arms_md = "\n".join(
        f"- {NAMES[k]}: "
        + (
            f"fixed {r['batch']:g}"
            if "batch" in r
            else " -> ".join(f"{b:g}" for b in r["sizes"])
            + " tokens per step, from "
            + ", ".join(f"{d:.3g}" for d in r["starts"])
            + " tokens"
        )
        + f" ({r['reason']})"
        for k, r in p.rules.items()
    ) + "".join(
        f"\n- {NAMES[k]}: decided in the trainer from {2 * tier.dyn_micro * tier.seq_len} tokens (batch per "
        "step in its log)"
        for k in ONLINE_ARMS
    )
    md = (
        "```\n"
        + format_table(rows, ["rule", "against", "rule_val", "baseline_val", "gain", "lo", "hi", "seeds"])
        + f"\n```\n\nBest fixed batch {p.best_fixed:g} tokens. WSD: the last {p.lr_plan['decay']:.0%} of "
        f"{tier.budget:g} tokens decays to {p.lr_plan['final']:g} of the peak. Seeds {seeds[0]}..{seeds[-1]}.\n\n"
        + arms_md
        + "".join(f"\n\nNote: {n}." for n in p.notes)
    )
    data = dict(plan=p, val_loss=val, rows=rows, seeds=seeds, spread=spread, stable_gain=stable.tolist())
    return exp.write(claims, data, [("Final validation loss (mean over seeds)", md)])
