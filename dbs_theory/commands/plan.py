"""``dbs plan LOG... --budget D``: the next runs that pin ``Bopt`` at a data budget."""

from __future__ import annotations

from .log_options import LOG_FLAGS, add_foreign_log_arguments, foreign_log_options

import json
import math

__all__ = ["HELP", "add_arguments", "run", "describe", "FLAGS"]

#: the arguments of the library calls behind this command -> the flags that set them
FLAGS = LOG_FLAGS

HELP = "propose the next batch sizes and run lengths that pin Bopt at a data budget"
EXAMPLES = """examples:
  dbs plan results/simulate/runs.csv --budget 1e5
  dbs plan logs/ --budget 6e6 --n 4 --tol 0.05 --granularity 512"""


def add_arguments(p):
    p.add_argument(
        "logs",
        nargs="+",
        metavar="LOG",
        help="CSV/JSONL loss logs or directories of them, "
        "Hugging Face Trainer output folders (trainer_state.json) or a W&B panel CSV export",
    )
    add_foreign_log_arguments(p)
    p.add_argument(
        "--budget",
        type=float,
        required=True,
        help="data the real run will consume (the logs' unit: tokens or examples)",
    )
    p.add_argument("--n", type=int, default=3, help="most runs to propose (default 3)")
    p.add_argument(
        "--tol",
        type=float,
        default=0.10,
        help="relative half-width of the 90%% interval that counts as pinned (default 0.10)",
    )
    p.add_argument(
        "--granularity",
        type=float,
        default=1.0,
        help="round proposed batches to a multiple of this (micro-batch x seq-len x world size; default 1)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", default="results/plan", help="output directory (default results/plan)")


def _check(args):
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise ValueError(f"--budget={args.budget:g} must be a positive amount of data")
    if args.n < 1:
        raise ValueError(f"--n={args.n} must be >= 1")
    if not (0 < args.tol < 1):
        raise ValueError(f"--tol={args.tol:g} must lie in (0, 1)")
    if not (math.isfinite(args.granularity) and args.granularity >= 1 and float(args.granularity).is_integer()):
        raise ValueError(
            f"--granularity={args.granularity:g} must be a whole number >= 1 (tokens or examples "
            "per step come in whole units)"
        )
    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap={args.bootstrap} must be >= 1 (the plan needs an interval)")
    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0 (numpy seeds are non-negative)")


def run(args):
    from dataclasses import asdict

    from ..io import atomic_write, check_writable, ensure_writable_dir, json_default
    from ..measure.curves import DYNAMIC, fixed_batch_runs
    from ..measure.planner import plan_sweep
    from ..logs.runs import load_runs
    from ..table import format_table

    _check(args)
    check_writable(args.out)
    runs, dynamic = fixed_batch_runs(load_runs(*args.logs, **foreign_log_options(args)))
    for r in dynamic:
        print(f"run {r.name!r}: {DYNAMIC}")
    if len({r.batch_size for r in runs}) < 3:
        raise ValueError(f"need runs at >= 3 batch sizes to plan from; got {len({r.batch_size for r in runs})}")
    plan = plan_sweep(
        runs,
        args.budget,
        n=args.n,
        tol=args.tol,
        bootstrap=args.bootstrap,
        seed=args.seed,
        granularity=args.granularity,
    )
    out = ensure_writable_dir(args.out)
    record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(plan).items()}
    with atomic_write(out / "plan.json") as fh:  # NaN/inf are not JSON: a missing value is null
        json.dump(record, fh, indent=1, default=json_default)
    print(describe(plan, args.tol))
    if plan.proposals:
        rows = [
            dict(batch=p.batch, data=p.data, action=f"extend {p.extends}" if p.extends else "new run", why=p.why)
            for p in plan.proposals
        ]
        print("\nNext runs (each to the data shown; only runs that reach the budget compete there):")
        print(format_table(rows, ["batch", "data", "action", "why"], ["batch", "run to", "action", "why"]))
    print(f"\nwrote {out}/plan.json")
    return 0


def describe(plan, tol):
    """One or two lines: Bopt at the budget with its interval, or why it is not identified, and the verdict."""
    head = f"Bopt at {plan.budget:.4g}: "
    if plan.identified:
        head += (
            f"{plan.bopt:.4g} [90%: {plan.lo:.4g}, {plan.hi:.4g}] "
            f"(+/-{100 * plan.precision:.0f}%, asked {100 * tol:.0f}%)"
        )
    else:
        head += f"not identified: {plan.reason}"
    tail = (
        "pinned: no more runs needed"
        if plan.done
        else ("not pinned yet" if plan.proposals else "not pinned, and no run to propose")
    )
    return f"{head}\n{tail}"
