"""``dbs validate NAME``: run one experiment (or ``all``) at a tier; needs the torch extra."""

from __future__ import annotations

__all__ = ["HELP", "add_arguments", "run", "FLAGS"]

#: the arguments of the library calls behind this command -> the flags that set them (the corpus reader's)
FLAGS = {"data": "--data", "vocab_size": "--vocab-size", "device": "--device"}

HELP = "check the paper's claims on real transformer runs (sweep, schedule, ablations, predict)"
EXAMPLES = """examples:
  dbs validate sweep --tier tiny            # seconds: what the tests run
  dbs validate all --tier cpu               # every experiment on 2 CPU cores
  dbs validate all --tier cpu --from-logs   # refit every finding from the committed logs, training nothing
  dbs validate sweep --tier gpu --launcher submitit --partition gpu --gpus-per-run 1 --time-limit 600
  dbs report results/validate/cpu"""


def add_arguments(p):
    from . import EXPERIMENTS
    from .tiers import TIERS

    p.add_argument("name", help=f"experiment: {', '.join(EXPERIMENTS)} or all")
    p.add_argument("--tier", default=None, help=f"{', '.join(TIERS)} (default cpu)")
    p.add_argument(
        "--tier-config",
        default=None,
        help="a TOML file defining the tier (Tier fields: preset, "
        "seq_len, lr, warmup, batches, budgets, seeds, eval sizes...; base = 'cpu' inherits the rest); "
        "replaces --tier (default: none)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="training text: a folder of text files or a uint16 .bin "
        "(default: the tier's, else the Python standard library's sources)",
    )
    p.add_argument("--vocab-size", type=int, default=None, help="vocabulary size of a .bin --data (default: none)")
    p.add_argument(
        "--data-glob",
        default=None,
        help="with a --data folder: only files matching this glob, e.g. "
        "'**/*.txt' (default: every text file; binary, linked-again and duplicate files are skipped)",
    )
    p.add_argument("--out", default=None, help="results root (default results/validate/<tier>)")
    p.add_argument("--jobs", type=int, default=None, help="runs trained at once (default: the tier's)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the tier's)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="accepted for clarity: finished runs are always reused, interrupted ones resumed",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--logs",
        default=None,
        help="log store: finished runs' compressed logs by config hash, reused "
        "instead of training and added to as runs finish; 'none' for no store (default: the "
        "repository's docs/data/runs for the cpu and gpu tiers in a checkout, else none)",
    )
    p.add_argument(
        "--from-logs",
        action="store_true",
        help="train nothing: refit every experiment from the log store, refusing (by name) a run it lacks",
    )
    _cluster_arguments(p)


def _cluster_arguments(p):
    """The flags of ``--launcher submitit`` (one Slurm job per run)."""
    g = p.add_argument_group("cluster (with --launcher submitit)")
    g.add_argument(
        "--launcher",
        default="local",
        choices=("local", "submitit"),
        help="where runs train: local processes, or one submitit job per run (Slurm when sbatch "
        "exists, else submitit's local executor) (default local)",
    )
    g.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    g.add_argument("--account", default=None, help="Slurm account (default: none)")
    g.add_argument("--gpus-per-run", type=int, default=0, help="GPUs per run (default 0)")
    g.add_argument("--cpus-per-run", type=int, default=2, help="CPU cores per run (default 2)")
    g.add_argument(
        "--time-limit",
        type=int,
        default=240,
        help="minutes per job; a job that reaches it is requeued and resumes from its checkpoint (default 240)",
    )
    g.add_argument(
        "--sbatch", default=None, help="extra sbatch flags, e.g. '--qos=high --constraint=a100' (default: none)"
    )


