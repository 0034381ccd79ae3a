"""``dbs simulate identify``: whether a sweep identifies Bmin and Bopt (Monte Carlo seeds, bootstrap)."""

from __future__ import annotations

from .common import build_nqm, parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate identify``: score the estimators on realistic sweep designs (see :mod:`sim.identify`)."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir, write_csv
    from dbs_theory.table import format_table

    from ..identify import study

    if args.eta == "tuned":
        raise ValueError("'identify' needs a fixed learning rate (--eta NUMBER)")
    eta = float(args.eta)
    budget = parse_budgets(args.budgets)[0]
    if args.replicas < 4 or args.bootstrap < 10:
        raise ValueError(f"--replicas={args.replicas} must be >= 4 and --bootstrap={args.bootstrap} >= 10")
    nqm = build_nqm(args)
    nqm.check_stable(eta)
    check_writable(args.out)
    rows, targets = study(
        nqm, eta, budget, replicas=args.replicas, bootstrap=args.bootstrap, seed=args.seed, progress=not args.quiet
    )
    out = ensure_writable_dir(args.out)
    write_csv(out / "identify.csv", rows)
    with atomic_write(out / "identify.json") as fh:
        json.dump(
            dict(
                d=nqm.d,
                eta=eta,
                budget=budget,
                targets=list(map(float, targets)),
                replicas=args.replicas,
                bootstrap=args.bootstrap,
                rows=rows,
            ),
            fh,
            indent=1,
        )
    print(
        f"NQM zhang2019 d={nqm.d}, eta={eta}, every run to {budget:g} examples; targets "
        + ", ".join(f"{t:.3g}" for t in targets)
    )
    print(
        format_table(
            [_identify_cells(r) for r in rows],
            ["design", "noise", "quantity", "identified", "bias", "spread", "max_error", "coverage"],
            ["design", "noise", "estimator", "identified", "bias", "spread", "max |error|", "90% coverage"],
        )
    )
    print(f"\nwrote {out}/identify.csv, identify.json")
    return 0


def _identify_cells(r):
    """A study row for people: fractions as %, missing numbers as 'not identified'."""
    import math

    pct = lambda x: "-" if math.isnan(x) else f"{x:+.1%}"
    return dict(
        design=r["design"],
        noise=r["noise"],
        quantity=r["quantity"],
        identified=f"{r['identified']:.0%} of {r['n']}",
        bias=pct(r["bias"]) if r["identified"] else "not identified",
        spread=pct(r["spread"]).lstrip("+"),
        max_error=pct(r["max_error"]).lstrip("+"),
        coverage="-" if math.isnan(r["coverage"]) else f"{r['coverage']:.0%} of {r['n_intervals']}",
    )
