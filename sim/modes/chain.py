"""``dbs simulate chain``: the main path (dbs fit + dbs schedule) scored on NQM sweeps."""

from __future__ import annotations

from .common import parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate chain``: the main path end to end on 3 spectra x 2 grids x 3 log kinds x ``--budgets``
    (Monte Carlo logs only at budgets <= 3e5 examples), see :mod:`sim.chain_eval`; ``--spectrum``,
    ``--alpha`` and ``--nbins`` do not apply (the spectra are fixed, unbinned, ``--d`` modes)."""
    import json
    import time

    from dbs_theory.io import atomic_write, ensure_writable_dir, json_default

    from ..chain_eval import BARS, SPECTRA, losing_sweeps, markdown_table, study

    if args.eta == "tuned":
        raise ValueError("'chain' needs a fixed learning rate (--eta NUMBER)")
    eta, budgets = float(args.eta), parse_budgets(args.budgets)
    for make in SPECTRA.values():
        make(args.d).check_stable(eta)  # refuses --d < 1 and an unstable --eta before hours of work
    out = ensure_writable_dir(args.out)
    meta = dict(d=args.d, eta=eta, budgets=budgets, seed=args.seed)
    done, before = _chain_partial(out / "chain_rows.jsonl", meta) if args.resume else ([], 0.0)
    start = time.perf_counter()
    with open(out / "chain_rows.jsonl", "w", encoding="utf-8") as partial:  # partial results, for --resume
        print(json.dumps(dict(meta=meta, seconds=before)), file=partial, flush=True)
        rows, cases = study(
            d=args.d,
            eta=eta,
            budgets=budgets,
            seed=args.seed,
            progress=not args.quiet,
            done=done,
            on_row=lambda r: print(json.dumps(r, default=json_default), file=partial, flush=True),
        )
    seconds = before + time.perf_counter() - start
    with atomic_write(out / "chain.json") as fh:
        json.dump(
            dict(
                d=args.d, eta=eta, budgets=budgets, seed=args.seed, bars=BARS, seconds=seconds, cases=cases, rows=rows
            ),
            fh,
            indent=1,
            default=json_default,
        )
    table, losing = markdown_table(cases), losing_sweeps(rows)
    text = (
        f"NQM d={args.d}, eta={eta}; every run to the budget (examples), a row every S/2000 steps; "
        f"dbs fit + dbs schedule with default options; (a) the grid's best fixed batch, (b) the paper's "
        f"rule on the exact Bopt(D), (c) the best 8-piece schedule; {seconds / 60:.0f} min\n\n{table}\n"
        + (f"\nSweeps that lose to (a) or miss the exact bar:\n{losing}\n" if losing else "")
    )
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
    same = old is not None and rest(old) == rest(meta) and old.get("budgets") == meta["budgets"][: len(old["budgets"])]
    if not same:
        raise ValueError(
            f"--resume: {path} comes from a run with other options "
            f"({lines[0].get('meta') if lines else 'none'}, not {meta}); drop --resume or use its options"
        )
    return lines[1:], float(lines[0].get("seconds", 0.0))
