"""``dbs simulate optimal``: the optimal schedule and every rule per budget; --study over the spectra."""

from __future__ import annotations

from .common import build_nqm, json_safe, parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate optimal``: the optimal schedule and every rule per budget
    (:func:`sim.rule_scores.compare_rules`)."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir

    from ..optimal import LR_SCHEDULES
    from ..rule_scores import budget_record, compare_rules

    if args.eta == "tuned":
        raise ValueError("'optimal' needs a fixed learning rate (--eta NUMBER)")
    if args.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"--lr-schedule={args.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
    if args.pieces < 4:
        raise ValueError(f"--pieces={args.pieces} must be >= 4")
    if args.measured:
        raise ValueError(
            "--measured is gone: its rules read the simulator's state; dbs simulate rules scores the "
            "rules users run, from Monte Carlo logs read by dbs fit"
        )
    if args.study:
        return run_study(args)
    eta, nqm, budgets = float(args.eta), build_nqm(args), parse_budgets(args.budgets)
    nqm.check_stable(eta)
    check_writable(args.out)
    out, results = ensure_writable_dir(args.out), []
    for budget in budgets:
        rows = compare_rules(nqm, eta, budget, args.lr_schedule, pieces=args.pieces)
        print(
            f"\n{args.spectrum}, d={args.d}, eta={eta}, budget {budget:g} examples, LR {args.lr_schedule}"
            ", oracle inputs (final loss; gap = share of best fixed -> optimal):"
        )
        print(_table(rows))
        results.append(budget_record(nqm, eta, budget, rows, args.lr_schedule, args.pieces))
    with atomic_write(out / "optimal.json") as fh:
        json.dump(
            dict(
                nqm=dict(spectrum=args.spectrum, d=args.d),
                eta=eta,
                lr_schedule=args.lr_schedule,
                pieces=args.pieces,
                inputs="oracle",
                results=results,
            ),
            fh,
            indent=1,
        )
    print(f"\nwrote {out}/optimal.json")
    return 0


def _table(rows) -> str:
    """:func:`sim.rule_scores.compare_rules`'s scores as a text table: rule, final loss, gap closed, batches."""
    from dbs_theory.table import format_table

    show = [
        dict(
            rule=r.title,
            loss=f"{r.loss:.5g}",
            gap=f"{r.gap_closed:.0%}",
            batches=f"{r.schedule.sizes[0]:.3g} -> {max(r.schedule.sizes):.3g}" if r.available else f"n/a: {r.note}",
        )
        for r in rows
    ]
    return format_table(show, ["rule", "loss", "gap", "batches"], ["rule", "loss", "gap closed", "batches"])


def run_study(args):
    """``dbs simulate optimal --study``: :func:`sim.rule_scores.study` over ``--budgets`` and the three LR schedules;
    prints the summary per LR schedule and rule (and, with exact inputs, the optimum's shape per case:
    :func:`sim.rule_scores.optimum_shape`) and writes ``study.json``."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
    from dbs_theory.table import format_table

    from ..rule_scores import study, summarize

    eta, budgets = float(args.eta), parse_budgets(args.budgets)
    check_writable(args.out)
    out = ensure_writable_dir(args.out)
    rows = study(budgets, eta=eta, progress=not args.quiet, shape=True)
    summary = summarize(rows)
    print(
        f"\nRules over {len({r['spectrum'] for r in rows})} spectra x budgets {', '.join(f'{b:g}' for b in budgets)}"
        f", eta={eta}, oracle inputs (gap = share of best fixed -> optimal):"
    )
    cols = ["lr_schedule", "title", "cases", "min_gap", "median_gap", "loses", "at_least_60", "unavailable"]
    print(format_table(summary, cols, ["LR", "rule", "cases", "min gap", "median gap", "loses", ">= 60%", "n/a"]))
    shapes = [
        dict(
            spectrum=r["spectrum"],
            budget=r["budget"],
            lr=r["lr_schedule"],
            **{
                k: "-".join(f"{x:.3g}" for x in v) if isinstance(v, tuple) else f"{v:.3g}"
                for k, v in r["shape"].items()
            },
        )
        for r in rows
        if "shape" in r
    ]
    if shapes:
        print("\nThe optimum against Bopt(D), Bmin(L(D)), B_noise(D) (batch ratios; sim.rule_scores.optimum_shape):")
        print(format_table(shapes, list(shapes[0])))
    with atomic_write(out / "study.json") as fh:
        json.dump(json_safe(dict(eta=eta, budgets=budgets, inputs="oracle", summary=summary, rows=rows)), fh, indent=1)
    print(f"\nwrote {out}/study.json")
    return 0
