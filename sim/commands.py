"""``dbs simulate``: the default NQM sweep (frontier, Bmin/Bopt, crossovers)."""
from __future__ import annotations

import argparse

__all__ = ["HELP", "add_arguments", "arguments", "run"]

HELP = "simulate the NQM: E(S) frontier, Bmin/Bopt per target, crossovers"
EXAMPLES = """examples:
  dbs simulate --write-log --out results/simulate
  dbs simulate schedule --budgets 1e5,1e6
  dbs simulate identify --out results/identify
  dbs simulate plan --out results/plan
  dbs simulate chain --budgets 1e5,3e5,1e6 --out results/chain
  dbs simulate optimal --budgets 1e5 --lr-schedule wsd --out results/optimal"""


def _floats(text):
    """``a,b,c`` or ``lo:hi:n`` (log-spaced) into a list of floats."""
    import numpy as np

    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            if not (float(lo) > 0 and float(hi) > 0 and int(n) >= 1):
                raise ValueError
            return list(np.geomspace(float(lo), float(hi), int(n)))
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'a,b,c' or 'lo:hi:n' (lo, hi > 0, n >= 1)") from None


def add_arguments(p):
    p.add_argument("what", nargs="?", choices=("sweep", "schedule", "identify", "plan", "chain", "optimal",
                                                   "rules"),
                   default="sweep",
                   help="sweep (default): the E(S) frontier; schedule: dynamic vs fixed vs optimal "
                        "batch schedules at equal data, and the paper's ablations; identify: which sweep "
                        "designs identify Bmin/Bopt (each estimator scored against the exact NQM); plan: runs "
                        "and data the sweep planner (dbs plan) needs to pin Bopt, vs plain grids; chain: the "
                        "main path (dbs fit + dbs schedule, default options) on realistic NQM sweeps, its "
                        "schedule scored against the sweep's best fixed batch, the paper's rule on the exact "
                        "Bopt(D) and the optimal schedule; optimal: the loss-optimal batch schedule (many "
                        "pieces, exact gradients) and every batch-size rule's idea with oracle inputs scored against it; "
                        "rules: every rule dbs schedule and dbs train run, from NQM sweeps logged as trainers log "
                        "and read by dbs fit, scored against the optimum (8 spectra, constant and WSD)")
    p.add_argument("--budgets", default="1e5,1e6", help="data budgets (examples) for 'schedule'; identify uses the first (default 1e5,1e6)")
    p.add_argument("--spectrum", choices=("zhang2019", "power-law"), default="zhang2019",
                   help="NQM spectrum (default: zhang2019, h_i = c_i = 1/i)")
    p.add_argument("--d", type=int, default=None, help="number of modes (default 10000; 1000 for identify, "
                   "whose Monte Carlo runs cost d x steps)")
    p.add_argument("--replicas", type=int, default=16, help="identify: Monte Carlo seeds per batch size "
                   "(default 16: 16 one-seed sweeps and 4 four-seed sweeps)")
    p.add_argument("--bootstrap", type=int, default=100, help="identify: bootstrap resamples per interval "
                   "(default 100)")
    p.add_argument("--alpha", type=float, default=1.5, help="power-law exponent of h_i ~ i^-alpha")
    p.add_argument("--nbins", type=int, default=None, help="bin the spectrum into this many bins")
    p.add_argument("--eta", default="0.5", help="fixed learning rate, or 'tuned' (default 0.5)")
    p.add_argument("--batch-sizes", type=_floats, default=None,
                   help="batch sizes in examples: 'a,b,c' or 'lo:hi:n' log-spaced (default: for each "
                        "target, Bmin x (1 + 10 log-spaced values from 1e-3 to 300))")
    p.add_argument("--targets", type=_floats, default=None,
                   help="target losses 'a,b,c' (default: 8 targets with Bmin from 1 to 64)")
    p.add_argument("--out", default="results/simulate", help="output directory")
    p.add_argument("--write-log", action="store_true",
                   help="also write runs.csv: a loss log per batch size in the interchange format "
                        "(for dbs fit)")
    p.add_argument("--log-kind", choices=("exact", "mc"), default="exact",
                   help="log the exact expected loss, or one Monte Carlo run per batch (costs d x steps)")
    p.add_argument("--log-every", type=int, default=None,
                   help="--write-log: a row every K steps, as trainers log (default: a run's steps // 400)")
    p.add_argument("--log-spacing", choices=("linear", "log"), default="linear",
                   help="--write-log: rows every --log-every steps (linear, default) or at 400 log-spaced steps")
    p.add_argument("--seed", type=int, default=0, help="seed for --log-kind mc")
    p.add_argument("--tol", type=float, default=0.10, help="plan: relative half-width of the 90%% interval "
                   "that counts as pinned (default 0.10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--lr-schedule", default="constant", help="optimal: constant, wsd (decay to 10%% over "
                   "20%% more data) or cosine (default constant)")
    p.add_argument("--pieces", type=int, default=32, help="optimal: batch pieces of the schedule (default 32)")
    p.add_argument("--measured", action="store_true", help="refused: the rules from measured inputs are "
                   "scored by dbs simulate rules")
    p.add_argument("--study", action="store_true", help="optimal: the rules table over sim.rules.SPECTRA (four "
                   "spectra, d = 1000) x --budgets x the three LR schedules instead of one NQM (--spectrum, --d, "
                   "--alpha, --lr-schedule unused); writes OUT/study.json (docs/optimal_schedules.md)")
    p.add_argument("--resume", action="store_true", help="chain, rules: reuse the finished cases of an "
                   "interrupted run with the same options (OUT/chain_rows.jsonl; OUT/rows.jsonl, sweeps/, refs.json) "
                   "instead of rerunning them")


