"""The optimal-batch curve ``Bopt(D)``: which batch is best after ``D`` data.

By the equivalence of :func:`dbs_theory.derivations.equivalence`, the data
budget at which ``Bopt(L*)`` is optimal is ``Emin(L*)``, so per-target fit
results give points ``(D, B) = (Emin, Bopt)``. This module fits a curve
through them: a power law ``B = k N^beta D^alpha`` (default) or a monotone
interpolation in log-log space.
"""

from __future__ import annotations

import math
import warnings
from typing import Any
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..deprecation import renamed

__all__ = ["BoptCurve", "fit_bopt_curve", "envelope_curve", "LearningRateMismatch", "check_lr", "bopt_band", "isotonic"]


class LearningRateMismatch(UserWarning):
    """A schedule or curve is used at a learning rate other than the one it was measured at."""


def check_lr(measured, used, what="schedule", rtol=1e-6):
    """Warn when ``used`` differs from the rate ``measured`` (``Bmin`` scales with ``eta``)."""
    if measured is None or used is None:
        return
    if abs(used - measured) > rtol * abs(measured):
        warnings.warn(
            f"this {what} was derived at learning rate {measured:g} but is applied at "
            f"{used:g}; Bmin and Bopt scale with the learning rate (Bmin ~ eta on the NQM)",
            LearningRateMismatch,
            stacklevel=3,
        )


@dataclass(frozen=True)
class BoptCurve:
    """``Bopt`` as a function of data consumed (and optionally model size).

    Attributes
    ----------
    form : str                   ``power`` or ``monotone``.
    params : dict                ``k``, ``alpha`` (and ``beta``) for the power law.
    D, B : ndarray               The points it was fitted to (tokens/examples).
    N : ndarray or None          Model sizes of the points, if given.
    r2_log : float               Fit quality in log space.
    lr : float or None           Learning rate the points were measured at.
    extrapolate : bool           Whether evaluation outside the fitted range is allowed.
    margin : float               How far outside ``[D.min(), D.max()]`` counts as inside (factor).
    weights : ndarray or None    ``monotone`` form: the points' weights in the isotonic fit (1 / variance
                                 of log Bopt); equal when ``None``.
    """

    form: str
    params: dict
    D: np.ndarray
    B: np.ndarray
    N: np.ndarray | None
    r2_log: float
    lr: float | None
    extrapolate: bool = False
    margin: float = 2.0
    weights: np.ndarray | None = None

    def __call__(self, D, N=None):
        """``Bopt`` (tokens/examples) at data ``D``; raises outside the fitted range unless allowed."""
        D = np.asarray(D, float)
        lo, hi = self.D.min() / self.margin, self.D.max() * self.margin
        if self.form == "monotone":
            lo = 0.0  # held at its first value below the range: Bopt does not fall as D grows
        if not self.extrapolate and (np.any(D < lo) or np.any(D > hi)):
            bad = float(D[(D < lo) | (D > hi)].flat[0])
            raise ValueError(
                f"extrapolate: D={bad:g} lies far outside the fitted range [{self.D.min():g}, "
                f"{self.D.max():g}]; set it to allow that"
            )
        if self.form == "power":
            out = self.params["k"] * np.maximum(D, 1e-300) ** self.params["alpha"]
            if "beta" in self.params:
                if N is None:
                    raise ValueError("this curve depends on model size: pass N")
                out = out * float(N) ** self.params["beta"]
            return out
        logd = np.log(np.clip(D, self.D.min(), self.D.max()))
        return np.exp(self._pchip()(logd))

    def _pchip(self):
        order = np.argsort(self.D, kind="stable")
        w = None if self.weights is None else self.weights[order]
        x, y = np.log(self.D[order]), isotonic(np.log(self.B[order]), w)
        keep = np.r_[True, np.diff(x) > 0]  # repeated D: the isotonic fit already pooled them
        if keep.sum() < 2:
            return lambda v: np.full(np.shape(v), y[-1])
        return PchipInterpolator(x[keep], y[keep])

    def with_extrapolation(self, allowed=True) -> "BoptCurve":
        """A copy that allows (or forbids) evaluation outside the fitted range."""
        return BoptCurve(
            self.form, self.params, self.D, self.B, self.N, self.r2_log, self.lr, allowed, self.margin, self.weights
        )

    def to_dict(self) -> dict:
        return dict(
            form=self.form,
            params=self.params,
            D=self.D.tolist(),
            B=self.B.tolist(),
            N=None if self.N is None else self.N.tolist(),
            r2_log=self.r2_log,
            lr=self.lr,
            weights=None if self.weights is None else self.weights.tolist(),
        )

    @classmethod
    def from_dict(cls, d: dict, extrapolate: bool = False) -> "BoptCurve":
        """Inverse of :meth:`to_dict` (``bopt_curve.json``); a record without ``form`` is a power law."""
        N, w = d.get("N"), d.get("weights")
        return cls(
            d.get("form", "power"),
            dict(d["params"]),
            np.asarray(d["D"], float),
            np.asarray(d["B"], float),
            None if N is None else np.asarray(N, float),
            float(d.get("r2_log", math.nan)),
            d.get("lr"),
            extrapolate,
            2.0,
            None if w is None else np.asarray(w, float),
        )


