"""Per-target ``Bmin``/``Bopt`` from a batch-size sweep's loss logs."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..theory.laws import law_named
from .estimators import envelope_bopt, floor_bmin
from .fit import fit_es
from .verdicts import R2_MIN
from .fit_table import (
    COLUMNS,
    SOURCES,
    BoptTable,
    Estimate,
    chosen,
    chosen_column,
    estimate,
    monotonicity,
    put_estimate,
    withdraw,
)
from .curves import DYNAMIC, WINDOW, choose_targets, crossovers, measured_best, es_points, fixed_batch_runs

__all__ = [
    "sweep_lr",
    "LR_TOL",
    "bopt_table",
    "points_table",
    "BoptTable",
    "monotonicity",
    "R2_MIN",
    "Estimate",
    "SOURCES",
    "estimate",
    "chosen_column",
    "chosen",
    "COLUMNS",
]


def bopt_table(
    runs,
    targets=None,
    law="three_phase",
    bootstrap=0,
    seed=0,
    smoothing="centered",
    window=WINDOW,
    use="loss",
    n_targets=6,
    laws=("three_phase", "hyperbolic"),
    level=0.9,
) -> BoptTable:
    """Fit E(S) per target and tabulate ``Bmin``/``Bopt`` with intervals.

    Parameters
    ----------
    runs : list of Run
        One run per batch size (at least 3 distinct batch sizes).
    targets : array_like, optional
        Target losses; default :func:`choose_targets` with ``n_targets``.
    law : str
        The law whose ``bmin``/``bopt`` fill the table (``three_phase`` or
        ``three_phase_free``; the hyperbola defines neither).
    bootstrap, seed : int
        Bootstrap resamples for intervals, and their seed.
    smoothing, window, use : see :func:`dbs_theory.measure.curves.es_points`.
    laws : tuple
        Laws whose R^2 and degrees of freedom are reported.
    level : float
        Two-sided level of the envelope's and the floors' intervals (the
        three-phase fit's are 95%).

    Returns
    -------
    BoptTable
    """
    if not law_named(law).defines_bopt:
        raise ValueError(f"law: the {law} law defines no Bmin or Bopt; use `law` three_phase")
    runs, dynamic = fixed_batch_runs(runs)
    batches = {r.batch_size for r in runs}
    if len(batches) < 3:
        raise ValueError(
            f"need runs at 3 or more distinct batch sizes to fit E(S); got {len(batches)} "
            f"({', '.join(f'{b:g}' for b in sorted(batches))}); {measured_best(runs, use)}"
        )
    if targets is None:
        try:
            targets = choose_targets(runs, n_targets, smoothing=smoothing, window=window, use=use)
        except ValueError as exc:
            raise ValueError(f"{exc}; {measured_best(runs, use)}") from None
    targets = np.sort(np.atleast_1d(np.asarray(targets, float)))[::-1]
    if targets.size and np.any(targets[1:] == targets[:-1]):
        rep = sorted({float(t) for t in targets[1:][targets[1:] == targets[:-1]]})
        raise ValueError(
            f"repeated target(s) {', '.join(f'{t:g}' for t in rep)}: give each target once "
            "(a repeat would count the same points twice)"
        )
    pts = es_points(runs, targets, smoothing, window, use)
    reached = {float(t) for t in pts.target}
    if not reached:
        raise ValueError(f"no run reaches any of the targets {', '.join(f'{t:.4g}' for t in targets)}")
    rows, fits = [], []
    for t in targets:
        row, fit = _target_row(pts, float(t), law, laws, bootstrap, seed)
        rows.append(row)
        fits.append(fit)
    env = _add_estimators(rows, runs, targets, smoothing, window, bootstrap, seed, level)
    verdict = _verdicts(rows, bootstrap)
    lr = sweep_lr(runs)
    excluded = [(r.name, math.nan, DYNAMIC) for r in dynamic] + list(pts.excluded)
    return BoptTable(
        rows,
        verdict,
        law,
        lr,
        excluded,
        crossovers(runs, smoothing, window, use),
        fits,
        pts,
        env,
        [_dynamic_rows(r) for r in dynamic],
    )


#: learning rates within this factor are one rate (a logged rate is rounded; a sweep holds one)
LR_TOL = 1.05


def sweep_lr(runs):
    """The sweep's learning rate: the median of the runs' (``Run.lr``), or ``None`` when none is logged or
    when runs differ by more than :data:`LR_TOL` (Bmin and Bopt hold at one rate: they are not stated for a
    sweep at several, with a warning naming the spread). A run whose own rate varies over its second half (a
    decay, or rows at two rates) is warned."""
    for r in runs:
        lr = r.extra.get("lr")
        tail = None if lr is None else lr[len(lr) // 2 :][np.isfinite(lr[len(lr) // 2 :])]
        if tail is not None and tail.size and tail.min() > 0 and tail.max() > LR_TOL * tail.min():
            warnings.warn(
                f"run {r.name!r}: its learning rate varies {tail.max() / tail.min():.3g}x over its second "
                f"half ({tail.min():g} .. {tail.max():g}); the sweep's estimates assume one constant rate",
                stacklevel=3,
            )
    lrs = {r.name: r.lr for r in runs if r.lr is not None}
    if not lrs:
        return None
    lo, hi = min(lrs.values()), max(lrs.values())
    if lo > 0 and hi > LR_TOL * lo:
        slow = [n for n, v in lrs.items() if v == lo][:3]
        warnings.warn(
            f"the runs' learning rates differ {hi / lo:.3g}x ({lo:g} .. {hi:g}; {', '.join(map(repr, slow))} "
            f"at {lo:g}): Bmin and Bopt hold at one rate, so no rate is recorded; fit each rate's runs "
            "apart",
            stacklevel=3,
        )
        return None
    return float(np.median(list(lrs.values())))


def _dynamic_rows(run, n=600):
    """A dynamic-batch run at up to ``n`` of its rows (every batch change kept): name, tokens, loss, batch."""
    b = np.asarray(run.extra["batch_size"], float)
    keep = np.unique(
        np.r_[
            np.linspace(0, b.size - 1, min(n, b.size)).astype(int),
            np.nonzero(np.diff(b))[0],
            np.nonzero(np.diff(b))[0] + 1,
        ]
    )
    return dict(name=run.name, tokens=run.tokens[keep].tolist(), loss=run.loss[keep].tolist(), batch=b[keep].tolist())


def _add_estimators(rows, runs, targets, smoothing, window, bootstrap, seed, level=0.9):
    """Put the envelope Bopt and the floor Bmin beside the three-phase fit, with an agreement flag; return the
    envelope over the data grid (``None`` with fewer than 3 batch sizes)."""
    ends = {}
    for r in runs:  # the data every batch size reaches, so the envelope grid ends where 3 sizes still compete
        ends[r.batch_size] = max(ends.get(r.batch_size, 0.0), float(r.tokens[-1]))
    first = min(float(r.tokens[r.tokens > 0][0]) for r in runs)
    last = sorted(ends.values())[-3] if len(ends) >= 3 else max(ends.values())
    data = np.geomspace(first, max(last, first * 1.0001), 80)
    data = np.unique(np.r_[data, [e for e in ends.values() if first < e < last]])  # each run's last word
    env = (
        envelope_bopt(runs, data, smoothing, window, bootstrap=bootstrap, seed=seed, level=level)
        if len({r.batch_size for r in runs}) >= 3
        else None
    )
    fl = floor_bmin(runs, targets, smoothing, window, bootstrap=bootstrap, seed=seed, level=level)
    for i, row in enumerate(rows):
        _put(row, "bmin_floor", fl.bmin[i], fl.lo[i], fl.hi[i], fl.identified[i], fl.reason[i])
        hit = np.nonzero(env.loss <= row["target"])[0] if env is not None else np.array([], int)
        if env is None or not hit.size:
            why = (
                "fewer than 3 batch sizes"
                if env is None
                else "fewer than 3 batch sizes reach this target within their logs"
            )
            _put(row, "bopt_envelope", np.nan, np.nan, np.nan, False, why)
        else:
            j = hit[0]
            row["data_envelope"] = float(env.data[j])
            lo, hi = _target_interval(env, j, row["target"])
            _put(row, "bopt_envelope", env.bopt[j], lo, hi, env.identified[j], env.reason[j])
        _cross_check(row)
    return env


def _target_interval(env, j, target):
    """The envelope's Bopt interval at a target loss: the union of its intervals over the data at which
    the envelope may meet the target (between where its loss interval's lower and upper ends do)."""
    if env.loss_lo is None or not env.identified[j] or not np.isfinite(env.lo[j]):
        return env.lo[j], env.hi[j]  # no interval, or a one-sided bound at the grid edge
    early = np.nonzero(env.loss_lo <= target)[0]
    late = np.nonzero(env.loss_hi <= target)[0]
    a = early[0] if early.size else j
    b = late[0] if late.size else env.data.size - 1
    span = [k for k in range(min(a, j), max(b, j) + 1) if env.identified[k] and np.isfinite(env.lo[k])]
    return min(env.lo[k] for k in span), max(env.hi[k] for k in span)


def _cross_check(row, tolerance=1.25):
    """Withdraw a three-phase Bmin/Bopt that disagrees with the law-free estimator by more than ``tolerance``x.

    A law can fit the points closely (R^2 0.9999) and still put Bmin or Bopt in
    the wrong place; where the envelope or the floors identify the quantity,
    they overrule the fit, and the row says so.
    """
    for key, other, name in (("bopt", "bopt_envelope", "the envelope"), ("bmin", "bmin_floor", "the loss floors")):
        if key in row and other in row:
            row[f"agree_{key}"] = not _above(abs(np.log(row[key] / row[other])), np.log(tolerance))
            if not row[f"agree_{key}"]:
                withdraw(
                    row,
                    key,
                    f"the three-phase fit ({row[key]:.4g}) disagrees with {name} ({row[other]:.4g}) by more "
                    f"than {tolerance - 1:.0%}",
                )


def _put(row, key, value, lo, hi, identified, reason):
    """An estimator's cell (:func:`~dbs_theory.measure.fit_table.put_estimate`); not identified for ``reason``."""
    put_estimate(row, key, value, lo, hi, "" if identified and np.isfinite(value) else reason)


def _verdicts(rows, bootstrap):
    """ "Grows as the target falls" for Bmin and Bopt from the estimator :func:`chosen_column` picks.

    Without bootstrap intervals the verdict is "inconclusive": measured values without
    intervals cannot tell a trend from noise (exact values use :func:`monotonicity` directly).
    """
    out = {}
    for key in SOURCES:
        est = chosen(rows, key)
        lo, hi = ([e.lo for e in est], [e.hi for e in est]) if bootstrap else (None, None)
        vals = [e.value if e.identified else math.nan for e in est]
        out[key] = monotonicity(vals, lo, hi) if bootstrap else "inconclusive"
        out[f"{key}_source"], out[f"{key}_column"] = (
            est[0].source if est else SOURCES[key][0][1],
            chosen_column(rows, key),
        )
    return out


#: Relative margin (dimensionless) of a status boundary: a fitted value this close to it counts as on it, so a
#: value that sits on a boundary does not take its status from its last bits (a refit on another machine or
#: BLAS agrees to ~1e-10), while any difference the data can show (far above 1e-6) still decides.
_RTOL = 1e-6


def _at_least(value, bound):
    """``value >= bound``, a ``value`` within :data:`_RTOL` (relative) below ``bound`` counting as on it."""
    return value >= bound - _RTOL * abs(bound)


def _above(value, bound):
    """``value > bound``, a ``value`` within :data:`_RTOL` (relative) above ``bound`` counting as on it."""
    return value > bound + _RTOL * abs(bound)


def _linear_phase_check(law, S, B):
    """Reason the three-phase ``Bmin`` (the linear phase's slope A1) is not identified, or ''.

    ``A1`` is the asymptotic slope only if the data reach the linear phase:
    at least 3 points beyond S2, and the smallest batch that reached the
    target within 1.5x of A1 (a batch far above Bmin never shows the asymptote).
    """
    n_lin = int(np.sum(_above(S, law.s2)))
    if n_lin < 3:
        return f"{n_lin} point(s) in the linear phase (need 3)"
    if _above(B.min(), 100 * law.bmin):
        return (
            f"the fitted Bmin ({law.bmin:.3g}) lies far below every batch that reached the target (the "
            f"smallest, {B.min():.4g}): the linear phase is not measured"
        )
    if _above(B.min(), 1.5 * law.bmin):
        return (
            f"the smallest batch that reached the target ({B.min():.4g}) is {B.min() / law.bmin:.1f}x the "
            "fitted Bmin: the asymptote is extrapolated"
        )
    return ""


def _target_row(pts, t, law, laws, bootstrap, seed):
    S, E, B = pts.for_target(t)
    row = dict(target=t, n_points=int(S.size), n_batches=int(np.unique(B).size))
    fits = {}
    for name in dict.fromkeys((law, *laws)):
        k = law_named(name).n_params
        if S.size < k + 3:
            row[f"dof_{name}"] = S.size - k
            continue
        fits[name] = fit_es(S, E, name, bootstrap=bootstrap if name == law else 0, seed=seed)
        row[f"r2_log_{name}"] = fits[name].r2_log
        row[f"r2_{name}"] = fits[name].r2
        row[f"dof_{name}"] = fits[name].dof
    main = fits.get(law)
    if main is None:
        row["status"] = f"not fitted: {S.size} points < {law_named(law).n_params + 3} needed"
        return row, fits
    row["status"] = "ok"
    if not _at_least(main.r2_log, R2_MIN):
        row["status"] = (
            f"not supported: the {law} fit explains too little (R^2 log {main.r2_log:.2f} < "
            f"{R2_MIN}); noisy or too few points"
        )
        return row, fits
    if not law_named(law).defines_bopt:
        return _hyperbolic_row(row, main), fits
    law_ = main.law
    if not (_at_least(law_.sopt, S.min()) and _at_least(S.max(), law_.sopt) and _at_least(law_.emin, 0.5 * E.min())):
        # The fitted minimum lies outside the observed steps (or far below every point): the data do
        # not bracket the optimum, so Bopt = Emin/Sopt is an extrapolation of a degenerate fit.
        row["status"] = (
            f"optimum not bracketed by the data (Sopt {law_.sopt:.4g} outside "
            f"[{S.min():.4g}, {S.max():.4g}] steps or Emin far below the points)"
        )
        return row, fits
    row.update(smin=main.law.smin, sopt=main.law.sopt, emin=main.law.emin, bmin=main.law.bmin, bopt=main.law.bopt)
    for key, (lo, hi) in main.ci.items():
        if key in ("bmin", "bopt", "emin", "smin"):
            row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi
    why = _linear_phase_check(law_, S, B)
    if why:
        withdraw(row, "bmin", why)
    else:
        row["bmin_status"] = "ok"
    if not (math.isfinite(row["bopt"]) and row["bopt"] > 0):
        row["status"] = "fit gave no positive Bopt"
        return row, fits
    off = _off_grid(row, B)
    if off:  # a Bopt whose interval leaves the batches that reached the target is not pinned down by them
        withdraw(row, "bopt", off)
    return row, fits


def _off_grid(row, B):
    """Why the fit's ``Bopt`` (its interval where it has one) is not inside the batches ``B`` that reached
    the target, or '' (the fit extrapolates past the grid there: the minimum is not bracketed by runs)."""
    lo, hi = row.get("bopt_lo", row["bopt"]), row.get("bopt_hi", row["bopt"])
    what = "its interval" if "bopt_lo" in row else "it"
    if _above(B.min(), lo):
        return f"{what} runs below the grid (to {lo:.4g}; the smallest batch that reached the target is {B.min():.4g})"
    if _above(hi, B.max()):
        return f"{what} runs above the grid (to {hi:.4g}; the largest batch that reached the target is {B.max():.4g})"
    return ""


def points_table(pts, law="three_phase", laws=("three_phase", "hyperbolic"), bootstrap=0, seed=0) -> BoptTable:
    """Fit E(S) per target to given (S, E) points (a published steps-to-target table), no loss curves.

    As :func:`bopt_table` minus what needs curves (no envelope, no loss
    floors, no crossovers), so ``bmin``/``bopt`` are the law's alone. With
    ``law="hyperbolic"`` each row reports McCandlish's ``smin``, ``emin`` and
    ``b_crit = emin / smin`` (batch units), with bootstrap intervals over the
    points. ``verdict`` says whether the law's batch (``bmin``/``bopt``, or
    ``b_crit``) grows as the target falls (``inconclusive`` without bootstrap).
    """
    spec = law_named(law)
    batches = np.unique(pts.batch_size)
    if batches.size < 3:
        raise ValueError(f"need points at at least 3 distinct batch sizes; got {batches.size}")
    rows, fits = [], []
    for t in np.unique(pts.target)[::-1]:
        row, fit = _target_row(pts, float(t), law, laws, bootstrap, seed)
        rows.append(row)
        fits.append(fit)
    verdict = {}
    for key in spec.batches:
        ends = [[r.get(f"{key}_{e}") for r in rows] for e in ("lo", "hi")] if bootstrap else (None, None)
        verdict[key] = monotonicity([r.get(key) for r in rows], *ends) if bootstrap else "inconclusive"
        verdict[f"{key}_source"], verdict[f"{key}_column"] = f"{law.replace('_', '-')} fit", key
    return BoptTable(rows, verdict, law, None, list(pts.excluded), [], fits, pts, None)


def _hyperbolic_row(row, fit):
    """``smin``, ``emin`` and ``b_crit = emin/smin`` with intervals (the bootstrap's paired draws) into ``row``."""
    row.update(smin=fit.law.smin, emin=fit.law.emin, b_crit=fit.law.b_crit)
    for key in ("smin", "emin"):
        if key in fit.ci:
            row[f"{key}_lo"], row[f"{key}_hi"] = fit.ci[key]
    b = (
        np.asarray(fit.boot.get("emin", []), float) / np.asarray(fit.boot.get("smin", []), float)
        if fit.boot
        else np.array([])
    )
    b = b[np.isfinite(b)]
    if b.size:
        row["b_crit_lo"], row["b_crit_hi"] = float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))
    return row
