"""Fitting E(S) laws to (steps, data) points, with bootstrap intervals.

Points span decades, so every law is fitted in log space (residuals
``log E - log E_model``) after scaling ``S`` and ``E`` by their medians.
Parameters are mapped so the ordering constraints hold by construction
(``0 <= Smin < min S``, ``Smin < S1 < Sopt < S2``, ``Emin, C > 0``), and a
deterministic grid of starting points feeds bounded least squares
(:func:`scipy.optimize.least_squares`); the best fit wins, so the result
does not hang on one lucky guess.

Units: ``S`` in steps; ``E`` in tokens or examples; ``bmin``/``bopt`` in
the same unit per step (a batch size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from ..theory.laws import LAWS, fraction, law_named, logit

__all__ = ["fit_es", "compare_laws", "FitResult"]


@dataclass(frozen=True)
class FitResult:
    """A fitted E(S) law and its diagnostics.

    Attributes
    ----------
    law : HyperbolicES or ThreePhaseES   The fitted law (original units).
    name : str                           ``three_phase``, ``three_phase_free`` or ``hyperbolic``.
    n, k, dof : int                      Points, free parameters, ``n - k``.
    r2, r2_log : float                   R^2 in linear and in log space.
    aic, bic : float                     From the log-space residual sum of squares.
    residuals : ndarray                  ``log E - log E_fit`` per point (input order).
    ci : dict                            ``name -> (lo, hi)`` 95% bootstrap intervals for
                                         ``bmin``, ``bopt``, ``emin``, ``smin`` (empty without bootstrap).
    boot : dict                          The bootstrap draws behind ``ci``.
    """

    law: Any
    name: str
    n: int
    k: int
    dof: int
    r2: float
    r2_log: float
    aic: float
    bic: float
    residuals: np.ndarray
    ci: dict = field(default_factory=dict)
    boot: dict = field(default_factory=dict)

    @property
    def bmin(self):
        return self.law.bmin

    @property
    def bopt(self):
        return self.law.bopt

    def summary(self) -> dict:
        """Plain numbers for tables and JSON."""
        out = dict(
            law=self.name,
            n=self.n,
            k=self.k,
            dof=self.dof,
            r2=self.r2,
            r2_log=self.r2_log,
            aic=self.aic,
            bic=self.bic,
            smin=self.law.smin,
            emin=self.law.emin,
            bmin=self.law.bmin,
            bopt=self.law.bopt,
            sopt=getattr(self.law, "sopt", None),
        )
        for key, (lo, hi) in self.ci.items():
            out[f"{key}_lo"], out[f"{key}_hi"] = lo, hi
        return out


#: weight (log-space residual units) of the pull towards the first start that picks one point of a flat valley
#: of the three-phase fit (:func:`_solve`)
RIDGE = 1e-3


def _solve(name, S, E, starts, max_nfev=300):
    """Best least-squares fit in log space over ``starts``; returns (x, cost)."""
    spec = LAWS[name]
    smax, logE = S.min(), np.log(E)

    def resid(x):
        with np.errstate(all="ignore"):
            try:
                model = spec.data(spec.pieces(x, smax), S)
            except (OverflowError, ZeroDivisionError):
                return np.full(S.size, 1e3)
            r = logE - np.log(model)
        return np.where(np.isfinite(r), r, 1e3)

    def analytic_jac(x):
        with np.errstate(all="ignore"):
            J = -spec.jacobian(x, S, smax)[1]
        return np.where(np.isfinite(J), J, 0.0)

    # Where no point lies in a phase, its parameters leave the residuals unchanged: a flat valley of equal
    # cost, on which the starts land wherever rounding sends them (a 1e-10 change of the losses moved Sopt by
    # 0.6%). A small pull towards the first start (RIDGE, in x) makes the minimum one point that moves
    # continuously with the data (1e-10 moves no estimate by 1e-6; an unpulled last step undid that). The
    # hyperbola has no phases, so no valley: it is fitted without the pull.
    jac = analytic_jac if spec.jacobian is not None else "2-point"
    ref, r = np.asarray(starts[0], float), RIDGE if spec.ridge else 0.0
    ridged = lambda x: np.concatenate([resid(x), r * (x - ref)])
    ridged_jac = jac if isinstance(jac, str) else (lambda x: np.vstack([jac(x), r * np.eye(x.size)]))
    best = None
    for x0 in starts:
        try:  # every parameter is unconstrained after the maps above: Levenberg-Marquardt
            fit = _levenberg_marquardt(ridged, ridged_jac, x0, max_nfev)
        except ValueError:
            continue
        if best is None or fit[1] < best[1]:
            best = fit
    if best is None:
        raise ValueError(f"the {name} fit failed from every starting point")
    return best[0], float(0.5 * np.sum(resid(best[0]) ** 2))


def _levenberg_marquardt(resid, jac, x0, max_nfev):
    """MINPACK's Levenberg-Marquardt from ``x0`` with one inert parameter appended; returns ``(x, cost)``.

    SciPy's C translation of MINPACK (``scipy/optimize/src/minpack.c``, behind
    ``least_squares(method="lm")``) recomputes a column norm in ``qrfac`` over
    one element too many: ``m - j`` entries from row ``j + 1``, where the
    Fortran has the ``m - j - 1`` below row ``j``. For the last column that
    element lies past the end of the Jacobian's buffer (valgrind: an invalid
    read 0 bytes after it), so the pivoting, and from it the fit, hung on
    whatever the heap held: ``dbs fit`` wrote different tables from one process
    to the next for the same input. A zero column in last place is never
    pivoted forward and never has its norm recomputed, and the column before it
    reads the zero column's first entry, so every read stays inside the buffer
    and the result depends on the input alone. The extra parameter's step is
    always 0 and the residuals ignore it. ``cost`` is half the sum of squared
    residuals (log units).
    """

    def padded_jac(z):
        J = jac(z[:-1])
        return np.column_stack([J, np.zeros(J.shape[0])])

    res = optimize.least_squares(
        lambda z: resid(z[:-1]),
        np.append(x0, 0.0),
        method="lm",
        jac=jac if isinstance(jac, str) else padded_jac,
        xtol=1e-9,
        ftol=1e-11,
        max_nfev=max_nfev,
    )
    return res.x[:-1], float(res.cost)


def _r2(y, yhat):
    ss = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - yhat) ** 2) / ss) if ss > 0 else float("nan")


def _check_points(S, E, name):
    S, E = np.asarray(S, float).ravel(), np.asarray(E, float).ravel()
    k = law_named(name).n_params
    if S.shape != E.shape:
        raise ValueError(f"S and E must have the same length; got {S.size} and {E.size}")
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(E)) and np.all(S > 0) and np.all(E > 0)):
        raise ValueError("S and E must be positive and finite")
    if S.size < k + 3:
        raise ValueError(f"the {name} law has {k} free parameters and needs at least {k + 3} points; got {S.size}")
    return S, E


def fit_es(S, E, law="three_phase", bootstrap=0, seed=0) -> FitResult:
    """Fit an E(S) law to points ``(S_i, E_i)``.

    Parameters
    ----------
    S : array_like
        Steps to the target, one per run (steps).
    E : array_like
        Data to the target, same runs (tokens or examples).
    law : {"three_phase", "three_phase_free", "hyperbolic"}
        ``three_phase`` is the C1-continuous form (6 free parameters:
        ``smin, s1, sopt, s2, emin, c``), ``three_phase_free`` the paper's free
        pieces (10), ``hyperbolic`` McCandlish's law (2: ``smin, emin``).
    bootstrap : int
        Resamples (points drawn with replacement) for 95% percentile
        intervals of ``bmin``, ``bopt``, ``emin`` and ``smin``; each refit
        starts from the full-data optimum.
    seed : int
        Seeds the bootstrap.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Fewer than (free parameters + 3) points, bad values, unknown law.
    """
    S, E = _check_points(S, E, law)
    order = np.argsort(S, kind="stable")
    s_scale, e_scale = float(np.median(S)), float(np.median(E))
    Ss, Es = S[order] / s_scale, E[order] / e_scale
    spec = LAWS[law]
    starts = spec.starts(Ss, Es)
    if spec.nests and spec.embed is not None:  # a law that contains another starts from that law's optimum too
        inner = LAWS[spec.nests]
        starts.insert(0, spec.embed(_solve(inner.name, Ss, Es, inner.starts(Ss, Es))[0], Ss.min()))
    x, cost = _solve(law, Ss, Es, starts)
    fitted = spec.build(spec.pieces(x, Ss.min())).rescaled(s_scale, e_scale)
    Ehat = fitted(S)
    n, k = S.size, spec.n_params
    resid = np.log(E) - np.log(Ehat)
    rss = float(np.sum(resid**2))
    aic = n * math.log(max(rss, 1e-300) / n) + 2 * k
    bic = n * math.log(max(rss, 1e-300) / n) + k * math.log(n)
    ci, boot = ({}, {}) if bootstrap <= 0 else _bootstrap(law, Ss, Es, x, s_scale, e_scale, bootstrap, seed)
    return FitResult(fitted, law, n, k, n - k, _r2(E, Ehat), _r2(np.log(E), np.log(Ehat)), aic, bic, resid, ci, boot)


def _bootstrap(law, Ss, Es, x_best, s_scale, e_scale, reps, seed):
    spec, rng = LAWS[law], np.random.default_rng(seed)
    keys = ("bmin", "bopt", "emin", "smin")
    draws: dict[str, list] = {k: [] for k in keys}
    n = Ss.size
    for _ in range(int(reps)):
        idx = np.sort(rng.integers(0, n, n))
        if np.unique(idx).size < spec.n_params + 1:
            continue
        Sb, Eb = Ss[idx], Es[idx]
        # x[0] is Smin as a fraction of min S: keep Smin itself, the quantity that carries over.
        x0 = x_best.copy()
        x0[0] = logit(fraction(x_best[0]) * Ss.min() / Sb.min())
        try:
            xb, _ = _solve(law, Sb, Eb, [x0])
            drawn = spec.build(spec.pieces(xb, Sb.min())).rescaled(s_scale, e_scale)
        except (ValueError, OverflowError):
            continue
        for k in keys:
            v = getattr(drawn, k)
            draws[k].append(np.nan if v is None else v)
    boot = {k: np.array(v) for k, v in draws.items()}
    ci = {
        k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5)))
        for k, v in boot.items()
        if v.size and np.any(np.isfinite(v))
    }
    return ci, boot


def compare_laws(S, E, laws=("three_phase", "three_phase_free", "hyperbolic"), criterion="aic"):
    """Fit every law the points allow and rank them, best first.

    Returns
    -------
    (list of FitResult, dict)
        The fits sorted by ``criterion`` (``aic`` or ``bic``, lower is
        better), and ``{law: reason}`` for laws not fitted (too few points).
    """
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion={criterion!r} must be 'aic' or 'bic'")
    fits, skipped = [], {}
    for name in laws:
        try:
            fits.append(fit_es(S, E, name))
        except ValueError as exc:
            skipped[name] = str(exc)
    return sorted(fits, key=lambda f: getattr(f, criterion)), skipped
