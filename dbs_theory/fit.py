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

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from ._es_jacobian import c1_log_model_and_jacobian
from .es_laws import LAWS, HyperbolicES, ThreePhaseES

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


# -- parameter maps (unconstrained x -> piece coefficients in scaled units) ------------------
# A tuple (smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0) describes every three-phase law;
# the hyperbola is (smin, emin). Laws are built only once a fit is done: the least-squares
# loop evaluates these plain numbers directly.


def _frac(z):
    """Logistic map of an unconstrained number into (0, 1): Smin as a fraction of min S."""
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def _logit(f):
    f = min(max(f, 1e-9), 1 - 1e-9)
    return math.log(f / (1 - f))


def _gap(z):
    """A positive gap; floored so the ordering survives rounding (units: median S = 1)."""
    return max(math.exp(z), 1e-9)


def _c1_pieces(x, smax):
    smin = smax * _frac(x[0])
    s1 = smin + _gap(x[1])
    sopt = s1 + _gap(x[2])
    emin, c = math.exp(x[4]), math.exp(x[5])
    # S2 = sqrt(Sopt^2 + u Emin/C), u in (0, 1), keeps A0 = Emin - C (S2^2 - Sopt^2) >= 0,
    # which is Bmin = A1 <= Emin/Sopt = Bopt (a batch that reaches the target is >= Bmin).
    s2 = max(math.sqrt(sopt * sopt + _frac(x[3]) * emin / c), sopt * (1 + 1e-12) + 1e-12)
    a1 = 2 * c * (s2 - sopt)
    b_m1 = -2 * c * (s1 - sopt) * (s1 - smin) ** 2
    return (
        smin,
        s1,
        sopt,
        s2,
        emin,
        c,
        b_m1,
        c * (s1 - sopt) ** 2 + emin - b_m1 / (s1 - smin),
        a1,
        c * (s2 - sopt) ** 2 + emin - a1 * s2,
    )


def _free_pieces(x, smax):
    smin = smax * _frac(x[0])
    s1 = smin + _gap(x[1])
    sopt = s1 + _gap(x[2])
    s2 = sopt + _gap(x[3])
    return (smin, s1, sopt, s2, math.exp(x[4]), math.exp(x[5]), math.exp(x[6]), x[7], math.exp(x[8]), x[9])


def _hyp_pieces(x, smax):
    return (max(smax * _frac(x[0]), 1e-300), math.exp(x[1]))


_PIECES = {"three_phase": _c1_pieces, "three_phase_free": _free_pieces, "hyperbolic": _hyp_pieces}


def _evaluate(p, S):
    """E(S) from a piece tuple (see above); inf where undefined."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if len(p) == 2:
            return np.where(S > p[0], p[1] * S / (S - p[0]), np.inf)
        smin, s1, sopt, s2, emin, c, b_m1, b_0, a1, a0 = p
        inv = np.where(S > smin, b_m1 / (S - smin) + b_0, np.inf)
        return np.where(S < s1, inv, np.where(S <= s2, c * (S - sopt) ** 2 + emin, a1 * S + a0))


def _make_law(name, p):
    if name == "hyperbolic":
        return HyperbolicES(*p)
    return ThreePhaseES(*p, continuous=(name == "three_phase"))


def _x_from_c1(law, smax):
    u = law.c * (law.s2**2 - law.sopt**2) / law.emin
    return np.array(
        [
            _logit(law.smin / smax),
            math.log(law.s1 - law.smin),
            math.log(law.sopt - law.s1),
            _logit(u),
            math.log(law.emin),
            math.log(law.c),
        ]
    )


def _starts(name, S, E):
    """A deterministic grid of starting points in x, built from the data's shape."""
    smax = S.min()
    if name == "hyperbolic":
        return [np.array([_logit(f), math.log(E.min() * g)]) for f in (0.2, 0.6, 0.95) for g in (0.5, 0.9)]
    k = int(np.argmin(E))
    sopt, emin = S[k], E[k]
    tail = max((E[-1] - E[-2]) / max(S[-1] - S[-2], 1e-12), 1e-3 * emin / sopt) if S.size > 1 else 1.0
    starts = []
    for f, p1, m2 in itertools.product((0.3, 0.8, 0.97), (0.3, 0.7), (1.3, 2.0, 4.0)):
        smin = f * smax
        s_opt = max(sopt, smin * 1.02 + 1e-9)
        s1 = smin + (s_opt - smin) * p1
        s2 = s_opt * m2
        c = max(tail / (2 * (s2 - s_opt)), 1e-12)
        c = min(c, 0.9 * emin / (s2**2 - s_opt**2))  # start inside A0 >= 0
        law = ThreePhaseES.c1(smin, s1, s_opt, s2, emin, c)
        x = _x_from_c1(law, smax)
        if name == "three_phase_free":
            x = np.concatenate([x, [math.log(max(law.b_m1, 1e-12)), law.b_0, math.log(max(law.a1, 1e-12)), law.a0]])
        starts.append(x)
    return starts


#: weight (log-space residual units) of the pull towards the first start that picks one point of a flat valley
#: of the three-phase fit (:func:`_solve`)
RIDGE = 1e-3


