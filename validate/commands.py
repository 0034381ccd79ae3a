"""``dbs train``: the PyTorch trainer (needs the ``torch`` extra)."""

from __future__ import annotations

__all__ = ["HELP", "add_arguments", "run", "FLAGS"]

from .config import TrainConfig, flag_of

#: the arguments of the library calls behind this command -> the flags that set them: each TrainConfig
#: field has its flag (``seq_len`` -> ``--seq-len``), and ``train()``'s ``resume`` and ``overwrite`` theirs
FLAGS = {
    **{f: flag_of(f) for f in TrainConfig.__dataclass_fields__},
    "resume": "--resume",
    "overwrite": "--overwrite",
    "bmin": "--rule-fit",
}

HELP = "train a small transformer (WSD in data units, batch schedules, exact resume); needs torch"
EXAMPLES = """examples:
  dbs train --preset tiny --tokens 200000
  dbs train --preset cpu --tokens 5e6 --batch-schedule results/schedule/schedule.json --out results/dyn
  dbs train --preset cpu --tokens 5e6 --out results/dyn --resume"""


def add_arguments(p):
    from .config import build_parser  # torch-free, so the options parse even without torch

    build_parser(p)


def run(args):
    """Exit 0 when trained (or already finished), 3 when the loss diverged; errors raise (exit 2)."""
    import sys

    try:
        import torch  # noqa: F401  (only checks that it is installed)
    except ImportError:
        raise ValueError('dbs train needs PyTorch: pip install "dbs-theory[torch]"') from None
    from .config import config_from_args
    from .train import NonFiniteLoss, summary_line, train

    if args.resume and args.overwrite:
        raise ValueError(
            "--resume and --overwrite contradict each other: --resume continues the run in --out, "
            "--overwrite starts it again; give one"
        )

    try:
        res = train(config_from_args(args), resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except NonFiniteLoss as exc:
        print(f"dbs train: stopped: {exc}", file=sys.stderr)
        return 3
    print(summary_line(res))
    return 0
