"""``dbs simulate schedule``: dynamic vs fixed batch schedules on the NQM, per budget."""

from __future__ import annotations

import argparse

from .common import build_nqm, parse_budgets

__all__ = ["schedule_study", "print_schedule_study", "run"]


def schedule_study(nqm, eta, budgets, out, *, describe=None, progress=True) -> dict:
    """(a)-(d) and the ablations per budget (examples), and schedules from a measured sweep, on ``nqm`` at the
    fixed learning rate ``eta``; writes ``out``/schedule_eval.json and returns its record. ``describe`` (a dict,
    e.g. spectrum, d, nbins) is saved as the record's ``nqm``."""
    import json

    from tqdm.auto import tqdm

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir

    from ..schedule_eval import measured_schedules

    nqm.check_stable(eta)
    check_writable(out)
    results = [_budget_record(nqm, eta, b) for b in tqdm(budgets, desc="budgets", disable=not progress)]
    measured = measured_schedules(nqm, eta, budgets[0], [budgets[0], 3 * budgets[0]])
    folder = ensure_writable_dir(out)
    record = dict(nqm=dict(describe or {}), eta=eta, results=results, measured=measured)
    with atomic_write(folder / "schedule_eval.json") as fh:
        json.dump(record, fh, indent=1)
    return record


def run(args):
    """``dbs simulate schedule``: :func:`schedule_study` on a binned NQM (100 bins unless ``--nbins``)."""
    if args.eta == "tuned":
        raise ValueError("'schedule' needs a fixed learning rate (--eta NUMBER)")
    eta = float(args.eta)
    # every evaluation runs hundreds of trajectories: bin the spectrum (100 bins unless --nbins says)
    nqm = build_nqm(argparse.Namespace(**{**vars(args), "nbins": args.nbins or 100}))
    budgets = parse_budgets(args.budgets)
    describe = dict(spectrum=args.spectrum, d=args.d, nbins=args.nbins)
    record = schedule_study(nqm, eta, budgets, args.out, describe=describe, progress=not args.quiet)
    print_schedule_study(record, args.out)
    return 0


def _budget_record(nqm, eta, budget) -> dict:
    """schedule_eval.json's record of one budget: (a)-(d), the ablations and the trajectories."""
    import json

    from ..schedule_eval import ablations, compare_schedules, trajectories

    cmp = compare_schedules(nqm, eta, budget)
    arms = {"best fixed": cmp.fixed_batch, "dynamic (paper)": cmp.dynamic, f"best {cmp.pieces}-piece": cmp.k_piece}
    return dict(
        budget=budget,
        rows=cmp.rows(),
        losses=cmp.losses(),
        gap_closed=cmp.gap_closed,
        curve=cmp.bopt_curve.to_dict(),
        ablations=ablations(nqm, eta, budget, curve=cmp.bopt_curve, fixed_batch=cmp.fixed_batch),
        dynamic=json.loads(cmp.dynamic.to_json()),
        trajectories=trajectories(nqm, eta, arms, budget),
        k_piece=json.loads(cmp.k_piece.to_json()),
    )


def print_schedule_study(record, out) -> None:
    """The per-budget tables and the measured-sweep table of :func:`schedule_study`'s record, and the file
    written into ``out``, for people."""
    from dbs_theory.table import format_table

    eta, results, measured, nqm = record["eta"], record["results"], record["measured"], record["nqm"]
    first_budget = results[0]["budget"]
    print(
        f"NQM {nqm.get('spectrum')}, d={nqm.get('d')} in {nqm.get('nbins') or 100} bins, eta={eta}; dynamic "
        "schedule: interval = budget/50, momentum = 1 (the NQM's Bopt(D) is exact: nothing to smooth)"
    )
    for r in results:
        print(f"\nBudget D = {r['budget']:.3g} examples (final expected loss, lower is better):")
        print(format_table(r["rows"], ["name", "loss", "batch"], ["schedule", "loss", "batch sizes"]))
        print(f"dynamic closes {r['gap_closed']:.0%} of the best-fixed to best-8-piece gap")
        heads = ["ablation", "baseline", "variant", "gain (baseline - variant)"]
        print(format_table(r["ablations"], ["name", "baseline", "variant", "gain"], heads))
    print(
        f"\nSchedules from a measured sweep (2x grid 1..4096, every run cut at {first_budget:g}): inside the "
        "swept range and 3x past it (gain = best fixed loss - schedule loss; > 0 beats the best fixed batch)"
    )
    cols = ["budget", "where", "schedule", "loss", "gain", "batches"]
    rows = [dict(r, where="inside" if r["inside"] else "3x outside") for r in measured]
    print(format_table(rows, cols, cols))
    print(f"\nwrote {out}/schedule_eval.json")