def arguments(**overrides) -> argparse.Namespace:
    """The options of ``dbs simulate`` at their defaults, with ``overrides`` (Python names, e.g.
    ``write_log=True``): how a program calls :func:`run` without writing a command line. An unknown
    name is refused."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([])
    unknown = sorted(set(overrides) - set(vars(args)))
    if unknown:
        raise TypeError(f"dbs simulate has no option {', '.join(unknown)}")
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def default_targets(nqm, eta, n=8):
    """Targets whose ``Bmin`` runs log-evenly from 1 to 64 examples."""
    import numpy as np

    from dbs_theory import numeric

    b1 = float(numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, nqm.L_irr + 1.0, nqm.L_irr))
    if not b1 > 0:
        raise ValueError("the noise spectrum is all zero: no batch size limits the loss (Bmin = 0 for every "
                         "target), so there are no default targets; give targets explicitly")
    # Bmin = b1 / (L* - L_irr), so L* = L_irr + b1 / Bmin.
    return list(nqm.L_irr + b1 / np.geomspace(1, 64, n))


def default_batches(nqm, eta, targets, per_target=10):
    """Every target's phases sampled: ``Bmin (1 + x)``, ``x`` log-spaced over 1e-3..300, pooled.

    A plain log grid puts one or two batches between ``Bmin`` and ``Bopt``,
    too few for the linear and quadratic phases to be fitted.
    """
    import numpy as np

    from dbs_theory import numeric

    grid = []
    for t in targets:
        if t > nqm.L_irr:
            b0 = float(numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, t, nqm.L_irr))
            grid.extend(b0 * (1 + np.geomspace(1e-3, 300, per_target)))
    return sorted(set(np.round(grid, 6)))


#: Peak bytes per stored mode of a default sweep (measured: 1.5 GB at d = 1e6 without binning).
BYTES_PER_MODE = 1600


def _available_memory():
    """Bytes of memory available now (Linux ``MemAvailable``), or ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(modes, available=None):
    """Refuse, before allocating, a sweep whose per-mode arrays would not fit in memory."""
    need = BYTES_PER_MODE * int(modes)
    available = _available_memory() if available is None else available
    if available is not None and need > 0.8 * available:
        raise ValueError(f"an NQM with {int(modes):,} stored modes needs about {need / 2**30:.1f} GiB but "
                         f"{available / 2**30:.1f} GiB is available; bin the spectrum (--nbins 200) or lower --d")


def build_nqm(args):
    from .nqm import NQM

    if args.d < 1:
        raise ValueError(f"--d={args.d} must be a positive number of modes")
    if args.nbins is not None and args.nbins < 1:
        raise ValueError(f"--nbins={args.nbins} must be >= 1")
    check_memory(min(args.d, args.nbins or args.d))

    if args.spectrum == "zhang2019":
        return NQM.zhang2019(args.d, args.nbins)
    return NQM.power_law(args.d, args.alpha, nbins=args.nbins)


