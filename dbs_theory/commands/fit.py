"""``dbs fit LOG...``: E(S) fits, Bmin/Bopt per target and crossovers from loss logs."""

from __future__ import annotations

from ..measure.fit_table import cell
from .log_options import LOG_FLAGS, add_foreign_log_arguments, foreign_log_options

__all__ = ["HELP", "add_arguments", "run", "print_table", "cell", "FLAGS"]

#: the arguments of the library calls behind this command -> the flags that set them
FLAGS = {**LOG_FLAGS, "law": "--law"}

HELP = "fit E(S) laws to loss logs: Bmin/Bopt per target, law comparison, crossovers"
EXAMPLES = """examples:
  dbs simulate --write-log --out results/simulate
  dbs fit results/simulate/runs.csv --out results/fit
  dbs fit logs/ --targets 3.4,3.2,3.0 --law three_phase --bootstrap 200
  dbs fit --points steps_to_target.csv --law hyperbolic   # columns batch_size,target,steps
  dbs fit --grid step_law.csv --out results/grid           # columns batch_size,tokens,loss[,lr][,model]

log format (CSV or JSON lines, one row per logged optimizer step):
  run         the run's name (every row has one; names differing only by spaces are refused)
  batch_size  global batch, tokens or examples
  step        optimizer steps done
  tokens      data consumed so far, in batch_size's unit (= step x batch_size, give or take one batch)
  loss        training loss (an evaluation-only log may give val_loss alone)
  optional: lr, val_loss, seq_len, world_size, b_simple, gns_g2, gns_trace, wall_time
  a column or JSON key given twice is refused; unknown columns are named and ignored.
  e.g.  run,batch_size,step,tokens,loss
        b256,256,100,25600,3.41"""


def _floats(text):
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--targets must be comma-separated numbers; got {text!r}") from None
    if not vals:
        raise ValueError("--targets is empty: give target losses 'a,b,c' or leave the option out")
    return vals


def add_arguments(p):
    p.add_argument(
        "logs",
        nargs="*",
        metavar="LOG",
        help="CSV/JSONL loss logs or directories of them, "
        "Hugging Face Trainer output folders (trainer_state.json) or a W&B panel CSV export",
    )
    p.add_argument(
        "--points",
        metavar="FILE",
        default=None,
        help="instead of LOGs: a CSV table of steps to "
        "target with columns batch_size, target, steps (one row per batch size and target, as papers "
        "publish them); E = batch_size x steps. No envelope, floors or crossovers (they need curves)",
    )
    p.add_argument(
        "--grid",
        metavar="FILE",
        default=None,
        help="instead of LOGs: a CSV table of final losses, "
        "one row per run, with columns batch_size, tokens, loss and optional lr, model (as sweep papers "
        "publish them); Bopt(D) at each data amount >= 3 batches reached, a power law Bopt = k D^alpha, "
        "one fit per model, each cell at its best learning rate",
    )
    add_foreign_log_arguments(p)
    p.add_argument(
        "--targets", type=str, default=None, help="comma-separated target losses (default: 6 chosen from the runs)"
    )
    p.add_argument(
        "--law",
        default="three_phase",
        help="three_phase (default) or three_phase_free; "
        "with --points also hyperbolic (McCandlish: Smin, Emin and B_crit = Emin/Smin)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200; 0 = off)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--smoothing",
        choices=("centered", "running_min"),
        default="centered",
        help="how a noisy loss is made monotone before reading when it reaches a target: centered "
        "(smoothed in data over --window, then a running minimum) or running_min (raw rows)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=0.1,
        help="smoothing window in data, the same however the log is spaced: the loss at data D is "
        "a straight line in log D fitted to the rows with data in [D/(1+w), D(1+w)] (default "
        "0.1: 10%% either side); where fewer than 5 rows lie inside, the raw row is used",
    )
    p.add_argument("--use", choices=("loss", "val_loss"), default="loss", help="which loss column")
    p.add_argument("--out", default="results/fit", help="output directory (default results/fit)")