def isotonic(y, w=None):
    """The non-decreasing sequence closest to ``y`` in weighted least squares (pool adjacent violators).

    O(n): each point is pushed once and pooled at most once. ``w`` (positive)
    defaults to equal weights.
    """
    y = np.asarray(y, float)
    w = np.ones_like(y) if w is None else np.asarray(w, float)
    vals, wts, counts = [], [], []
    for v, u in zip(y, w):
        vals.append(v)
        wts.append(u)
        counts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            u2, c2, v2 = wts.pop(), counts.pop(), vals.pop()
            vals[-1] = (vals[-1] * wts[-1] + v2 * u2) / (wts[-1] + u2)
            wts[-1] += u2
            counts[-1] += c2
    return np.repeat(vals, counts)


def _points(D, Bopt):
    """Accept arrays, an :class:`~dbs_theory.measure.estimators.EnvelopeBopt`, a
    :class:`~dbs_theory.measure.tabulate.BoptTable` (the Bopt estimates it chooses:
    :func:`~dbs_theory.measure.tabulate.chosen_column`) or a ``sim`` FrontierResult."""
    lr = None
    if Bopt is None and hasattr(D, "identified") and hasattr(D, "data"):  # EnvelopeBopt
        D, Bopt = np.asarray(D.data)[D.identified], np.asarray(D.bopt)[D.identified]
    elif Bopt is None and hasattr(D, "rows") and hasattr(D, "column"):  # BoptTable
        lr, est = D.lr, [e for e in D.estimates("bopt") if e.identified]
        D, Bopt = [e.data for e in est], [e.value for e in est]
    elif Bopt is None and hasattr(D, "emin") and hasattr(D, "bopt"):  # sim.FrontierResult
        eta = (getattr(D, "meta", {}) or {}).get("eta")
        lr = eta if isinstance(eta, (int, float)) else None
        D, Bopt = np.asarray(D.emin, float), np.asarray(D.bopt, float)
    D, B = np.asarray(D, float).ravel(), np.asarray(Bopt, float).ravel()
    if D.shape != B.shape:
        raise ValueError(f"D and Bopt must have the same length; got {D.size} and {B.size}")
    ok = np.isfinite(D) & np.isfinite(B) & (D > 0) & (B > 0)
    return D[ok], B[ok], lr, ok


@renamed(D="data", Bopt="bopt")
def fit_bopt_curve(
    data, bopt=None, model_size=None, form="power", extrapolate=False, lr=None, weights=None
) -> BoptCurve:
    """Fit ``Bopt(D)`` (or ``Bopt(N, D)``) through per-target optima.

    Parameters
    ----------
    data : array_like, EnvelopeBopt, BoptTable or FrontierResult
        Data budgets ``Emin`` (tokens/examples) at which each ``Bopt`` is
        optimal; or a whole result: the envelope's identified points, a
        table's envelope columns (its three-phase ``emin``/``bopt`` when the
        envelope is identified at fewer than 2 targets), a frontier's optima.
    bopt : array_like, optional
        Optimal batches (tokens/examples); omit when ``data`` is a result.
    model_size : array_like, optional
        Model size ``N`` per point; adds the factor ``N^beta``.
    form : {"power", "monotone"}
        ``k N^beta D^alpha`` by least squares in log space, or a monotone
        (PCHIP) interpolation in log-log of the weighted isotonic fit of
        ``log Bopt`` (:func:`isotonic`: one noisy point is pooled with its
        neighbours instead of lifting the rest of the curve).
    weights : array_like, optional
        ``monotone`` form: per-point weights (1 / variance of ``log Bopt``).
    extrapolate : bool
        Allow evaluation more than a factor 2 outside the fitted ``D`` range.
    lr : float, optional
        Learning rate of the points (taken from the result when it has one).

    Returns
    -------
    BoptCurve
    """
    D, B, found_lr, kept = _points(data, bopt)
    lr = lr if lr is not None else found_lr
    if D.size < 2:
        raise ValueError(f"need at least 2 finite (D, Bopt) points to fit a curve; got {D.size}")
    if form not in ("power", "monotone"):
        raise ValueError(f"form={form!r} must be 'power' or 'monotone'")
    N = None if model_size is None else np.broadcast_to(np.asarray(model_size, float), D.shape).copy()
    y = np.log(B)
    if form == "monotone":
        w = None if weights is None else np.asarray(weights, float).ravel()[kept]
        curve = BoptCurve("monotone", {}, D, B, N, 1.0, lr, True, 2.0, w)
        return BoptCurve("monotone", {}, D, B, N, _r2(y, np.log(curve(D))), lr, extrapolate, 2.0, w)
    cols = [np.ones_like(D), np.log(D)]
    if N is not None and np.unique(N).size > 1:
        cols.append(np.log(N))
    X = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    params = dict(k=math.exp(coef[0]), alpha=float(coef[1]))
    if len(coef) > 2:
        params["beta"] = float(coef[2])
    return BoptCurve("power", params, D, B, N, _r2(y, X @ coef), lr, extrapolate)