def _solve(name, S, E, starts, max_nfev=300):
    """Best least-squares fit in log space over ``starts``; returns (x, cost)."""
    smax, logE, pieces = S.min(), np.log(E), _PIECES[name]

    def resid(x):
        with np.errstate(all="ignore"):
            try:
                model = _evaluate(pieces(x, smax), S)
            except (OverflowError, ZeroDivisionError):
                return np.full(S.size, 1e3)
            r = logE - np.log(model)
        return np.where(np.isfinite(r), r, 1e3)

    def analytic_jac(x):
        with np.errstate(all="ignore"):
            J = -c1_log_model_and_jacobian(x, S, smax)[1]
        return np.where(np.isfinite(J), J, 0.0)

    # Where no point lies in a phase, its parameters leave the residuals unchanged: a flat valley of equal
    # cost, on which the starts land wherever rounding sends them (a 1e-10 change of the losses moved Sopt by
    # 0.6%). A small pull towards the first start (RIDGE, in x) makes the minimum one point that moves
    # continuously with the data (1e-10 moves no estimate by 1e-6; an unpulled last step undid that). The
    # hyperbola has no phases, so no valley: it is fitted without the pull.
    jac = analytic_jac if name == "three_phase" else "2-point"
    ref, r = np.asarray(starts[0], float), RIDGE if name.startswith("three_phase") else 0.0
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


def _rescale(law, s_scale, e_scale):
    """The law in original units from one fitted on S/s_scale, E/e_scale."""
    if isinstance(law, HyperbolicES):
        return HyperbolicES(law.smin * s_scale, law.emin * e_scale)
    b = e_scale / s_scale
    return ThreePhaseES(
        law.smin * s_scale,
        law.s1 * s_scale,
        law.sopt * s_scale,
        law.s2 * s_scale,
        law.emin * e_scale,
        law.c * e_scale / s_scale**2,
        law.b_m1 * e_scale * s_scale,
        law.b_0 * e_scale,
        law.a1 * b,
        law.a0 * e_scale,
        law.continuous,
    )


def _check_points(S, E, name):
    S, E = np.asarray(S, float).ravel(), np.asarray(E, float).ravel()
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)}")
    if S.shape != E.shape:
        raise ValueError(f"S and E must have the same length; got {S.size} and {E.size}")
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(E)) and np.all(S > 0) and np.all(E > 0)):
        raise ValueError("S and E must be positive and finite")
    k = LAWS[name]
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
    starts = _starts(law, Ss, Es)
    if law == "three_phase_free":  # the free form contains the C1 one: start from its optimum too
        xc, _ = _solve("three_phase", Ss, Es, _starts("three_phase", Ss, Es))
        c1 = _make_law("three_phase", _c1_pieces(xc, Ss.min()))
        starts.insert(
            0,
            np.concatenate(
                [
                    [xc[0], xc[1], xc[2], math.log(c1.s2 - c1.sopt), xc[4], xc[5]],
                    [math.log(max(c1.b_m1, 1e-300)), c1.b_0, math.log(max(c1.a1, 1e-300)), c1.a0],
                ]
            ),
        )
    x, cost = _solve(law, Ss, Es, starts)
    fitted = _rescale(_make_law(law, _PIECES[law](x, Ss.min())), s_scale, e_scale)
    Ehat = fitted(S)
    n, k = S.size, LAWS[law]
    resid = np.log(E) - np.log(Ehat)
    rss = float(np.sum(resid**2))
    aic = n * math.log(max(rss, 1e-300) / n) + 2 * k
    bic = n * math.log(max(rss, 1e-300) / n) + k * math.log(n)
    ci, boot = ({}, {}) if bootstrap <= 0 else _bootstrap(law, Ss, Es, x, s_scale, e_scale, bootstrap, seed)
    return FitResult(fitted, law, n, k, n - k, _r2(E, Ehat), _r2(np.log(E), np.log(Ehat)), aic, bic, resid, ci, boot)


def _bootstrap(law, Ss, Es, x_best, s_scale, e_scale, reps, seed):
    rng = np.random.default_rng(seed)
    keys = ("bmin", "bopt", "emin", "smin")
    draws = {k: [] for k in keys}
    n = Ss.size
    for _ in range(int(reps)):
        idx = np.sort(rng.integers(0, n, n))
        if np.unique(idx).size < LAWS[law] + 1:
            continue
        Sb, Eb = Ss[idx], Es[idx]
        # x[0] is Smin as a fraction of min S: keep Smin itself, the quantity that carries over.
        x0 = x_best.copy()
        x0[0] = _logit(_frac(x_best[0]) * Ss.min() / Sb.min())
        try:
            xb, _ = _solve(law, Sb, Eb, [x0])
        except ValueError:
            continue
        p = _PIECES[law](xb, Sb.min())
        vals = (
            dict(smin=p[0] * s_scale, emin=p[1] * e_scale)
            if law == "hyperbolic"
            else dict(
                smin=p[0] * s_scale,
                emin=p[4] * e_scale,
                bmin=p[8] * e_scale / s_scale,
                bopt=p[4] / p[2] * e_scale / s_scale,
            )
        )
        for k in keys:
            draws[k].append(vals.get(k, np.nan))
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