#: options that only some modes read -> those modes (an option another mode would ignore is refused)
MODE_OPTIONS = {"replicas": ("identify",), "bootstrap": ("identify",), "tol": ("plan",), "resume": ("chain", "rules"),
                "lr_schedule": ("optimal",), "pieces": ("optimal",), "measured": ("optimal",), "study": ("optimal",),
                "write_log": ("sweep",), "log_every": ("sweep",), "log_spacing": ("sweep",),
                "batch_sizes": ("sweep",), "targets": ("sweep",), "log_kind": ("sweep", "plan"),
                "budgets": ("schedule", "identify", "plan", "chain", "optimal", "rules")}


def _check_mode_options(args):
    """Refuse, in one line, an option set away from its default in a mode that would ignore it."""
    defaults = vars(arguments())
    for k, modes in MODE_OPTIONS.items():
        if args.what not in modes and getattr(args, k) != defaults[k]:
            flag = "--" + k.replace("_", "-")
            raise ValueError(f"{flag} applies to dbs simulate {' / '.join(modes)}, not to {args.what!r} "
                             "(it would be ignored)")
    if args.what == "sweep" and not args.write_log:
        for k in ("log_every", "log_spacing", "log_kind", "seed"):
            if getattr(args, k) != defaults[k]:
                raise ValueError(f"--{k.replace('_', '-')} shapes the log --write-log writes: add --write-log "
                                 "(without it no log is written)")


def run(args):
    """Run the mode ``args.what`` names; ``args`` is not changed (an unset ``--d`` means 1000 modes for the
    modes that run many evaluations, 10000 for the sweep)."""
    _check_mode_options(args)
    if args.log_every is not None and (args.log_every < 1 or args.log_spacing != "linear"):
        raise ValueError(f"--log-every={args.log_every} must be a positive number of steps, with "
                         "--log-spacing linear")
    d = args.d if args.d is not None else (10_000 if args.what in ("sweep", "schedule") else 1000)
    modes = dict(sweep=run_sweep, schedule=run_schedule, identify=run_identify, plan=run_plan, chain=run_chain,
                 optimal=run_optimal, rules=run_rules)
    return modes[args.what](argparse.Namespace(**{**vars(args), "d": d}))


def run_optimal(args):
    """``dbs simulate optimal``: the optimal schedule and every rule per budget (:func:`sim.rules.compare_rules`)."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
    from dbs_theory.table import format_table

    from .optimal import LR_SCHEDULES
    from .rules import budget_record, compare_rules

    if args.eta == "tuned":
        raise ValueError("'optimal' needs a fixed learning rate (--eta NUMBER)")
    if args.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"--lr-schedule={args.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
    if args.pieces < 4:
        raise ValueError(f"--pieces={args.pieces} must be >= 4")
    if args.measured:
        raise ValueError("--measured is gone: its rules read the simulator's state; dbs simulate rules scores the "
                         "rules users run, from Monte Carlo logs read by dbs fit")
    if args.study:
        return run_optimal_study(args)
    eta, nqm, budgets = float(args.eta), build_nqm(args), _budgets(args.budgets)
    nqm.check_stable(eta)
    check_writable(args.out)
    out, results = ensure_writable_dir(args.out), []
    for budget in budgets:
        rows = compare_rules(nqm, eta, budget, args.lr_schedule, pieces=args.pieces)
        show = [dict(rule=r["rule"], loss=f"{r['loss']:.5g}", gap=f"{r['gap_closed']:.0%}",
                     batches=f"{r['schedule'].sizes[0]:.3g} -> {max(r['schedule'].sizes):.3g}" if r["schedule"]
                     else f"n/a: {r['note']}") for r in rows]
        print(f"\n{args.spectrum}, d={args.d}, eta={eta}, budget {budget:g} examples, LR {args.lr_schedule}"
              ", oracle inputs (final loss; gap = share of best fixed -> optimal):")
        print(format_table(show, ["rule", "loss", "gap", "batches"], ["rule", "loss", "gap closed", "batches"]))
        results.append(budget_record(nqm, eta, budget, rows, args.lr_schedule, args.pieces))
    with atomic_write(out / "optimal.json") as fh:
        json.dump(dict(nqm=dict(spectrum=args.spectrum, d=args.d), eta=eta, lr_schedule=args.lr_schedule,
                       pieces=args.pieces, inputs="oracle", results=results), fh, indent=1)
    print(f"\nwrote {out}/optimal.json")
    return 0


def run_rules(args):
    """``dbs simulate rules``: :func:`sim.rule_chain.study` over ``--budgets``; prints the summary table and writes
    ``rules.json`` (summary and rows) and ``rules.md``; ``--resume`` reuses OUT's sweeps, references and rows."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir

    from .rule_chain import markdown, study, summarize

    budgets = _budgets(args.budgets)
    check_writable(args.out)
    out = ensure_writable_dir(args.out)
    if not args.resume:
        for old in [out / "rows.jsonl", out / "refs.json", *sorted((out / "sweeps").glob("*.json"))]:
            old.unlink(missing_ok=True)
    rows = study(budgets, seed=args.seed, out=out, progress=not args.quiet)
    summary = summarize(rows)
    with atomic_write(out / "rules.json") as fh:
        json.dump(_json_safe(dict(budgets=budgets, summary=summary, rows=rows)), fh, indent=1)
    with atomic_write(out / "rules.md") as fh:
        fh.write(markdown(summary))
    print(markdown(summary))
    print(f"wrote {out}/rules.json, rules.md")
    return 0


