"""``dbs simulate``: the default NQM sweep (frontier, Bmin/Bopt, crossovers)."""

from __future__ import annotations

import argparse

from .modes.common import BUDGETS, D_STUDY, D_SWEEP, ETA, build_nqm, check_memory, default_targets  # noqa: F401

__all__ = [
    "HELP",
    "add_arguments",
    "arguments",
    "run",
    "MODE_OPTIONS",
    "FLAGS",
    "default_targets",
    "build_nqm",
    "check_memory",
]

#: the arguments of the library calls behind this command -> the flags that set them
FLAGS = {"batches": "--batch-sizes", "targets": "--targets"}

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
    p.add_argument(
        "what",
        nargs="?",
        choices=("sweep", "schedule", "identify", "plan", "chain", "optimal", "rules"),
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
        "and read by dbs fit, scored against the optimum (8 spectra, constant and WSD)",
    )
    _nqm_options(p)
    _log_options(p)
    _mode_options(p)


def _nqm_options(p):
    """The NQM, its learning rate, the sweep's batches and targets, the output folder."""
    p.add_argument(
        "--budgets",
        default=BUDGETS,
        help="data budgets (examples) for 'schedule'; identify uses the first (default %(default)s)",
    )
    p.add_argument(
        "--spectrum",
        choices=("zhang2019", "power-law"),
        default="zhang2019",
        help="NQM spectrum (default: zhang2019, h_i = c_i = 1/i)",
    )
    p.add_argument(
        "--d",
        type=int,
        default=None,
        help="number of modes (default 10000; 1000 for identify, whose Monte Carlo runs cost d x steps)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=16,
        help="identify: Monte Carlo seeds per batch size (default 16: 16 one-seed sweeps and 4 four-seed sweeps)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=100, help="identify: bootstrap resamples per interval (default 100)"
    )
    p.add_argument("--alpha", type=float, default=1.5, help="power-law exponent of h_i ~ i^-alpha")
    p.add_argument("--nbins", type=int, default=None, help="bin the spectrum into this many bins")
    p.add_argument("--eta", default=str(ETA), help="fixed learning rate, or 'tuned' (default %(default)s)")
    p.add_argument(
        "--batch-sizes",
        type=_floats,
        default=None,
        help="batch sizes in examples: 'a,b,c' or 'lo:hi:n' log-spaced (default: for each "
        "target, Bmin x (1 + 10 log-spaced values from 1e-3 to 300))",
    )
    p.add_argument(
        "--targets",
        type=_floats,
        default=None,
        help="target losses 'a,b,c' (default: 8 targets with Bmin from 1 to 64)",
    )
    p.add_argument("--out", default="results/simulate", help="output directory")


def _log_options(p):
    """The trainer-like loss log of ``--write-log`` (the sweep mode)."""
    p.add_argument(
        "--write-log",
        action="store_true",
        help="also write runs.csv: a loss log per batch size in the interchange format (for dbs fit)",
    )
    p.add_argument(
        "--log-kind",
        choices=("exact", "mc"),
        default="exact",
        help="log the exact expected loss, or one Monte Carlo run per batch (costs d x steps)",
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=None,
        help="--write-log: a row every K steps, as trainers log (default: a run's steps // 400)",
    )
    p.add_argument(
        "--log-spacing",
        choices=("linear", "log"),
        default="linear",
        help="--write-log: rows every --log-every steps (linear, default) or at 400 log-spaced steps",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --log-kind mc")


def _mode_options(p):
    """Options of one mode or a few (``plan``, ``optimal``, ``chain``, ``rules``): checked by :data:`MODE_OPTIONS`."""
    p.add_argument(
        "--tol",
        type=float,
        default=0.10,
        help="plan: relative half-width of the 90%% interval that counts as pinned (default 0.10)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--lr-schedule",
        default="constant",
        help="optimal: constant, wsd (decay to 10%% over 20%% more data) or cosine (default constant)",
    )
    p.add_argument("--pieces", type=int, default=32, help="optimal: batch pieces of the schedule (default 32)")
    p.add_argument(
        "--measured",
        action="store_true",
        help="refused: the rules from measured inputs are scored by dbs simulate rules",
    )
    p.add_argument(
        "--study",
        action="store_true",
        help="optimal: the rules table over sim.rule_scores.SPECTRA (four "
        "spectra, d = 1000) x --budgets x the three LR schedules instead of one NQM (--spectrum, --d, "
        "--alpha, --lr-schedule unused); writes OUT/study.json (docs/optimal_schedules.md)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="chain, rules: reuse the finished cases of an "
        "interrupted run with the same options (OUT/chain_rows.jsonl; OUT/rows.jsonl, sweeps/, refs.json) "
        "instead of rerunning them",
    )


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


#: options that only some modes read -> those modes (an option another mode would ignore is refused)
MODE_OPTIONS = {
    "replicas": ("identify",),
    "bootstrap": ("identify",),
    "tol": ("plan",),
    "resume": ("chain", "rules"),
    "lr_schedule": ("optimal",),
    "pieces": ("optimal",),
    "measured": ("optimal",),
    "study": ("optimal",),
    "write_log": ("sweep",),
    "log_every": ("sweep",),
    "log_spacing": ("sweep",),
    "batch_sizes": ("sweep",),
    "targets": ("sweep",),
    "log_kind": ("sweep", "plan"),
    "budgets": ("schedule", "identify", "plan", "chain", "optimal", "rules"),
}


def _check_mode_options(args):
    """Refuse, in one line, an option set away from its default in a mode that would ignore it."""
    defaults = vars(arguments())
    for k, modes in MODE_OPTIONS.items():
        if args.what not in modes and getattr(args, k) != defaults[k]:
            flag = "--" + k.replace("_", "-")
            raise ValueError(
                f"{flag} applies to dbs simulate {' / '.join(modes)}, not to {args.what!r} (it would be ignored)"
            )
    if args.what == "sweep" and not args.write_log:
        for k in ("log_every", "log_spacing", "log_kind", "seed"):
            if getattr(args, k) != defaults[k]:
                raise ValueError(
                    f"--{k.replace('_', '-')} shapes the log --write-log writes: add --write-log "
                    "(without it no log is written)"
                )


def run(args):
    """Run the mode ``args.what`` names; ``args`` is not changed (an unset ``--d`` means 1000 modes for the
    modes that run many evaluations, 10000 for the sweep)."""
    _check_mode_options(args)
    if args.log_every is not None and (args.log_every < 1 or args.log_spacing != "linear"):
        raise ValueError(f"--log-every={args.log_every} must be a positive number of steps, with --log-spacing linear")
    d = args.d if args.d is not None else (D_SWEEP if args.what in ("sweep", "schedule") else D_STUDY)
    import importlib

    mode = importlib.import_module(f".modes.{args.what}", __package__)
    return mode.run(argparse.Namespace(**{**vars(args), "d": d}))