def envelope_curve(env, upto=None, level=0.9, lr=None) -> BoptCurve:
    """The noise-robust ``Bopt(D)`` a schedule follows: the envelope's readings, made monotone.

    ``env`` is an :class:`~dbs_theory.measure.estimators.EnvelopeBopt` or its
    :meth:`~dbs_theory.measure.estimators.EnvelopeBopt.to_dict` (``fit.json``'s
    ``envelope``). Every reading at ``D <= upto`` enters: an identified
    ``Bopt``; where the optimum lies past the grid, the grid edge (the largest
    batch when it lies above, the smallest when below); where it is bracketed
    by neighbours more than 2x apart, their geometric mean. They enter a
    weighted isotonic fit of ``log Bopt`` against ``log D`` (weights: the
    inverse variance of ``log Bopt`` from the ``level`` intervals, floored at 1%
    so no point outweighs the rest without limit; a one-sided bound gets the
    median weight; equal weights without intervals), joined by a monotone PCHIP
    in log-log and held at its ends (:class:`BoptCurve`, ``form="monotone"``).
    Seeds are already pooled by the envelope (it averages runs of one batch).
    """

    def get(k) -> Any:
        return env.get(k) if isinstance(env, dict) else getattr(env, k, None)

    def col(k) -> np.ndarray:
        return (
            np.full(len(get("data")), np.nan)
            if get(k) is None
            else np.array([np.nan if v is None else v for v in get(k)], float)
        )

    D, B, lo, hi = col("data"), col("bopt"), col("lo"), col("hi")
    ident = np.asarray(get("identified"), bool) & np.isfinite(B)
    value = np.where(
        ident, B, np.where(np.isfinite(lo) & np.isfinite(hi), np.sqrt(lo * hi), np.where(np.isfinite(lo), lo, hi))
    )
    ok = np.isfinite(value) & (D <= (np.inf if upto is None else upto))
    if ident[ok].sum() < 2:
        raise ValueError(
            f"the envelope identifies Bopt at {int(ident[ok].sum())} data amount(s)"
            + ("" if upto is None else f" up to {upto:g}")
            + "; need >= 2 to follow it"
        )
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    with np.errstate(all="ignore"):
        sd = np.maximum(np.log(hi / lo) / (2 * z), 0.01)
    w = np.where(np.isfinite(sd), 1 / sd**2, np.nan)[ok]
    w = np.where(np.isfinite(w), w, np.nanmedian(w) if np.isfinite(w).any() else 1.0)
    return fit_bopt_curve(D[ok], value[ok], form="monotone", lr=lr, weights=w)


def _r2(y, yhat):
    ss = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - yhat) ** 2) / ss) if ss > 0 else 1.0


@renamed(D="data", B="bopt")
def bopt_band(data, bopt, lo, hi, at):
    """``(lo, hi)``: the interval of ``Bopt`` at data ``at``, from measured points and their intervals.

    Inside the measured range ``[min D, max D]`` the band interpolates the
    points' interval ends linearly in log-log. Past it the band opens
    instead of trusting a law: ``Bopt`` does not fall as ``D`` grows, so the
    lower edge stays at the last measured lower bound, while the upper edge
    grows with the steepest log-log slope seen between neighbouring points
    (and mirrored below the range). Units: ``D``, ``at`` and batches in the
    logs' unit (tokens or examples).
    """
    D, B, lo, hi = (np.asarray(v, float) for v in (data, bopt, lo, hi))
    ok = np.isfinite(D) & np.isfinite(lo) & np.isfinite(hi) & (D > 0) & (lo > 0) & (hi > 0)
    if ok.sum() < 2:
        raise ValueError(f"need >= 2 points with an interval to draw a band; got {int(ok.sum())}")
    order = np.argsort(D[ok])
    lD, llo, lhi, lB = (np.log(v[ok][order]) for v in (D, lo, hi, B))
    slope = max(0.0, float(np.max(np.diff(lB) / np.diff(lD)))) if np.all(np.diff(lD) > 0) else 0.0
    x = np.log(np.asarray(at, float))
    out_lo, out_hi = np.interp(x, lD, llo), np.interp(x, lD, lhi)
    above, below = x > lD[-1], x < lD[0]
    out_hi = np.where(above, lhi[-1] + slope * (x - lD[-1]), out_hi)
    out_lo = np.where(below, llo[0] - slope * (lD[0] - x), out_lo)
    return np.exp(out_lo), np.exp(out_hi)