def _json_safe(v):
    """``v`` with tuples as lists, numpy scalars as numbers and NaN or infinite floats as None (plain JSON)."""
    import math

    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v


def run_optimal_study(args):
    """``dbs simulate optimal --study``: :func:`sim.rules.study` over ``--budgets`` and the three LR schedules;
    prints the summary per LR schedule and rule (and, with exact inputs, the optimum's shape per case:
    :func:`sim.rules.optimum_shape`) and writes ``study.json``."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
    from dbs_theory.table import format_table

    from .rules import study, summarize

    eta, budgets = float(args.eta), _budgets(args.budgets)
    check_writable(args.out)
    out = ensure_writable_dir(args.out)
    rows = study(budgets, eta=eta, progress=not args.quiet, shape=True)
    summary = summarize(rows)
    print(f"\nRules over {len({r['spectrum'] for r in rows})} spectra x budgets {', '.join(f'{b:g}' for b in budgets)}"
          f", eta={eta}, oracle inputs (gap = share of best fixed -> optimal):")
    cols = ["lr_schedule", "rule", "cases", "min_gap", "median_gap", "loses", "at_least_60", "unavailable"]
    print(format_table(summary, cols, ["LR", "rule", "cases", "min gap", "median gap", "loses", ">= 60%", "n/a"]))
    shapes = [dict(spectrum=r["spectrum"], budget=r["budget"], lr=r["lr_schedule"],
                   **{k: "-".join(f"{x:.3g}" for x in v) if isinstance(v, tuple) else f"{v:.3g}"
                      for k, v in r["shape"].items()}) for r in rows if "shape" in r]
    if shapes:
        print("\nThe optimum against Bopt(D), Bmin(L(D)), B_noise(D) (batch ratios; sim.rules.optimum_shape):")
        print(format_table(shapes, list(shapes[0])))
    with atomic_write(out / "study.json") as fh:
        json.dump(_json_safe(dict(eta=eta, budgets=budgets, inputs="oracle", summary=summary, rows=rows)),
                  fh, indent=1)
    print(f"\nwrote {out}/study.json")
    return 0


def run_sweep(args):
    """``dbs simulate``: the E(S) frontier, Bmin/Bopt per target and crossovers (see :mod:`sim.sweep`)."""
    import numpy as np

    from dbs_theory.io import ensure_writable_dir, write_csv
    from dbs_theory.table import format_table

    from .crossover import crossover
    from .sweep import es_frontier

    eta = args.eta if args.eta == "tuned" else float(args.eta)
    nqm = build_nqm(args)
    fixed_eta = 0.5 if eta == "tuned" else eta
    nqm.check_stable(fixed_eta)
    if args.targets is not None and not args.targets:
        raise ValueError("--targets is empty: give target losses 'a,b,c' or leave the option out")
    L0 = nqm.initial_loss()
    targets = args.targets if args.targets is not None else default_targets(nqm, fixed_eta)
    if args.targets is None and not all(nqm.L_irr < t < L0 for t in targets):
        raise ValueError(f"at eta={args.eta} the noise floor is so high that the default targets (Bmin 1 to 64 "
                         f"examples) lie above the initial loss {L0:.4g}; give --targets below it or a smaller "
                         "--eta")
    for t in targets:
        if not nqm.L_irr < t < L0:
            raise ValueError(f"target={t:g} must lie between the loss floor L_irr={nqm.L_irr:g} (no batch "
                             f"reaches it) and the initial loss {L0:.4g}")
    batches = args.batch_sizes or default_batches(nqm, fixed_eta, targets)
    if not all(np.isfinite(b) and b > 0 for b in batches):
        got = ", ".join(f"{b:g}" for b in batches)
        raise ValueError(f"batch_sizes (--batch-sizes) must be positive and finite; got {got}")
    out = ensure_writable_dir(args.out)
    fr = es_frontier(nqm, eta, batches, targets, progress=not args.quiet)
    cross = []
    if eta != "tuned":
        for row in fr.target_rows():
            if np.isfinite(row["bopt"]):
                c = crossover(nqm, eta, row["bopt"] / 2, row["bopt"] * 2)
                cross.append(dict(target=row["target"], b_small=row["bopt"] / 2, b_large=row["bopt"] * 2,
                                  data=c.data if c else float("nan"), loss=c.loss if c else float("nan")))
    runs = _loss_logs(nqm, eta, fr, args) if args.write_log and eta != "tuned" else None
    fr.write(out)
    if runs:
        from dbs_theory.runs import write_runs

        write_runs(runs, out / "runs.csv")
    if cross:
        write_csv(out / "crossovers.csv", cross)
    _print_summary(fr, cross, format_table)
    if eta != "tuned":
        _print_phase_profile(nqm, eta, fr, format_table)
    print(f"\nwrote {out}/frontier.csv, targets.csv, frontier.json" + (", crossovers.csv" if cross else "")
          + (", runs.csv" if runs else ""))
    return 0


def _print_summary(fr, cross, format_table):
    print(f"NQM: d={fr.meta['d']} modes, L0={fr.meta['initial_loss']:.4g}, eta={fr.meta['eta']}")
    print("\nPer target (B in examples, S in steps, E in examples):")
    print(format_table(fr.target_rows(), ["target", "smin", "bmin", "bopt", "sopt", "emin"],
                       ["L*", "Smin", "Bmin", "Bopt", "Sopt", "Emin"]))
    if cross:
        print("\nCrossovers of loss-vs-data curves at Bopt/2 and 2 Bopt:")
        print(format_table(cross, ["target", "b_small", "b_large", "data", "loss"],
                           ["L*", "B small", "B large", "D at crossing", "loss there"]))


def _print_phase_profile(nqm, eta, fr, format_table):
    """The three phases at the middle target, on a batch grid dense near Bmin."""
    import numpy as np

    from .frontier import steps_to_target
    from .sweep import FrontierResult

    k = fr.targets.size // 2
    t = fr.targets[k]
    B = fr.bmin[k] * (1 + np.geomspace(1e-4, 3e3, 15))
    S = steps_to_target(nqm, eta, B[:, None], np.array([t]))
    one = FrontierResult(B, np.array([t]), S, B[:, None] * S, np.full(S.shape, eta), fr.smin[k:k + 1],
                         fr.bmin[k:k + 1], fr.bopt[k:k + 1], fr.sopt[k:k + 1], fr.emin[k:k + 1])
    ph = one.phases()[:, 0]
    slope = np.gradient(one.E[:, 0], S[:, 0])
    rows = [dict(B=B[i], ratio=B[i] / fr.bmin[k], S=S[i, 0], E=one.E[i, 0], slope=slope[i], phase=ph[i])
            for i in range(B.size)]
    print(f"\nThe three phases of E(S) at L* = {t:.4g} (Bmin = {fr.bmin[k]:.4g}, Bopt = {fr.bopt[k]:.4g}):")
    print(format_table(rows, ["B", "ratio", "S", "E", "slope", "phase"],
                       ["B", "B/Bmin", "S (steps)", "E (examples)", "dE/dS", "phase"]))


def _loss_logs(nqm, eta, fr, args):
    """One run per batch size, long enough to reach the lowest target it can (x1.3), logged as a trainer
    logs (``--log-every``, ``--log-spacing``)."""
    import math

    import numpy as np
    from tqdm.auto import tqdm

    from dbs_theory.runs import Run

    from .trainer_logs import exact_log, mc_log

    finite = np.where(np.isfinite(fr.S), fr.S, np.nan)
    longest = np.nanmax(finite) if np.any(np.isfinite(finite)) else 1000.0
    runs = []
    for b, B in enumerate(tqdm(fr.batch_sizes, desc="loss logs", disable=args.quiet)):
        S_b = np.nanmax(finite[b]) if np.any(np.isfinite(finite[b])) else longest
        steps = int(math.ceil(1.3 * S_b)) + 2
        how = dict(every=args.log_every, spacing=args.log_spacing)
        if args.log_kind == "exact":
            runs.append(exact_log(nqm, eta, float(B), steps=steps, name=f"B{B:.6g}", **how))
            continue
        step, D, loss = mc_log(nqm, eta, float(B), steps, replicas=1, seed=args.seed + b, **how)
        runs.append(Run(f"B{B:.6g}", float(B), step, D, loss[0], {"lr": np.full(step.size, float(eta))}))
    return runs


def run_schedule(args):
    """``dbs simulate schedule``: (a)-(d) and ablations per budget, on a binned NQM."""
    import json

    from tqdm.auto import tqdm

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
    from dbs_theory.table import format_table

    from .schedule_eval import ablations, compare_schedules, measured_schedules, trajectories

    if args.eta == "tuned":
        raise ValueError("'schedule' needs a fixed learning rate (--eta NUMBER)")
    eta = float(args.eta)
    # every evaluation runs hundreds of trajectories: bin the spectrum (100 bins unless --nbins says)
    nqm = build_nqm(argparse.Namespace(**{**vars(args), "nbins": args.nbins or 100}))
    nqm.check_stable(eta)
    budgets = _budgets(args.budgets)
    check_writable(args.out)
    results = []
    for budget in tqdm(budgets, desc="budgets", disable=args.quiet):
        cmp = compare_schedules(nqm, eta, budget)
        results.append(dict(budget=budget, rows=cmp["rows"], gap_closed=cmp["gap_closed"],
                            curve=cmp["curve"], ablations=ablations(nqm, eta, budget, curve=cmp["bopt_curve"],
                                                                  fixed_batch=cmp["fixed_batch"]),
                            dynamic=json.loads(cmp["dynamic"].to_json()),
                            trajectories=trajectories(nqm, eta, {
                                "best fixed": cmp["fixed_batch"], "dynamic (paper)": cmp["dynamic"],
                                "best 8-piece": cmp["k_piece"]}, budget),
                            k_piece=json.loads(cmp["k_piece"].to_json())))
    measured = measured_schedules(nqm, eta, budgets[0], [budgets[0], 3 * budgets[0]])
    out = ensure_writable_dir(args.out)
    with atomic_write(out / "schedule_eval.json") as fh:
        json.dump(dict(nqm=dict(spectrum=args.spectrum, d=args.d, nbins=args.nbins), eta=eta,
                       results=results, measured=measured), fh, indent=1)
    print(f"NQM {args.spectrum}, d={args.d} in {args.nbins or 100} bins, eta={eta}; dynamic schedule: interval "
          "= budget/50, momentum = 1 (the NQM's Bopt(D) is exact: nothing to smooth)")
    for r in results:
        print(f"\nBudget D = {r['budget']:.3g} examples (final expected loss, lower is better):")
        print(format_table(r["rows"], ["name", "loss", "batch"], ["schedule", "loss", "batch sizes"]))
        print(f"dynamic closes {r['gap_closed']:.0%} of the best-fixed to best-8-piece gap")
        print(format_table(r["ablations"], ["name", "baseline", "variant", "gain"],
                           ["ablation", "baseline", "variant", "gain (baseline - variant)"]))
    print(f"\nSchedules from a measured sweep (2x grid 1..4096, every run cut at {budgets[0]:g}): inside the "
          "swept range and 3x past it (gain = best fixed loss - schedule loss; > 0 beats the best fixed batch)")
    print(format_table([dict(r, where="inside" if r["inside"] else "3x outside") for r in measured],
                       ["budget", "where", "schedule", "loss", "gain", "batches"],
                       ["budget", "where", "schedule", "loss", "gain", "batches"]))
    print(f"\nwrote {out}/schedule_eval.json")
    return 0


def run_identify(args):
    """``dbs simulate identify``: score the estimators on realistic sweep designs (see :mod:`sim.identify`)."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir, write_csv
    from dbs_theory.table import format_table

    from .identify import study

    if args.eta == "tuned":
        raise ValueError("'identify' needs a fixed learning rate (--eta NUMBER)")
    eta = float(args.eta)
    budget = _budgets(args.budgets)[0]
    if args.replicas < 4 or args.bootstrap < 10:
        raise ValueError(f"--replicas={args.replicas} must be >= 4 and --bootstrap={args.bootstrap} >= 10")
    nqm = build_nqm(args)
    nqm.check_stable(eta)
    check_writable(args.out)
    rows, targets = study(nqm, eta, budget, replicas=args.replicas, bootstrap=args.bootstrap, seed=args.seed,
                          progress=not args.quiet)
    out = ensure_writable_dir(args.out)
    write_csv(out / "identify.csv", rows)
    with atomic_write(out / "identify.json") as fh:
        json.dump(dict(d=nqm.d, eta=eta, budget=budget, targets=list(map(float, targets)),
                       replicas=args.replicas, bootstrap=args.bootstrap, rows=rows), fh, indent=1)
    print(f"NQM zhang2019 d={nqm.d}, eta={eta}, every run to {budget:g} examples; targets "
          + ", ".join(f"{t:.3g}" for t in targets))
    print(format_table([_identify_cells(r) for r in rows],
                       ["design", "noise", "quantity", "identified", "bias", "spread", "max_error", "coverage"],
                       ["design", "noise", "estimator", "identified", "bias", "spread", "max |error|",
                        "90% coverage"]))
    print(f"\nwrote {out}/identify.csv, identify.json")
    return 0


