"""``dbs simulate plan``: dbs plan's proposals scored on the NQM."""

from __future__ import annotations

from .common import build_nqm, parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate plan``: runs and data to pin Bopt, planner vs plain grids (see :mod:`sim.plan_eval`)."""
    from dbs_theory.io import check_writable, ensure_writable_dir, write_csv
    from dbs_theory.table import format_table

    from ..plan_eval import compare

    if args.eta == "tuned":
        raise ValueError("'plan' needs a fixed learning rate (--eta NUMBER)")
    if not 0 < args.tol < 1:
        raise ValueError(f"--tol={args.tol:g} must lie in (0, 1)")
    eta, budget = float(args.eta), parse_budgets(args.budgets)[0]
    build_nqm(args).check_stable(eta)
    check_writable(args.out)
    rows = compare(
        d=args.d, eta=eta, budget=budget, tol=args.tol, noise=args.log_kind, seed=args.seed, progress=not args.quiet
    )
    out = ensure_writable_dir(args.out)
    write_csv(out / "plan_eval.csv", rows)
    print(
        f"NQM d={args.d}, eta={eta}, budget {budget:g} examples, {args.log_kind} runs, pinned = 90% interval "
        f"within +/-{100 * args.tol:.0f}%"
    )
    cells = [
        dict(
            r,
            result=(
                f"{r['bopt']:.4g} [{r['lo']:.4g}, {r['hi']:.4g}], error {100 * r['error']:+.1f}%"
                if r["done"]
                else "not pinned"
            ),
        )
        for r in rows
    ]
    print(
        format_table(
            cells,
            ["spectrum", "method", "runs", "data", "exact", "result"],
            ["spectrum", "method", "runs", "data", "exact Bopt", "Bopt [90%], error"],
        )
    )
    print(f"\nwrote {out}/plan_eval.csv")
    return 0
