"""What the log readers share: finding files, naming runs, one run's columns, the tolerance on batch and
tokens."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["LOSS_TAGS", "TOKEN_TAGS", "REL_TOL", "is_number", "walk", "log_part", "run_name", "per_step", "one_batch"]

LOSS_TAGS = ("train/loss", "loss", "train_loss")
TOKEN_TAGS = ("train/tokens", "tokens", "train/num_input_tokens_seen", "num_input_tokens_seen")
REL_TOL = 0.05  # relative: one batch size within it; tokens against step x batch within it


def is_number(v) -> bool:
    """A real number as JSON gives it: an int or a float, never a bool or a string."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def walk(folder: Path, match, quiet=False) -> list:
    """Files under ``folder`` whose name ``match`` accepts, sorted, found through symbolic links.

    A folder reached a second time (a link back to a folder above it, or a second link to one folder) is
    read once; a warning names it unless ``quiet``.
    """
    folder = Path(folder)
    seen, out = {os.path.realpath(folder): folder}, []
    for top, dirs, files in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(dirs, key=lambda d: (os.path.islink(os.path.join(top, d)), d)):
            path = Path(top) / d
            real = os.path.realpath(path)
            if real in seen:
                if not quiet:
                    warnings.warn(f"{path} is a link to {seen[real]}, already read: read once", stacklevel=4)
                continue
            seen[real] = path
            kept.append(d)
        dirs[:] = sorted(kept)
        out += [Path(top) / f for f in files if match(f) and os.path.isfile(os.path.join(top, f))]
    return sorted(out)


def log_part(name, batch_size, step, tokens, loss, lr=None, where=None):
    """One run in the ``(names, columns, optional, where)`` form :func:`dbs_theory.logs.runs.load_runs` groups.

    ``batch_size`` is one number or one per row; ``where(i)`` names row ``i``'s origin (file, line or entry).
    """
    n = len(step)
    cols = dict(
        batch_size=np.broadcast_to(np.asarray(batch_size, float), (n,)).copy(),
        step=np.asarray(step, float),
        tokens=np.asarray(tokens, float),
        loss=np.asarray(loss, float),
    )
    extra = {} if lr is None else dict(lr=np.asarray(lr, float))
    return np.array([name] * n, dtype=object), cols, extra, where or (lambda i: f"run {name!r}, row {i + 1}")


def run_name(folder: Path, run_dir: Path) -> str:
    """A run's name: its folder relative to the folder given (the folder's own name if it is the run)."""
    if run_dir == folder:
        return folder.resolve().name if folder.is_dir() else str(run_dir)
    try:
        return run_dir.relative_to(folder).as_posix()
    except ValueError:
        return str(run_dir)


def per_step(step, tokens):
    """Tokens per step over each logged interval (the first from step 0, token 0); NaN where steps repeat."""
    ds, dt = np.diff(np.r_[0.0, step]), np.diff(np.r_[0.0, tokens])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ds > 0, dt / np.where(ds > 0, ds, 1), np.nan)
    ok = np.flatnonzero(np.isfinite(per))
    if ok.size and ok.size < per.size:  # repeated steps take their neighbour's rate
        per = per[ok[np.clip(np.searchsorted(ok, np.arange(per.size)), 0, ok.size - 1)]]
    return per


def one_batch(per, tokens, step):
    """One batch (tokens per step over the run) when the rate stays within REL_TOL, else the rate per row."""
    if per.size and np.all(per > 0) and per.max() <= per.min() * (1 + REL_TOL) and step[-1] > 0:
        return float(tokens[-1] / step[-1])
    return per
