"""``dbs simulate schedule``: dynamic vs fixed batch schedules on the NQM, per budget."""

from __future__ import annotations

import argparse

from .common import build_nqm, parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate schedule``: (a)-(d) and ablations per budget, on a binned NQM."""
    import json

    from tqdm.auto import tqdm

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
    from dbs_theory.table import format_table

    from ..schedule_eval import ablations, compare_schedules, measured_schedules, trajectories

    if args.eta == "tuned":
        raise ValueError("'schedule' needs a fixed learning rate (--eta NUMBER)")
    eta = float(args.eta)
    # every evaluation runs hundreds of trajectories: bin the spectrum (100 bins unless --nbins says)
    nqm = build_nqm(argparse.Namespace(**{**vars(args), "nbins": args.nbins or 100}))
    nqm.check_stable(eta)
    budgets = parse_budgets(args.budgets)
    check_writable(args.out)
    results = []
    for budget in tqdm(budgets, desc="budgets", disable=args.quiet):
        cmp = compare_schedules(nqm, eta, budget)
        results.append(
            dict(
                budget=budget,
                rows=cmp.rows(),
                losses=cmp.losses(),
                gap_closed=cmp.gap_closed,
                curve=cmp.bopt_curve.to_dict(),
                ablations=ablations(nqm, eta, budget, curve=cmp.bopt_curve, fixed_batch=cmp.fixed_batch),
                dynamic=json.loads(cmp.dynamic.to_json()),
                trajectories=trajectories(
                    nqm,
                    eta,
                    {
                        "best fixed": cmp.fixed_batch,
                        "dynamic (paper)": cmp.dynamic,
                        f"best {cmp.pieces}-piece": cmp.k_piece,
                    },
                    budget,
                ),
                k_piece=json.loads(cmp.k_piece.to_json()),
            )
        )
    measured = measured_schedules(nqm, eta, budgets[0], [budgets[0], 3 * budgets[0]])
    out = ensure_writable_dir(args.out)
    with atomic_write(out / "schedule_eval.json") as fh:
        json.dump(
            dict(
                nqm=dict(spectrum=args.spectrum, d=args.d, nbins=args.nbins),
                eta=eta,
                results=results,
                measured=measured,
            ),
            fh,
            indent=1,
        )
    print(
        f"NQM {args.spectrum}, d={args.d} in {args.nbins or 100} bins, eta={eta}; dynamic schedule: interval "
        "= budget/50, momentum = 1 (the NQM's Bopt(D) is exact: nothing to smooth)"
    )
    for r in results:
        print(f"\nBudget D = {r['budget']:.3g} examples (final expected loss, lower is better):")
        print(format_table(r["rows"], ["name", "loss", "batch"], ["schedule", "loss", "batch sizes"]))
        print(f"dynamic closes {r['gap_closed']:.0%} of the best-fixed to best-8-piece gap")
        print(
            format_table(
                r["ablations"],
                ["name", "baseline", "variant", "gain"],
                ["ablation", "baseline", "variant", "gain (baseline - variant)"],
            )
        )
    print(
        f"\nSchedules from a measured sweep (2x grid 1..4096, every run cut at {budgets[0]:g}): inside the "
        "swept range and 3x past it (gain = best fixed loss - schedule loss; > 0 beats the best fixed batch)"
    )
    print(
        format_table(
            [dict(r, where="inside" if r["inside"] else "3x outside") for r in measured],
            ["budget", "where", "schedule", "loss", "gain", "batches"],
            ["budget", "where", "schedule", "loss", "gain", "batches"],
        )
    )
    print(f"\nwrote {out}/schedule_eval.json")
    return 0
