"""``dbs train``: the PyTorch trainer (needs the ``torch`` extra)."""
from __future__ import annotations

__all__ = ["HELP", "add_arguments", "run"]

HELP = "train a small transformer (WSD in data units, batch schedules, exact resume); needs torch"


def add_arguments(p):
    from .config import build_parser  # torch-free, so the options parse even without torch

    build_parser(p)


def run(args):
    try:
        import torch  # noqa: F401  (only checks that it is installed)
    except ImportError:
        raise ValueError('dbs train needs PyTorch: pip install "dbs-theory[torch]"') from None
    from .config import config_from_args
    from .train import NonFiniteLoss, train

    try:
        res = train(config_from_args(args), resume=args.resume, progress=not args.quiet)
    except NonFiniteLoss as exc:
        print(f"dbs train: stopped: {exc}")
        return 3
    print(f"trained {res['steps']} steps, {res['tokens']:.0f} tokens, final loss {res['final_loss']:.4f}; "
          f"log {res['log']} ({res['corpus']})")
    return 0
