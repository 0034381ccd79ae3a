"""What ``dbs schedule --from`` reads out of a fit.json (``dbs fit``) or frontier.json (``dbs simulate``): the
``(D, Bopt)`` points, the sweep's envelope with its per-batch losses, and the measured band of ``Bopt`` out to a
horizon, for exports.json. Each file is read through its schema (:mod:`dbs_theory.schemas`): one line names
what is wrong."""

from __future__ import annotations

__all__ = ["load_points", "load_envelope", "sweep_envelope", "bopt_band_record"]


def load_points(path, band=False):
    """``(D, Bopt, lr, laws)`` from a dbs fit ``fit.json`` or dbs simulate ``frontier.json``; ``laws`` are
    ``(target, {law: params})`` pairs (none from a simulation).

    From a fit, the envelope's ``(data, Bopt)`` points are used when it identified
    at least two targets, else the three-phase fit's ``(Emin, Bopt)``. With
    ``band=True`` two more lists follow: the envelope points' interval ends
    (``None`` when the source has none).
    """
    from .schemas import FitFile, read_source

    src = read_source(path)
    rows, lr = (src.rows, src.lr) if isinstance(src, FitFile) else (src.targets, src.lr)
    laws = src.target_laws() if isinstance(src, FitFile) else []
    from .fit_table import SOURCES, chosen, estimate

    est = chosen(rows, "bopt")  # the law-free envelope (dbs fit writes it) when identified at >= 2 targets
    if sum(e.identified for e in est) < 2:  # no estimator identifies two: whatever any identifies (a fixed batch)
        est = [next((e for e in (estimate(r, c) for c, _ in SOURCES["bopt"]) if e.identified), None) for r in rows]
        est = [e for e in est if e is not None]
        return ([e.data for e in est], [e.value for e in est], lr, laws) + ((None, None) if band else ())
    if est and est[0].column == SOURCES["bopt"][0][0]:
        est = [e for e in est if e.identified]
        out = [e.data for e in est], [e.value for e in est], lr, laws
        have = all(e.has_interval for e in est)
        return out + ((([e.lo for e in est], [e.hi for e in est]) if have else (None, None)) if band else ())
    D, B = [e.data for e in est], [e.value for e in est]
    return (D, B, lr, laws) + ((None, None) if band else ())


def load_envelope(path):
    """``(envelope, lr, laws)`` from a ``dbs fit`` ``fit.json`` whose envelope identifies ``Bopt`` at >= 2 data
    amounts and holds per-batch losses, else ``None`` (an older fit.json, a frontier.json, or too few points:
    the per-target path)."""
    from .fit_table import BoptTable

    try:
        fit = BoptTable.load(path)
    except (OSError, ValueError):
        return None  # load_points names what is wrong with the file
    env = fit.envelope
    if env is None or sum(env.identified) < 2 or not env.by_batch:
        return None
    return env.as_dict(), fit.lr, fit.target_laws()


def sweep_envelope(path):
    """``(envelope, lr, laws)`` of a ``dbs fit`` ``fit.json`` whatever it identifies; one-line refusals."""
    from .fit_table import BoptTable

    fit = BoptTable.load(path)
    if fit.envelope is None or not fit.envelope.by_batch:
        raise ValueError(f"{path}: no sweep envelope with per-batch losses (a fit.json from dbs fit on a sweep)")
    return fit.envelope.as_dict(), fit.lr, fit.target_laws()


def bopt_band_record(curve, points, horizon, measured_to=None):
    """The measured Bopt interval from the first point to the horizon (see
    :func:`dbs_theory.bopt_curve.bopt_band`), or ``None`` without measured intervals. ``measured_to``: the
    data the sweep covers (the schedule's own limit, past which it needs ``--extrapolate``); default the
    last point's."""
    if curve is None or points is None:
        return None
    import numpy as np

    from .bopt_curve import bopt_band

    D, B, lo, hi = points
    edge = float(max(D)) if measured_to is None else float(measured_to)
    at = np.geomspace(min(D), max(horizon, edge, max(D)), 40)
    blo, bhi = bopt_band(D, B, lo, hi, at)
    return dict(
        D=at.tolist(), lo=blo.tolist(), hi=bhi.tolist(), measured_to=edge, beyond=bool(horizon > edge * (1 + 1e-9))
    )
