"""Steps to target, ``Bmin``/``Bopt`` and the E(S) frontier on the NQM.

Units: batch sizes in examples, steps in optimizer steps, data ``E = B S``
in examples. ``eta`` is the fixed (stable-phase) learning rate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from dbs_theory.theory import numeric
from dbs_theory.messages import num

from . import _kernels
from .nqm import NQM

__all__ = ["steps_to_target", "bmin", "bopt", "tuned_steps", "loss_at_steps"]


def _mode_arrays(nqm: NQM, eta: float, B: float):
    """Per-mode weights, floors, transients and log-contractions at (eta, B)."""
    w = 0.5 * nqm.weights * nqm.h
    minf = numeric.stationary_moment(nqm.h, nqm.c, eta, B)
    return w, minf, nqm.m0 - minf, numeric.log_contraction(nqm.h, eta)


def loss_at_steps(nqm: NQM, eta: float, batch_size: float, steps) -> np.ndarray:
    """Expected loss after ``steps`` (integer or real) steps at fixed (eta, B), closed form."""
    w, minf, delta, loga = _mode_arrays(nqm, eta, batch_size)
    t = np.asarray(steps, float)[..., None]
    with np.errstate(invalid="ignore"):
        e = np.where(np.isneginf(loga), (t == 0).astype(float), np.exp(t * loga))
    return nqm.L_irr + np.sum(w * (minf + e * delta), axis=-1)


def _first_hit_mixed(nqm, eta, B, target):
    """First hitting time when some mode starts below its floor (loss may dip, then rise).

    Branch and bound over integer steps: on ``[lo, hi]`` the loss is at least
    ``floor + P(hi) + N(lo)``, where ``P`` (modes above their floor, falling)
    and ``N`` (modes below it, rising toward 0) bound it; intervals whose
    bound exceeds the target are skipped, the rest split, leftmost first.
    """
    w, minf, delta, loga = _mode_arrays(nqm, eta, B)
    floor = nqm.L_irr + np.sum(w * minf)
    pos, neg = delta > 0, delta < 0
    L = lambda n: float(loss_at_steps(nqm, eta, B, n))
    part = lambda n, mask: (
        float(np.sum((w * delta * np.exp(n * np.where(mask, loga, 0)))[mask]))
        if n > 0
        else float(np.sum((w * delta)[mask]))
    )
    if L(0) <= target:
        return 0.0
    T = 1.0
    while T < 2**62:
        if target < floor and floor + part(T, neg) > target:
            break  # N only rises from here: no hit beyond T
        if target >= floor and L(T) <= target:
            break
        T *= 2.0
    stack = [(1.0, T)]
    while stack:
        lo, hi = stack.pop()
        if floor + part(hi, pos) + part(lo, neg) > target:
            continue
        if hi - lo <= 64:
            n = np.arange(lo, hi + 1)
            hits = np.nonzero(loss_at_steps(nqm, eta, B, n) <= target)[0]
            if hits.size:
                k = float(n[hits[0]])
                prev, nxt = L(k - 1), L(k)
                return (k - 1) + (prev - target) / (prev - nxt)
            continue
        mid = math.floor(0.5 * (lo + hi))
        stack += [(mid + 1, hi), (lo, mid)]  # left half popped first
    return math.inf


def steps_to_target(nqm: NQM, eta: float, batch_size, target):
    """First hitting time ``S`` (steps) of ``target`` at fixed ``eta`` and batch.

    docs/conventions.md, "First hitting time": the first integer step ``n`` with ``L(n) <= target``,
    then linear interpolation on ``[n-1, n]``; ``inf`` if never reached,
    ``0`` if the initial loss already meets it. The integer is found by a
    bracketing search on the closed form, never by stepping.

    When every ``m0_i >= m_inf_i(B)`` the loss falls monotonically and
    ``S = inf`` exactly when ``target <= L_floor(B)``. Otherwise some modes
    rise toward their floor while others fall, the loss can dip under the
    floor and rise again, and a target below the floor can be hit during
    the dip; a branch-and-bound search finds that first hit.

    Parameters
    ----------
    nqm : NQM
    eta : float
        Learning rate, ``0 < eta*h_max < 2``.
    batch_size : float or array_like
        Batch size(s) in examples.
    target : float or array_like
        Target loss(es); broadcast against ``batch_size``.

    Returns
    -------
    float or ndarray
        Steps, broadcast shape of ``batch_size`` and ``target``.
    """
    nqm.check_stable(eta)
    B, T = np.broadcast_arrays(np.asarray(batch_size, float), np.asarray(target, float))
    if np.any(~(B > 0)):
        raise ValueError(f"batch_size must be positive; got {num(batch_size)}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"target must be finite; got {num(target)}")
    out = np.empty(B.shape)
    uB, iB = np.unique(B, return_inverse=True)
    uT, iT = np.unique(T, return_inverse=True)
    iB, iT = iB.reshape(B.shape), iT.reshape(B.shape)
    minf = numeric.stationary_moment(nqm.h, nqm.c[None, :], eta, uB[:, None])
    monotone = np.all(nqm.m0 >= minf, axis=1)
    # One kernel call over the grid of distinct (batch, target) values; parallel over batches.
    grid = np.empty((uB.size, uT.size))
    kernel = _kernels.frontier_kernel if uB.size > 1 else _kernels.frontier_kernel_serial
    kernel(nqm.h, nqm.c, nqm.m0, nqm.weights, float(eta), uB, uT, nqm.L_irr, grid)
    for b in np.nonzero(~monotone)[0]:
        for k in range(uT.size):
            grid[b, k] = _first_hit_mixed(nqm, eta, float(uB[b]), float(uT[k]))
    out = grid[iB, iT]
    return out[()] if out.ndim == 0 else out


def bmin(nqm: NQM, eta: float, target):
    """Asymptotic ``Bmin`` (examples): the batch whose loss floor equals ``target``.

    Delegates to :func:`dbs_theory.theory.numeric.bmin` with the counts folded into
    ``c`` (the floor is linear in ``c``). Valid for this ``eta`` only.
    """
    nqm.check_stable(eta)
    return numeric.bmin(nqm.h, nqm.c * nqm.weights, eta, target, nqm.L_irr)


def argmin_log(fun, lo, hi, n=48, xtol=1e-8):
    """Minimise ``fun(x)`` over ``x`` in ``[lo, hi]`` (log-spaced grid, then bounded Brent)."""
    x = np.geomspace(lo, hi, n)
    y = np.array([fun(v) for v in x])
    k = int(np.argmin(y))
    a, b = np.log(x[max(k - 1, 0)]), np.log(x[min(k + 1, n - 1)])
    res = optimize.minimize_scalar(
        lambda lx: fun(math.exp(lx)), bounds=(a, b), method="bounded", options={"xatol": xtol}
    )
    return (math.exp(res.x), float(res.fun)) if res.fun <= y[k] else (float(x[k]), float(y[k]))


def _loss_coefficients(nqm: NQM, eta: float):
    """A function of whole ``steps`` giving ``(G, beta)``: the loss there at batch ``B`` is ``L_irr + G + beta / B``.

    ``G`` is the noise-free excess loss, ``beta`` the noise term times ``B``
    (examples); one kernel call covers every step asked for (integers ``>= 0``).
    """
    w = 0.5 * nqm.weights * nqm.h
    args = (w * nqm.m0, w * numeric.stationary_moment(nqm.h, nqm.c, eta, 1.0), numeric.log_contraction(nqm.h, eta))

    def coef(steps):
        n = np.atleast_1d(np.asarray(steps, float))
        out = np.empty((2, n.size))
        _kernels.loss_coefficients(*args, n, out)
        return out[0], out[1]

    return coef


def _breakpoints(coef, excess, steps):
    """Batch sizes ``B_n`` (examples) from which the target is met by step ``n`` (``inf``: never)."""
    G, beta = coef(steps)
    gap = excess - G
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, beta / np.where(gap > 0, gap, 1.0), np.inf), G, beta


def _argmin_steps(data, cap=2.0**62):
    """Whole step count ``n >= 1`` minimising ``data(n)``, unimodal with ``inf`` to the left.

    Doubling finds a bracket ``a < x < b`` with ``data(x)`` below both ends, then
    golden sections over the integers shrink it to ``b - a = 2``. ``None`` past ``cap``.
    """
    a, x, fx = 0, 1, data(1)
    while True:
        b = 2 * x
        fb = data(b)
        if math.isfinite(fx) and fb >= fx:
            break
        if b > cap:
            return None
        a, x, fx = x, b, fb
    while b - a > 2:
        left = x - a >= b - x
        y = x - max(1, int(0.381966 * (x - a))) if left else x + max(1, int(0.381966 * (b - x)))
        fy = data(y)
        if fy < fx:
            a, b = (a, x) if left else (x, b)
            x, fx = y, fy
        elif left:
            a = y
        else:
            b = y
    return x


def _piece_data(n, B, G, beta, excess):
    """Data ``B S(B)`` (examples) at batches ``B`` whose first hit is at step ``n``.

    ``G``/``beta`` hold the coefficients at steps ``n-1`` and ``n``; ``S`` is the
    interpolated hitting time ``(n-1) + (L(n-1) - L*)/(L(n-1) - L(n))``.
    """
    p, dg, db = G[0] - excess, G[0] - G[1], beta[0] - beta[1]
    return B * (n - 1) + B * (p * B + beta[0]) / (dg * B + db)


def _piece_minimum(n, ends, G, beta, excess):
    """Least-data batch (examples) on piece ``n``: ``ends`` or a root of ``dE/dB = 0`` between them.

    ``dE/dB = 0`` is the quadratic ``K dG B^2 + 2 K dbeta B + dbeta ((n-1) dbeta + beta_{n-1}) = 0``
    with ``K = (n-1) dG + G_{n-1} - (L* - L_irr)``.
    """
    dg, db = G[0] - G[1], beta[0] - beta[1]
    K = (n - 1) * dg + G[0] - excess
    A, Bq, C = K * dg, 2 * K * db, db * ((n - 1) * db + beta[0])
    cand = list(ends)
    disc = Bq * Bq - 4 * A * C
    if A != 0 and disc >= 0:
        q = -0.5 * (Bq + math.copysign(math.sqrt(disc), Bq))
        cand += [r for r in (q / A, C / q if q else math.nan) if ends[0] < r < ends[1]]
    E = _piece_data(n, np.array(cand), G, beta, excess)
    k = int(np.argmin(E))
    return float(cand[k]), float(E[k])


def _bopt_breakpoints(nqm, eta, target, lo, hi):
    """:func:`bopt` in closed form when every mode falls toward its floor; ``None`` otherwise.

    At a whole step ``n`` the loss is ``L_irr + G_n + beta_n / B``, so the batch
    that first meets ``L*`` at step ``n`` is ``B_n = beta_n / (L* - L_irr - G_n)``.
    The data ``n B_n`` at these breakpoints is minimised over ``n`` (doubling, then
    golden sections, one kernel pass of the modes per step tried); between
    breakpoints ``E(B)`` is a ratio of quadratics, minimised exactly on the two
    pieces beside the best one (clipped to ``[lo, hi]``). ``None`` (use
    :func:`_bopt_scan`) when a mode starts below its floor at ``lo``, or the
    best breakpoint lies outside ``[lo, hi]``.
    """
    if not np.all(nqm.m0 >= numeric.stationary_moment(nqm.h, nqm.c, eta, lo)):
        return None
    excess = target - nqm.L_irr
    coef = _loss_coefficients(nqm, eta)
    n = _argmin_steps(lambda k: k * float(_breakpoints(coef, excess, [k])[0][0]))
    if n is None:
        return None
    Bn, G, beta = _breakpoints(coef, excess, [n - 1, n, n + 1])
    if not lo <= Bn[1] <= hi:
        return None  # the optimum lies on the search's edge
    pieces = [(k, (max(Bn[j + 1], lo), min(Bn[j], hi)), slice(j, j + 2)) for j, k in ((0, n), (1, n + 1))]
    best = min(
        (_piece_minimum(k, ends, G[sl], beta[sl], excess) for k, ends, sl in pieces if ends[0] <= ends[1]),
        key=lambda r: r[1],
    )
    return best[0]


def _bopt_scan(nqm, eta, target, lo, hi):
    """Reference :func:`bopt` search: ``E = B S(B)`` one batch per kernel call.

    A 48-point log grid over ``[lo, hi]`` then a bounded Brent search in ``log B``
    to ``1e-8``; about 70 calls of :func:`steps_to_target`. Used where the closed
    form does not apply, and by ``benchmarks/bench_sim.py`` as the baseline.
    """
    data = lambda B: B * float(steps_to_target(nqm, eta, B, target))
    return argmin_log(data, lo, hi)[0]


def bopt(nqm: NQM, eta: float, target: float):
    """``Bopt`` (examples): the real batch ``B > Bmin`` minimising data ``E = B S(B)``.

    Searched over ``(Bmin, 10^5 Bmin]``. When every mode falls toward its
    floor (the usual case) the minimum is found in closed form from the
    breakpoints ``B_n`` where the first hit moves from step ``n+1`` to ``n``
    (see :func:`_bopt_breakpoints`); otherwise a 48-point log grid and a
    bounded Brent search in ``log B`` to relative ``1e-8`` (``E`` itself is
    flat at the optimum) find it.

    Returns
    -------
    float
    """
    L0 = nqm.initial_loss()
    if not nqm.L_irr < target < L0:
        raise ValueError(
            f"target={target:g} must lie between the loss floor L_irr={nqm.L_irr:g} and the "
            f"initial loss {L0:.6g}: every batch starts below a higher target"
        )
    b0 = float(bmin(nqm, eta, target))
    lo, hi = b0 * (1 + 1e-6), b0 * 1e5
    got = _bopt_breakpoints(nqm, eta, target, lo, hi)
    return _bopt_scan(nqm, eta, target, lo, hi) if got is None else got


def tuned_steps(nqm: NQM, batch_size: float, target: float, eta_range=None):
    """Steps to target with the learning rate re-optimised for this (batch, target).

    A bounded 1-D search in ``log eta`` over ``eta_range`` (default
    ``(1e-4, 1.999) / h_max``, the stable range), as McCandlish's law assumes.

    Returns
    -------
    (float, float)
        ``(S, eta)``: least steps and the rate that achieves it.
    """
    hmax = float(nqm.h.max())
    lo, hi = eta_range or (1e-4 / hmax, 1.999 / hmax)
    floor = lambda e: (
        nqm.L_irr
        if math.isinf(batch_size)
        else float(numeric.loss_floor(nqm.h, nqm.c * nqm.weights, e, batch_size, nqm.L_irr))
    )
    floor_ok = lambda e: floor(e) < target
    # The floor grows with eta; cap the search where the target stays reachable.
    if not floor_ok(lo):
        return math.inf, math.nan
    if not floor_ok(hi):
        hi = optimize.brentq(lambda e: floor(e) - target, lo, hi) * (1 - 1e-9)
    eta, S = argmin_log(lambda e: float(steps_to_target(nqm, e, batch_size, target)), lo, hi, n=24, xtol=1e-6)
    return S, eta