def run(args):
    from ..measure.tabulate import bopt_table
    from ..errors import UserError
    from ..theory.laws import LAWS
    from ..io import check_writable, ensure_writable_dir
    from ..logs.runs import load_runs
    from ..table import format_table

    if args.law not in LAWS:
        raise UserError(f"unknown law --law {args.law!r}; choose one of {', '.join(LAWS)}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap={args.bootstrap} must be >= 0")
    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0 (numpy seeds are non-negative)")
    if not str(args.out).strip():
        raise ValueError("--out '' names no folder; give one (default results/fit)")
    check_writable(args.out)
    if args.grid is not None:
        return _run_grid(args)
    if args.points is not None or not args.logs:
        return _run_points(args)
    runs = load_runs(*args.logs, **foreign_log_options(args))
    if len(runs) < 2:
        raise ValueError(f"a single run ({runs[0].name!r}) cannot give E(S): need runs at >= 3 batch sizes")
    targets = _floats(args.targets) if args.targets is not None else None
    if not 0 < args.window <= 1:
        raise ValueError(f"--window={args.window:g} must be a fraction of the data in (0, 1]")
    table = bopt_table(
        runs,
        targets,
        law=args.law,
        bootstrap=args.bootstrap,
        seed=args.seed,
        smoothing=args.smoothing,
        window=args.window,
        use=args.use,
    )
    out = ensure_writable_dir(args.out)
    table.write(out)
    print_table(table, format_table)
    print(f"\nwrote {out}/bopt_table.csv, fit.json, es_points.csv")
    return 0


def print_table(table, format_table=None):
    """Print a BoptTable (or the fit.json record) for people: :func:`dbs_theory.measure.fit_table.fit_summary`."""
    print(table.summary())


POINT_COLUMNS = ("batch_size", "target", "steps")


def read_points(path):
    """An :class:`~dbs_theory.measure.curves.ESPoints` from a CSV with columns ``batch_size, target, steps``.

    Read strictly: UTF-8 (a BOM is fine), a header naming the three columns
    once each (others are ignored, with a warning naming them), every cell a positive finite number; anything else
    is one ``ValueError`` naming the file, line and column. ``E = batch_size x
    steps`` (the batch's unit); rows of one batch and target are repeats.
    """
    import csv

    import numpy as np

    import warnings
    from pathlib import Path

    from ..measure.curves import ESPoints
    from ..logs.log_files import regular_file

    if not Path(path).exists():
        raise OSError(f"cannot read --points file {str(path)!r}: no such file")
    regular_file(path)  # a FIFO is never opened: reading it could block forever
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise ValueError(f"{path}: column {twice[0]!r} appears twice in the header (which one is meant?)")
            unknown = [h for h in header if h not in POINT_COLUMNS]
            if unknown:
                warnings.warn(
                    f"{path}: column(s) {', '.join(map(repr, unknown))} are not in the points format "
                    f"({', '.join(POINT_COLUMNS)}) and are ignored",
                    stacklevel=2,
                )
            missing = [c for c in POINT_COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f"{path}: missing column {missing[0]!r} (needs {', '.join(POINT_COLUMNS)}; "
                    f"the header is {','.join(header) or 'empty'})"
                )
            rows = [[_cell(path, reader.line_num, c, r, None in r) for c in POINT_COLUMNS] for r in reader]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise OSError(f"cannot read --points file {str(path)!r}: {exc.strerror or exc}") from None
    if not rows:
        raise ValueError(f"{path}: no rows under the header")
    B, T, S = (np.array(col, float) for col in zip(*rows))
    _warn_repeats(path, B, T, S)
    return ESPoints(np.array([f"B={b:g}" for b in B]), B, T, S, B * S, np.zeros(B.size, bool), [])


def _warn_repeats(path, B, T, S):
    """Say when a batch and target appear on more than one row: each is kept as a repeat (a seed), and a row
    repeated exactly (same steps too) is named, since a copied row counts twice in the fit."""
    import warnings
    from collections import Counter

    cells = Counter(zip(B.tolist(), T.tolist()))
    same = Counter(zip(B.tolist(), T.tolist(), S.tolist()))
    repeated = sorted(k for k, n in cells.items() if n > 1)
    if not repeated:
        return
    copies = sorted(k for k, n in same.items() if n > 1)
    b, t = repeated[0]
    warnings.warn(
        f"{path}: {len(repeated)} (batch_size, target) pair(s) appear on more than one row (first: batch_size "
        f"{b:g}, target {t:g}); each row is kept as a repeat (a seed)"
        + (
            f", and {len(copies)} row(s) repeat another exactly (first: batch_size {copies[0][0]:g}, target "
            f"{copies[0][1]:g}, steps {copies[0][2]:g}): drop copies, or they count twice"
            if copies
            else ""
        ),
        stacklevel=3,
    )