def run_plan(args):
    """``dbs simulate plan``: runs and data to pin Bopt, planner vs plain grids (see :mod:`sim.plan_eval`)."""
    from dbs_theory.io import check_writable, ensure_writable_dir, write_csv
    from dbs_theory.table import format_table

    from .plan_eval import compare

    if args.eta == "tuned":
        raise ValueError("'plan' needs a fixed learning rate (--eta NUMBER)")
    if not 0 < args.tol < 1:
        raise ValueError(f"--tol={args.tol:g} must lie in (0, 1)")
    eta, budget = float(args.eta), _budgets(args.budgets)[0]
    build_nqm(args).check_stable(eta)
    check_writable(args.out)
    rows = compare(d=args.d, eta=eta, budget=budget, tol=args.tol, noise=args.log_kind, seed=args.seed,
                   progress=not args.quiet)
    out = ensure_writable_dir(args.out)
    write_csv(out / "plan_eval.csv", rows)
    print(f"NQM d={args.d}, eta={eta}, budget {budget:g} examples, {args.log_kind} runs, pinned = 90% interval "
          f"within +/-{100 * args.tol:.0f}%")
    cells = [dict(r, result=(f"{r['bopt']:.4g} [{r['lo']:.4g}, {r['hi']:.4g}], error {100 * r['error']:+.1f}%"
                             if r["done"] else "not pinned")) for r in rows]
    print(format_table(cells, ["spectrum", "method", "runs", "data", "exact", "result"],
                       ["spectrum", "method", "runs", "data", "exact Bopt", "Bopt [90%], error"]))
    print(f"\nwrote {out}/plan_eval.csv")
    return 0


