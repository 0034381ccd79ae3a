"""What the modes of ``dbs simulate`` share: the NQM the flags describe, default targets and batches, the
memory check, budgets, JSON-safe values."""

from __future__ import annotations

__all__ = [
    "build_nqm",
    "default_targets",
    "default_batches",
    "parse_budgets",
    "json_safe",
    "check_memory",
    "ETA",
    "BUDGETS",
    "D_SWEEP",
    "D_STUDY",
]

#: ``dbs simulate``'s defaults (the demo runs the same NQM): the learning rate, the data budgets (examples),
#: as ``--budgets`` text), the modes of the sweep and schedule NQM, and of the modes that run many evaluations
ETA, BUDGETS, D_SWEEP, D_STUDY = 0.5, "1e5,1e6", 10_000, 1000


def default_targets(nqm, eta, n=8):
    """Targets whose ``Bmin`` runs log-evenly from 1 to 64 examples."""
    import numpy as np

    from dbs_theory.theory import numeric

    b1 = float(numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, nqm.L_irr + 1.0, nqm.L_irr))
    if not b1 > 0:
        raise ValueError(
            "the noise spectrum is all zero: no batch size limits the loss (Bmin = 0 for every "
            "target), so there are no default targets; give targets explicitly"
        )
    # Bmin = b1 / (L* - L_irr), so L* = L_irr + b1 / Bmin.
    return list(nqm.L_irr + b1 / np.geomspace(1, 64, n))


def default_batches(nqm, eta, targets, per_target=10):
    """Every target's phases sampled: ``Bmin (1 + x)``, ``x`` log-spaced over 1e-3..300, pooled.

    A plain log grid puts one or two batches between ``Bmin`` and ``Bopt``,
    too few for the linear and quadratic phases to be fitted.
    """
    import numpy as np

    from dbs_theory.theory import numeric

    grid = []
    for t in targets:
        if t > nqm.L_irr:
            b0 = float(numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, t, nqm.L_irr))
            grid.extend(b0 * (1 + np.geomspace(1e-3, 300, per_target)))
    return sorted(set(np.round(grid, 6)))


#: Peak bytes per stored mode of a default sweep (measured: 1.5 GB at d = 1e6 without binning).
BYTES_PER_MODE = 1600


def _available_memory():
    """Bytes of memory available now (Linux ``MemAvailable``), or ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(modes, available=None):
    """Refuse, before allocating, a sweep whose per-mode arrays would not fit in memory."""
    need = BYTES_PER_MODE * int(modes)
    available = _available_memory() if available is None else available
    if available is not None and need > 0.8 * available:
        raise ValueError(
            f"an NQM with {int(modes):,} stored modes needs about {need / 2**30:.1f} GiB but "
            f"{available / 2**30:.1f} GiB is available; bin the spectrum (--nbins 200) or lower --d"
        )


def build_nqm(args):
    from ..nqm import NQM

    if args.d < 1:
        raise ValueError(f"--d={args.d} must be a positive number of modes")
    if args.nbins is not None and args.nbins < 1:
        raise ValueError(f"--nbins={args.nbins} must be >= 1")
    if getattr(args, "seed", 0) < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0 (numpy seeds are non-negative)")
    check_memory(min(args.d, args.nbins or args.d))

    if args.spectrum == "zhang2019":
        return NQM.zhang2019(args.d, args.nbins)
    return NQM.power_law(args.d, args.alpha, nbins=args.nbins)


def parse_budgets(text):
    """``--budgets`` as a list of positive data amounts (examples)."""
    try:
        budgets = [float(b) for b in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--budgets must be comma-separated numbers; got {text!r}") from None
    if any(not (b > 0 and b < float("inf")) for b in budgets):
        raise ValueError(f"--budgets must be positive and finite; got {text!r}")
    return budgets


def json_safe(v):
    """``v`` with tuples as lists, numpy scalars as numbers and NaN or infinite floats as None (plain JSON)."""
    import math

    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v
