"""``dbs demo``: from nothing to the paper's findings on this machine, in a few minutes.

1. prints the key derived formulas (sympy, ``dbs derive``);
2. runs the default NQM sweep: E(S) frontier, Bmin/Bopt per target, crossings;
3. compares the dynamic batch schedule with fixed and optimised ones on the NQM;
4. trains a short real-transformer batch sweep on the embedded corpus (the
   ``demo`` tier: a reduced CPU tier) and fits E(S) to it (needs the torch extra);
5. refits the CPU tier's committed logs (the repository's log store,
   ``docs/data/runs``: the full sweep and the schedule experiment, trained
   nothing) -- the column that can decide, where the demo's own five-minute
   sweep cannot;
6. writes ``report.md``/``report.html`` with the figures and ends with a
   verdict table: each claim, the NQM's answer, the demo sweep's, the CPU tier's.
"""

from __future__ import annotations

import json
import math
import time

__all__ = ["HELP", "add_arguments", "run", "verdict_table"]

HELP = "the main job: formulas, NQM sweep + schedules, a short transformer sweep, report (about 5 min)"
EXAMPLES = """examples:
  dbs demo                  # results/demo/report.html
  dbs demo --no-train       # the NQM parts only (no PyTorch needed)"""


def _demo_tier():
    from validate.experiments.tiers import TIERS

    # 10 batch sizes, 128..3072 tokens; every run to the same 256K tokens (2000 steps of the smallest), so the
    # envelope compares all batches at every data amount up to the budget.
    return TIERS["cpu"].with_(
        name="demo",
        batches=tuple(64 * n for n in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48)),
        sweep_tokens=256_000,
        sweep_steps=2_000,
        warmup=25_000,
        eval_every_tokens=64_000,
        eval_tokens=16_384,
        gns_every=10,
    )