def run_chain(args):
    """``dbs simulate chain``: the main path end to end on 3 spectra x 2 grids x 3 log kinds x ``--budgets``
    (Monte Carlo logs only at budgets <= 3e5 examples), see :mod:`sim.chain_eval`; ``--spectrum``,
    ``--alpha`` and ``--nbins`` do not apply (the spectra are fixed, unbinned, ``--d`` modes)."""
    import json
    import time

    from dbs_theory.io import atomic_write, ensure_writable_dir, json_default

    from .chain_eval import BARS, SPECTRA, losing_sweeps, markdown_table, study

    if args.eta == "tuned":
        raise ValueError("'chain' needs a fixed learning rate (--eta NUMBER)")
    eta, budgets = float(args.eta), _budgets(args.budgets)
    for make in SPECTRA.values():
        make(args.d).check_stable(eta)  # refuses --d < 1 and an unstable --eta before hours of work
    out = ensure_writable_dir(args.out)
    meta = dict(d=args.d, eta=eta, budgets=budgets, seed=args.seed)
    done, before = _chain_partial(out / "chain_rows.jsonl", meta) if args.resume else ([], 0.0)
    start = time.perf_counter()
    with open(out / "chain_rows.jsonl", "w", encoding="utf-8") as partial:  # partial results, for --resume
        print(json.dumps(dict(meta=meta, seconds=before)), file=partial, flush=True)
        rows, cases = study(d=args.d, eta=eta, budgets=budgets, seed=args.seed, progress=not args.quiet, done=done,
                            on_row=lambda r: print(json.dumps(r, default=json_default), file=partial, flush=True))
    seconds = before + time.perf_counter() - start
    with atomic_write(out / "chain.json") as fh:
        json.dump(dict(d=args.d, eta=eta, budgets=budgets, seed=args.seed, bars=BARS, seconds=seconds,
                       cases=cases, rows=rows), fh, indent=1, default=json_default)
    table, losing = markdown_table(cases), losing_sweeps(rows)
    text = (f"NQM d={args.d}, eta={eta}; every run to the budget (examples), a row every S/2000 steps; "
            f"dbs fit + dbs schedule with default options; (a) the grid's best fixed batch, (b) the paper's "
            f"rule on the exact Bopt(D), (c) the best 8-piece schedule; {seconds / 60:.0f} min\n\n{table}\n"
            + (f"\nSweeps that lose to (a) or miss the exact bar:\n{losing}\n" if losing else ""))
    with atomic_write(out / "chain.md") as fh:
        fh.write(text)
    print(text)
    print(f"wrote {out}/chain.json, chain.md, chain_rows.jsonl")
    return 0


