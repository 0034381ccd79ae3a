"""What ``dbs schedule --from`` reads out of a fit.json (``dbs fit``) or frontier.json (``dbs simulate``): the
``(D, Bopt)`` points, the sweep's envelope with its per-batch losses, and the measured band of ``Bopt`` out to a
horizon, for exports.json. Each file is read through its schema (:mod:`dbs_theory.logs.schemas`): one line names
what is wrong."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BoptPoints", "load_points", "load_envelope", "sweep_envelope", "bopt_band_record"]


class BoptPoints(NamedTuple):
    """``Bopt`` read off a fit.json or frontier.json: at data ``data`` (tokens or examples), the batch ``bopt``,
    with the interval ends ``lo``/``hi`` (``None`` when the source has none); the sweep's learning rate
    ``lr`` and ``laws``, ``(target, {law: params})`` pairs (none from a simulation)."""

    data: list
    bopt: list
    lr: float | None
    laws: list
    lo: list | None = None
    hi: list | None = None


def load_points(path) -> BoptPoints:
    """The :class:`BoptPoints` of a dbs fit ``fit.json`` or dbs simulate ``frontier.json``.

    From a fit, the envelope's ``(data, Bopt)`` points are used when it identified at least two targets (with
    their intervals when every one has both ends), else the three-phase fit's ``(Emin, Bopt)``; when no
    estimator identifies two, whatever any identifies (one point: a fixed batch).
    """
    from ..measure.fit_table import SOURCES, chosen, estimate
    from ..logs.schemas import FitFile, read_source

    src = read_source(path)
    rows, lr = (src.rows, src.lr) if isinstance(src, FitFile) else (src.targets, src.lr)
    laws = src.target_laws() if isinstance(src, FitFile) else []
    est = chosen(rows, "bopt")  # the law-free envelope (dbs fit writes it) when identified at >= 2 targets
    if sum(e.identified for e in est) < 2:
        est = [next((e for e in (estimate(r, c) for c, _ in SOURCES["bopt"]) if e.identified), None) for r in rows]
        est = [e for e in est if e is not None]
        return BoptPoints([e.data for e in est], [e.value for e in est], lr, laws)
    if est and est[0].column == SOURCES["bopt"][0][0]:
        est = [e for e in est if e.identified]
        D, B = [e.data for e in est], [e.value for e in est]
        if all(e.has_interval for e in est):
            return BoptPoints(D, B, lr, laws, [e.lo for e in est], [e.hi for e in est])
        return BoptPoints(D, B, lr, laws)
    return BoptPoints([e.data for e in est], [e.value for e in est], lr, laws)


def load_envelope(path):
    """``(envelope, lr, laws)`` from a ``dbs fit`` ``fit.json`` whose envelope identifies ``Bopt`` at >= 2 data
    amounts and holds per-batch losses, else ``None`` (an older fit.json, a frontier.json, or too few points:
    the per-target path)."""
    from ..measure.fit_table import BoptTable

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
    from ..measure.fit_table import BoptTable

    fit = BoptTable.load(path)
    if fit.envelope is None or not fit.envelope.by_batch:
        raise ValueError(f"{path}: no sweep envelope with per-batch losses (a fit.json from dbs fit on a sweep)")
    return fit.envelope.as_dict(), fit.lr, fit.target_laws()


def bopt_band_record(curve, points, horizon, measured_to=None):
    """The measured Bopt interval from the first point to the horizon (see
    :func:`dbs_theory.measure.bopt_curve.bopt_band`), or ``None`` without measured intervals. ``measured_to``: the
    data the sweep covers (the schedule's own limit, past which it needs ``--extrapolate``); default the
    last point's."""
    if curve is None or points is None:
        return None
    import numpy as np

    from ..measure.bopt_curve import bopt_band

    D, B, lo, hi = points
    edge = float(max(D)) if measured_to is None else float(measured_to)
    at = np.geomspace(min(D), max(horizon, edge, max(D)), 40)
    blo, bhi = bopt_band(D, B, lo, hi, at)
    return dict(
        D=at.tolist(), lo=blo.tolist(), hi=bhi.tolist(), measured_to=edge, beyond=bool(horizon > edge * (1 + 1e-9))
    )