def add_arguments(p):
    p.add_argument("--out", default="results/demo", help="report folder (default results/demo)")
    p.add_argument("--no-train", action="store_true", help="skip the transformer sweep (NQM only)")
    p.add_argument("--jobs", type=int, default=2, help="transformer runs trained at once (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _formulas():
    import sympy as sp

    from dbs_theory.derivations import ALL

    m, n, t = ALL["mccandlish"](), ALL["nqm_mode"](), ALL["three_phase"]()
    show = lambda e: sp.pretty(e, use_unicode=False, wrap_line=False)
    items = [
        ("classical law (McCandlish 2018): (S/Smin - 1)(E/Emin - 1) =", m.hyperbola, "derive mccandlish"),
        ("noise scale B_noise =", m.B_noise, "derive mccandlish"),
        ("NQM mode at a fixed LR: loss floor (what a batch can reach) =", n.floor, "derive nqm_mode"),
        ("smallest batch reaching L*: B_min =", n.B_min, "derive nqm_mode"),
        ("three-phase E(S): linear-phase slope A1 - B_min =", t.A1 - t.B_min, "derive three_phase"),
    ]
    lines = []
    for text, expr, where in items:
        body = show(sp.simplify(expr))
        lines.append(f"{text}\n{body}\n   [dbs {where}]")
    return "\n".join(lines)


def _nqm_claims(sim_dir, sched_dir):
    import numpy as np

    from dbs_theory.measure.tabulate import monotonicity
    from dbs_theory.measure.verdicts import fit_verdict

    from .nqm import three_phase_fits

    fr = json.loads((sim_dir / "frontier.json").read_text())
    t = fr["targets"]
    r2 = [f.r2_log for f in three_phase_fits(fr, min_points=9).values()]
    cross = 0
    if (sim_dir / "crossovers.csv").exists():
        import csv

        cross = sum(1 for r in csv.DictReader(open(sim_dir / "crossovers.csv")) if math.isfinite(float(r["data"])))
    sched = json.loads((sched_dir / "schedule_eval.json").read_text())["results"]
    gains = [r["losses"]["best_fixed"] - r["losses"]["dynamic"] for r in sched]
    med = float(np.median(r2)) if r2 else math.nan
    return {
        "fit": (
            (f"median R^2 {med:.4f} over {len(r2)} targets" if r2 else "not identified: no target had 9 points to fit"),
            fit_verdict(r2),
        ),
        "cross": (f"{cross} crossings (B = Bopt/2 vs 2 Bopt)", "holds" if cross else "does not hold"),
        "bmin": (
            "exact: " + " -> ".join(f"{r['bmin']:.3g}" for r in t[:: max(1, len(t) // 4)]),
            monotonicity([r["bmin"] for r in t]),
        ),
        "bopt": (
            "exact: " + " -> ".join(f"{r['bopt']:.3g}" for r in t[:: max(1, len(t) // 4)]),
            monotonicity([r["bopt"] for r in t]),
        ),
        "dynamic": (
            "loss gain over best fixed: " + ", ".join(f"{g:+.3g}" for g in gains),
            "holds" if all(g > 0 for g in gains) else "does not hold",
        ),
    }


def _transformer_claims(summary):
    c = {k: summary["claims"][i] for i, k in enumerate(("fit", "cross", "bmin", "bopt"))}
    out = {k: (v["measured"], v["verdict"]) for k, v in c.items()}
    out["dynamic"] = (
        "not identified: the demo trains no schedule (dbs validate schedule --tier cpu does)",
        "inconclusive",
    )
    return out


_CLAIMS = [
    ("fit", "E(S) follows the three-phase law (R^2 ~ 0.99)"),
    ("cross", "loss-vs-data curves of different batches cross"),
    ("bmin", "Bmin grows as the target loss falls"),
    ("bopt", "Bopt grows as the target loss falls"),
    ("dynamic", "the dynamic schedule beats the best fixed batch"),
]


def verdict_table(nqm, tf, cpu=None) -> str:
    """Markdown: claim | NQM | transformer, this demo's sweep | transformer, the CPU tier's committed logs."""
    lines = [
        "| paper's claim | NQM (exact) | transformer, this demo's short sweep | transformer, CPU tier "
        "(committed logs, refitted) |",
        "|---|---|---|---|",
    ]
    for key, claim in _CLAIMS:
        a = nqm.get(key, ("-", "inconclusive"))
        b = tf.get(key, ("not run (needs the torch extra)", "inconclusive")) if tf else ("not run", "inconclusive")
        c = (cpu or {}).get(
            key, ("not refitted (needs the torch extra and a checkout's docs/data/runs)", "inconclusive")
        )
        lines.append(f"| {claim} | **{a[1]}**: {a[0]} | **{b[1]}**: {b[0]} | **{c[1]}**: {c[0]} |")
    return "\n".join(lines)


def _committed(out):
    """The CPU tier's verdicts refitted from the committed logs (nothing trained): the sweep's four claims and
    the default rule against the best fixed batch; a claim whose runs the store lacks says so."""
    from validate.experiments import get
    from validate.experiments.log_store import DEFAULT_STORE, LogStore
    from validate.experiments.tiers import TIERS

    if not any(DEFAULT_STORE.glob("*.csv.gz")):
        return None
    tier = TIERS["cpu"].with_(store=LogStore(DEFAULT_STORE, from_logs=True))
    root, got = out / "cpu-tier", {}
    for name in ("sweep", "schedule"):
        try:
            s = get(name).run(tier, root, jobs=1, progress=False)
        except ValueError as exc:
            miss = f"not in the committed logs ({str(exc).split(';')[0]}); dbs validate {name} --tier cpu trains it"
            got.update(
                {
                    k: (miss, "inconclusive")
                    for k in (("fit", "cross", "bmin", "bopt") if name == "sweep" else ("dynamic",))
                }
            )
            if name == "sweep":
                break
            continue
        if name == "sweep":
            got.update(_transformer_claims(s))
            del got["dynamic"]
        else:
            c = next(c for c in s["claims"] if c["claim"].startswith("The calibrated") and "best fixed" in c["claim"])
            got["dynamic"] = (f"the default (calibrated) rule under WSD: {c['measured']}", c["verdict"])
    return got


def _transformer_sweep(out, args):
    """The demo tier's batch-size sweep; its claims for the verdict table."""
    from validate.experiments import sweep

    tier = _demo_tier()
    print(
        f"\n== Transformer sweep (tier demo: preset {tier.preset}, {len(tier.batches)} batch sizes "
        f"{min(tier.batches)}-{max(tier.batches)} tokens, lr {tier.lr:g}, constant after warmup)\n"
    )
    return _transformer_claims(sweep.run(tier, out / "transformer", jobs=args.jobs, progress=not args.quiet))


def _transformer_stages(out, args, stage, bar):
    """The demo's own short sweep, then the CPU tier refitted from the committed logs: their claims."""
    stage("transformer sweep")
    tf = _transformer_sweep(out, args)
    bar.update(1)
    stage("CPU tier from logs")
    print("\n== The CPU tier refitted from the committed logs (docs/data/runs; nothing is trained)\n")
    cpu = _committed(out)
    bar.update(1)
    return tf, cpu


def _nqm_stages(out, stage, bar) -> None:
    """The NQM sweep and the NQM schedule comparison, as ``dbs simulate`` and ``dbs simulate schedule`` run
    them (their defaults), into ``out/nqm-sweep`` and ``out/nqm-schedule``."""
    from sim.modes.schedule import print_schedule_study, schedule_study
    from sim.modes.common import BUDGETS, D_SWEEP, ETA, parse_budgets
    from sim.modes.sweep import LogOptions, print_sweep, sweep
    from sim.nqm import NQM

    eta, d = ETA, D_SWEEP
    stage("NQM sweep")
    print("\n== NQM sweep (exact expected loss, zhang2019 spectrum, eta = 0.5)\n")
    nqm = NQM.zhang2019(d)
    print_sweep(nqm, eta, sweep(nqm, eta, out / "nqm-sweep", log=LogOptions(), progress=False), out / "nqm-sweep")
    bar.update(1)
    stage("NQM schedules")
    print("\n== NQM: dynamic vs fixed vs optimised batch schedules at equal data\n")
    binned, describe = NQM.zhang2019(d, 100), dict(spectrum="zhang2019", d=d, nbins=None)
    record = schedule_study(
        binned, eta, parse_budgets(BUDGETS), out / "nqm-schedule", describe=describe, progress=False
    )
    print_schedule_study(record, out / "nqm-schedule")
    bar.update(1)


def run(args):
    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir

    from .report import write_report
    from tqdm.auto import tqdm

    if args.jobs < 1:
        raise ValueError(f"--jobs={args.jobs} must be >= 1")
    check_writable(args.out)
    out = ensure_writable_dir(args.out)
    t0 = time.perf_counter()
    try:
        import torch  # noqa: F401

        have_torch = not args.no_train
    except ImportError:
        have_torch = False
        print('(no PyTorch: the transformer sweep is skipped; pip install "dbs-theory[torch]" to add it)')
    steps = (
        ["formulas", "NQM sweep", "NQM schedules"]
        + (["transformer sweep", "CPU tier from logs"] if have_torch else [])
        + ["report"]
    )
    bar = tqdm(total=len(steps), desc="demo", unit="stage", disable=args.quiet)
    timings = {}

    def stage(name):
        bar.set_postfix_str(name)
        timings[name] = time.perf_counter()

    stage("formulas")
    print("\n== Key formulas (derived symbolically; `dbs derive` prints all of them)\n")
    print(_formulas())
    bar.update(1)
    _nqm_stages(out, stage, bar)
    tf, cpu = _transformer_stages(out, args, stage, bar) if have_torch else (None, None)
    nqm = _nqm_claims(out / "nqm-sweep", out / "nqm-schedule")
    table = verdict_table(nqm, tf, cpu)
    stage("report")
    intro = (
        "Made by `dbs demo`. The verdict table compares the paper's claims with the exact NQM, a short "
        "transformer sweep on the embedded corpus (Python's standard library) that five minutes cannot make "
        "decide, and the CPU tier's committed runs refitted from their logs.\n\n" + table
    )
    md, html = write_report(out, intro=intro)
    bar.update(1)
    bar.close()
    wall = time.perf_counter() - t0
    with atomic_write(out / "demo.json") as fh:
        json.dump(dict(wall_seconds=wall, nqm=nqm, transformer=tf, cpu_tier=cpu), fh, indent=1)
    print(f"\n== Verdicts (demo finished in {wall / 60:.1f} min)\n")
    print(table)
    print(f"\nreport: {html} (self-contained) and {md}; figures in {out / 'figures'}")
    return 0