def _chain_partial(path, meta):
    """``(rows, seconds)`` of an interrupted (or shorter) ``dbs simulate chain`` run (``--resume``): its
    finished rows and the time they took. Refused when that run had other options; its budgets may be the
    first of this run's (a budget added later: the earlier cases, and their seeds, are the same)."""
    import json

    if not path.exists():
        return [], 0.0
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    old = lines[0].get("meta") if lines else None
    rest = lambda m: {k: v for k, v in m.items() if k != "budgets"}
    same = old is not None and rest(old) == rest(meta) and old.get("budgets") == meta["budgets"][:len(old["budgets"])]
    if not same:
        raise ValueError(f"--resume: {path} comes from a run with other options "
                         f"({lines[0].get('meta') if lines else 'none'}, not {meta}); drop --resume or use its options")
    return lines[1:], float(lines[0].get("seconds", 0.0))


def _budgets(text):
    """``--budgets`` as a list of positive data amounts (examples)."""
    try:
        budgets = [float(b) for b in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--budgets must be comma-separated numbers; got {text!r}") from None
    if any(not (b > 0 and b < float("inf")) for b in budgets):
        raise ValueError(f"--budgets must be positive and finite; got {text!r}")
    return budgets


def _identify_cells(r):
    """A study row for people: fractions as %, missing numbers as 'not identified'."""
    import math

    pct = lambda x: "-" if math.isnan(x) else f"{x:+.1%}"
    return dict(design=r["design"], noise=r["noise"], quantity=r["quantity"],
                identified=f"{r['identified']:.0%} of {r['n']}",
                bias=pct(r["bias"]) if r["identified"] else "not identified",
                spread=pct(r["spread"]).lstrip("+"), max_error=pct(r["max_error"]).lstrip("+"),
                coverage="-" if math.isnan(r["coverage"]) else f"{r['coverage']:.0%} of {r['n_intervals']}")
