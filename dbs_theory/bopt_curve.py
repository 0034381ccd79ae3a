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
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["BoptCurve", "fit_bopt_curve", "LearningRateMismatch", "check_lr", "bopt_band"]


class LearningRateMismatch(UserWarning):
    """A schedule or curve is used at a learning rate other than the one it was measured at."""


def check_lr(measured, used, what="schedule", rtol=1e-6):
    """Warn when ``used`` differs from the rate ``measured`` (``Bmin`` scales with ``eta``)."""
    if measured is None or used is None:
        return
    if abs(used - measured) > rtol * abs(measured):
        warnings.warn(f"this {what} was derived at learning rate {measured:g} but is applied at "
                      f"{used:g}; Bmin and Bopt scale with the learning rate (Bmin ~ eta on the NQM)",
                      LearningRateMismatch, stacklevel=3)


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

    def __call__(self, D, N=None):
        """``Bopt`` (tokens/examples) at data ``D``; raises outside the fitted range unless allowed."""
        D = np.asarray(D, float)
        lo, hi = self.D.min() / self.margin, self.D.max() * self.margin
        if not self.extrapolate and (np.any(D < lo) or np.any(D > hi)):
            bad = float(D[(D < lo) | (D > hi)].flat[0])
            raise ValueError(f"D={bad:g} lies far outside the fitted range [{self.D.min():g}, "
                             f"{self.D.max():g}]; allow it with extrapolate=True (dbs schedule --extrapolate)")
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
        order = np.argsort(self.D)
        return PchipInterpolator(np.log(self.D[order]), np.log(np.maximum.accumulate(self.B[order])))

    def with_extrapolation(self, allowed=True) -> "BoptCurve":
        """A copy that allows (or forbids) evaluation outside the fitted range."""
        return BoptCurve(self.form, self.params, self.D, self.B, self.N, self.r2_log, self.lr,
                         allowed, self.margin)

    def to_dict(self) -> dict:
        return dict(form=self.form, params=self.params, D=self.D.tolist(), B=self.B.tolist(),
                    N=None if self.N is None else self.N.tolist(), r2_log=self.r2_log, lr=self.lr)

    @classmethod
    def from_dict(cls, d: dict, extrapolate: bool = False) -> "BoptCurve":
        """Inverse of :meth:`to_dict` (``bopt_curve.json``); a record without ``form`` is a power law."""
        N = d.get("N")
        return cls(d.get("form", "power"), dict(d["params"]), np.asarray(d["D"], float), np.asarray(d["B"], float),
                   None if N is None else np.asarray(N, float), float(d.get("r2_log", math.nan)), d.get("lr"),
                   extrapolate)


def _points(D, Bopt):
    """Accept arrays, an :class:`~dbs_theory.estimators.EnvelopeBopt`, a
    :class:`~dbs_theory.bopt_table.BoptTable` (its envelope columns when they are
    identified at >= 2 targets, else the three-phase fit's) or a ``sim`` FrontierResult."""
    lr = None
    if Bopt is None and hasattr(D, "identified") and hasattr(D, "data"):  # EnvelopeBopt
        D, Bopt = np.asarray(D.data)[D.identified], np.asarray(D.bopt)[D.identified]
    elif Bopt is None and hasattr(D, "rows") and hasattr(D, "column"):  # BoptTable
        lr = D.lr
        env = np.isfinite(D.column("bopt_envelope")) & np.isfinite(D.column("data_envelope"))
        D, Bopt = (D.column("data_envelope"), D.column("bopt_envelope")) if env.sum() >= 2 else \
            (D.column("emin"), D.column("bopt"))
    elif Bopt is None and hasattr(D, "emin") and hasattr(D, "bopt"):  # sim.FrontierResult
        eta = (getattr(D, "meta", {}) or {}).get("eta")
        lr = eta if isinstance(eta, (int, float)) else None
        D, Bopt = np.asarray(D.emin, float), np.asarray(D.bopt, float)
    D, B = np.asarray(D, float).ravel(), np.asarray(Bopt, float).ravel()
    if D.shape != B.shape:
        raise ValueError(f"D and Bopt must have the same length; got {D.size} and {B.size}")
    ok = np.isfinite(D) & np.isfinite(B) & (D > 0) & (B > 0)
    return D[ok], B[ok], lr


def fit_bopt_curve(D, Bopt=None, model_size=None, form="power", extrapolate=False, lr=None) -> BoptCurve:
    """Fit ``Bopt(D)`` (or ``Bopt(N, D)``) through per-target optima.

    Parameters
    ----------
    D : array_like, EnvelopeBopt, BoptTable or FrontierResult
        Data budgets ``Emin`` (tokens/examples) at which each ``Bopt`` is
        optimal; or a whole result: the envelope's identified points, a
        table's envelope columns (its three-phase ``emin``/``bopt`` when the
        envelope is identified at fewer than 2 targets), a frontier's optima.
    Bopt : array_like, optional
        Optimal batches (tokens/examples); omit when ``D`` is a result.
    model_size : array_like, optional
        Model size ``N`` per point; adds the factor ``N^beta``.
    form : {"power", "monotone"}
        ``k N^beta D^alpha`` by least squares in log space, or a monotone
        (PCHIP) interpolation of the running maximum of ``Bopt`` in log-log.
    extrapolate : bool
        Allow evaluation more than a factor 2 outside the fitted ``D`` range.
    lr : float, optional
        Learning rate of the points (taken from the result when it has one).

    Returns
    -------
    BoptCurve
    """
    D, B, found_lr = _points(D, Bopt)
    lr = lr if lr is not None else found_lr
    if D.size < 2:
        raise ValueError(f"need at least 2 finite (D, Bopt) points to fit a curve; got {D.size}")
    if form not in ("power", "monotone"):
        raise ValueError(f"form={form!r} must be 'power' or 'monotone'")
    N = None if model_size is None else np.broadcast_to(np.asarray(model_size, float), D.shape).copy()
    y = np.log(B)
    if form == "monotone":
        curve = BoptCurve("monotone", {}, D, B, N, 1.0, lr, extrapolate)
        return BoptCurve("monotone", {}, D, B, N, _r2(y, np.log(curve(D))), lr, extrapolate)
    cols = [np.ones_like(D), np.log(D)]
    if N is not None and np.unique(N).size > 1:
        cols.append(np.log(N))
    X = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    params = dict(k=math.exp(coef[0]), alpha=float(coef[1]))
    if len(coef) > 2:
        params["beta"] = float(coef[2])
    return BoptCurve("power", params, D, B, N, _r2(y, X @ coef), lr, extrapolate)


def _r2(y, yhat):
    ss = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - yhat) ** 2) / ss) if ss > 0 else 1.0


def bopt_band(D, B, lo, hi, at):
    """``(lo, hi)``: the interval of ``Bopt`` at data ``at``, from measured points and their intervals.

    Inside the measured range ``[min D, max D]`` the band interpolates the
    points' interval ends linearly in log-log. Past it the band opens
    instead of trusting a law: ``Bopt`` does not fall as ``D`` grows, so the
    lower edge stays at the last measured lower bound, while the upper edge
    grows with the steepest log-log slope seen between neighbouring points
    (and mirrored below the range). Units: ``D``, ``at`` and batches in the
    logs' unit (tokens or examples).
    """
    D, B, lo, hi = (np.asarray(v, float) for v in (D, B, lo, hi))
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