def run(args):
    try:
        import torch  # noqa: F401  (only checks that it is installed)
    except ImportError:
        raise ValueError('dbs validate needs PyTorch: pip install "dbs-theory[torch]"') from None
    from dbs_theory.io import check_writable, ensure_writable_dir

    from . import EXPERIMENTS, get
    from ..config import check_device_name

    tier = _tier(args)
    if args.device:
        from ..train import resolve_device

        check_device_name(args.device)  # refused here, before any run folder exists
        resolve_device(args.device)
        tier = tier.with_(device=args.device)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs={args.jobs} must be >= 1")
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    mods = [get(n) for n in names]
    launcher = _launcher(args)  # every option checked before the results folder is made
    root = args.out or f"results/validate/{tier.name}"
    check_writable(root)
    ensure_writable_dir(root)
    tier = tier.with_(launcher=launcher, store=_store(args, tier))
    for name, mod in zip(names, mods):
        _run_one(name, mod, tier, root, args)
    return 0


def _store(args, tier):
    """The log store of --logs / --from-logs (checked before any run folder exists)."""
    from pathlib import Path

    from .log_store import LogStore, default_store

    if args.logs is not None and args.logs.strip().lower() == "none":
        store = None
    elif args.logs is not None:
        if not args.logs.strip() or (Path(args.logs).exists() and not Path(args.logs).is_dir()):
            raise ValueError(f"--logs {args.logs!r} must name a folder (or 'none')")
        store = LogStore(Path(args.logs))
    else:
        store = default_store(tier.name)
    if args.from_logs:
        if store is None:
            raise ValueError("--from-logs needs a log store: --logs DIR (a folder of stored runs)")
        if not Path(store.path).is_dir():
            raise ValueError(f"--from-logs: the log store {str(store.path)!r} does not exist")
        store = LogStore(store.path, from_logs=True)
    return store


def _launcher(args):
    from .launch import Launcher, parse_sbatch

    for k in ("gpus_per_run", "cpus_per_run", "time_limit"):
        if getattr(args, k) < (1 if k != "gpus_per_run" else 0):
            raise ValueError(f"--{k.replace('_', '-')}={getattr(args, k)} is out of range")
    cluster = [k for k in ("partition", "account", "sbatch") if getattr(args, k) is not None]
    if cluster and args.launcher != "submitit":
        raise ValueError(
            f"--{cluster[0]} applies to cluster jobs: add --launcher submitit (the local launcher would ignore it)"
        )
    return Launcher(
        args.launcher,
        partition=args.partition,
        account=args.account,
        gpus=args.gpus_per_run,
        cpus=args.cpus_per_run,
        time_min=args.time_limit,
        sbatch=parse_sbatch(args.sbatch),
    )


def _run_one(name, mod, tier, root, args):
    s = mod.run(tier, root, jobs=args.jobs, progress=not args.quiet)
    print(f"\n== {name} (tier {tier.name}, {s['wall_seconds'] / 60:.1f} min): {root}/{name}/summary.md")
    for c in s["claims"]:
        print(f"  [{c['verdict']}] {c['claim']}\n      {c['measured']}")


def _tier(args):
    """The tier from --tier or --tier-config, with --data/--vocab-size/--data-glob applied (checked here,
    before any run folder exists)."""
    from ..data import load_corpus
    from .tiers import get_tier, load_tier

    if args.tier_config and args.tier:
        raise ValueError(
            f"--tier {args.tier} and --tier-config {args.tier_config}: give one (a tier file inherits "
            "another tier with base = 'NAME')"
        )
    tier = load_tier(args.tier_config) if args.tier_config else get_tier(args.tier or "cpu")
    over = {k: getattr(args, k) for k in ("data", "vocab_size", "data_glob") if getattr(args, k) is not None}
    tier = tier.with_(**over) if over else tier
    if tier.data_glob and not tier.data:
        raise ValueError("--data-glob needs --data (a folder of text files)")
    if tier.data:
        load_corpus(tier.data, tier.vocab_size, tier.data_glob)  # a bad path or an empty folder: one line now
    return tier