def _cell(path, line, column, row, extra):
    """The number in ``row[column]`` (positive, finite) or a one-line error naming file, line and column."""
    import math

    if extra:
        raise ValueError(f"{path} line {line}: more fields than the header's")
    text = (row.get(column) or "").strip()
    if not text:
        raise ValueError(f"{path} line {line} column {column!r}: empty")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path} line {line} column {column!r}: {text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{path} line {line} column {column!r}: {text} must be positive and finite")
    return value


def _run_grid(args):
    """``dbs fit --grid FILE``: Bopt(D) and its power law per model from a table of final losses."""
    import csv
    import json
    import math

    from ..logs.grid_table import grid_fits
    from ..io import atomic_write, ensure_writable_dir, json_default
    from ..table import format_table

    if args.logs or args.points is not None:
        raise ValueError("give either LOG files, --points FILE or --grid FILE, not two of them")
    fits = grid_fits(args.grid, bootstrap=args.bootstrap, seed=args.seed)
    for f in fits:
        print(f"\nmodel {f.model}:" if f.model else "")
        lr = any(math.isfinite(p.best_lr) for p in f.points)
        print(
            format_table(
                [
                    dict(
                        tokens=f"{p.data:.4g}",
                        bopt=p.text(),
                        batches=p.batches,
                        best=f"{p.best_batch:g}",
                        loss=f"{p.best_loss:.4g}",
                        lr=f"{p.best_lr:.3g}",
                    )
                    for p in f.points
                ],
                ["tokens", "bopt", "batches", "best", "loss"] + (["lr"] if lr else []),
                ["tokens D", "Bopt(D) [95%]", "batches at D", "best grid batch", "its loss"]
                + (["its lr"] if lr else []),
            )
        )
        print(f.power_law_text())
        for n in f.notes:
            print(f"note: {n}")
    out = ensure_writable_dir(args.out)
    with atomic_write(out / "grid_fit.json") as fh:
        json.dump(
            dict(source=str(args.grid), fits=[f.record() for f in fits]),
            fh,
            indent=1,
            default=json_default,
            allow_nan=False,
        )
    with atomic_write(out / "grid_bopt.csv") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "tokens", "bopt", "bopt_lo", "bopt_hi", "status", "batches", "best_batch", "best_lr"])
        for f in fits:
            w.writerows(
                [f.model, p.data, p.bopt, p.lo, p.hi, p.status, p.batches, p.best_batch, p.best_lr] for p in f.points
            )
    print(f"\nwrote {out}/grid_fit.json, grid_bopt.csv")
    return 0


def _run_points(args):
    """``dbs fit --points FILE``: the table from a steps-to-target CSV, no curves."""
    import numpy as np

    from ..measure.tabulate import points_table
    from ..io import ensure_writable_dir
    from ..theory.laws import LAWS
    from ..table import format_table

    if args.logs:
        raise ValueError("give either LOG files or --points FILE, not both")
    if args.points is None:
        raise ValueError("give LOG files (loss logs) or --points FILE (a batch_size,target,steps table)")
    pts = read_points(args.points)
    if args.targets is not None:
        want = _floats(args.targets)
        absent = [t for t in want if not np.any(pts.target == t)]
        if absent:
            raise ValueError(f"--targets {', '.join(f'{t:g}' for t in absent)} not in {args.points}'s target column")
        keep = np.isin(pts.target, want)
        pts = type(pts)(*(a[keep] for a in (pts.run, pts.batch_size, pts.target, pts.S, pts.E, pts.few_rows)), [])
    table = points_table(pts, law=args.law, bootstrap=args.bootstrap, seed=args.seed)
    out = ensure_writable_dir(args.out)
    table.write(out)
    if not LAWS[args.law].defines_bopt:
        _print_hyperbolic(table, format_table)
    else:
        print_table(table, format_table)
    print("from a steps-to-target table: no envelope, no loss floors and no crossovers (they need loss curves)")
    print(f"\nwrote {out}/bopt_table.csv, fit.json, es_points.csv")
    return 0


def _print_hyperbolic(table, format_table):
    """Print a hyperbolic points table: Smin, Emin and McCandlish's B_crit = Emin/Smin per target."""
    print(f"{len(table.rows)} targets; law hyperbolic (McCandlish): B_crit = Emin/Smin")
    rows = [
        dict(
            r,
            smin=cell(r, "smin"),
            emin=cell(r, "emin"),
            b_crit=cell(r, "b_crit"),
            r2=f"{r['r2_log_hyperbolic']:.3f}" if "r2_log_hyperbolic" in r else "-",
        )
        for r in table.rows
    ]
    print(
        format_table(
            rows,
            ["target", "n_batches", "smin", "emin", "b_crit", "r2", "status"],
            ["L*", "batches", "Smin", "Emin", "B_crit", "R2log", "status"],
        )
    )
    print(f"\nB_crit grows as the target falls: {table.verdict['b_crit']}")
