"""Estimators of ``Bopt`` and ``Bmin`` that a real batch-size sweep can identify.

The three-phase E(S) fit can reach R^2 = 0.9999 with ``Bmin`` off by 100x
(a good fit is not a measurement). The two estimators here need no E(S)
fit and say when the data cannot pin a value down.

``envelope_bopt``
    By the equivalence of the two views of a sweep (the batch that reaches a
    target with the least data is the batch with the lowest loss at that
    much data), ``Bopt`` at the target ``L*(D) = min_B L_B(D)`` is the batch
    that minimises the loss at data ``D``. It is read off the runs directly:
    the best grid batch and its two neighbours, a parabola in ``log B``. When
    the best batch is the smallest or largest that reached ``D``, ``Bopt``
    lies beyond the grid: not identified, and the grid edge is the bound.

``floor_bmin``
    A constant-LR run approaches a loss floor; on the noisy quadratic model
    the floor is ``L_irr + K / B`` exactly (``m_inf`` is proportional to
    ``1/B``; see ``dbs derive nqm_mode``). A run whose curve has flattened
    gives its floor; the floors across batches are fitted by
    ``L_floor(B) = L_inf + K / B^gamma``, and ``Bmin(L*)`` -- the smallest
    batch whose floor is below ``L*`` -- is its inverse. Runs still
    descending give no floor (they are not extrapolated).

Units: ``data`` and batch sizes in the logs' unit (tokens or examples).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .runs import smooth

__all__ = ["EnvelopeBopt", "FloorBmin", "envelope_bopt", "floor_bmin", "loss_at", "tail_floor"]


@dataclass(frozen=True)
class EnvelopeBopt:
    """``Bopt(D)`` read off the lower envelope of the runs' loss-vs-data curves.

    Attributes (arrays aligned with ``data``)
    ----------
    data : data amounts asked for.
    bopt : the loss-minimising batch (NaN where not identified).
    lo, hi : interval bounds (a 90% bootstrap interval where identified; where
        not, the one-sided bound: ``lo`` = the largest grid batch when the optimum
        lies above the grid, ``hi`` = the smallest when below, NaN otherwise).
    loss : the envelope loss ``min_B L_B(D)`` (the target at which ``bopt`` is Bopt).
    identified : bool.
    reason : '' where identified, else why not.
    """

    data: np.ndarray
    bopt: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    loss: np.ndarray
    identified: np.ndarray
    reason: list


@dataclass(frozen=True)
class FloorBmin:
    """``Bmin(L*)`` from the runs' loss floors.

    Attributes (arrays aligned with ``targets``)
    ----------
    targets, bmin, lo, hi, identified, reason : as in :class:`EnvelopeBopt`.
    law : dict
        ``L_inf``, ``K``, ``gamma`` of ``L_floor(B) = L_inf + K / B^gamma``, and
        ``floors``: ``{batch: floor}`` of the runs whose floor was identified.
    """

    targets: np.ndarray
    bmin: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    identified: np.ndarray
    reason: list
    law: dict


def loss_at(run, data, smoothing="centered", window=0.02, curve=None):
    """The run's smoothed loss at each amount of ``data`` (linear in log data); NaN outside its log."""
    tok = run.tokens
    ok = tok > 0
    c = smooth(run.loss, smoothing, window) if curve is None else curve
    D = np.asarray(data, float)
    return _at(np.log(D), np.log(tok[ok]), c[ok])


def _at(log_data, log_tokens, curve):
    return _at_rows(log_data, log_tokens, np.asarray(curve, float)[None, :])[0]


def _vertex(x, y):
    """Abscissa and value of the parabola's vertex through three points (x increasing)."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    d = (x1 - x0) * (x2 - x1) * (x2 - x0)
    a = ((y2 - y1) * (x1 - x0) - (y1 - y0) * (x2 - x1)) / d
    if not a > 0:
        return x1, y1
    b = (y1 - y0) / (x1 - x0) - a * (x0 + x1)
    xv = min(max(-b / (2 * a), x0), x2)
    return xv, a * xv**2 + b * xv + (y1 - a * x1**2 - b * x1)


def _cubic_min(x, y, k):
    """Minimum of the cubic through the best point ``k``, its neighbours, and the next point on the
    lower side, searched between the neighbours; a parabola when no fourth point exists."""
    lower = k - 2 if y[k - 1] < y[k + 1] else k + 2
    if not 0 <= lower < x.size:
        return _vertex(x[k - 1:k + 2], y[k - 1:k + 2])
    idx = sorted((k - 1, k, k + 1, lower))
    coef = np.polyfit(x[idx] - x[k], y[idx], 3)
    g = np.linspace(x[k - 1], x[k + 1], 257)
    v = np.polyval(coef, g - x[k])
    i = int(np.argmin(v))
    return g[i], float(v[i])


def _envelope(L, logB):
    """``(bopt, loss, code)`` per column of ``L`` (batches x data): code 0 ok, -1 below, 1 above, 2 none.

    The minimum is located on a cubic in ``log B`` through the best grid
    batch, its two neighbours and the next batch on the lower side, searched
    between the neighbours: on a 2x grid this is several times closer than a
    parabola through three points, because loss-vs-log-B is skewed (steep
    toward small batches, flat toward large ones).
    """
    n = L.shape[1]
    bopt, loss, code = np.full(n, np.nan), np.full(n, np.nan), np.full(n, 2)
    for j in range(n):
        have = np.nonzero(np.isfinite(L[:, j]))[0]
        if have.size < 3:
            continue
        x, y = logB[have], L[have, j]
        k = int(np.argmin(y))
        loss[j] = y[k]
        if k == 0 or k == have.size - 1:
            code[j] = -1 if k == 0 else 1
            continue
        xv, yv = _cubic_min(x, y, k)
        bopt[j], loss[j], code[j] = np.exp(xv), min(yv, loss[j]), 0
    return bopt, loss, code


def envelope_bopt(runs, data, smoothing="centered", window=0.02, bootstrap=200, seed=0, level=0.9):
    """``Bopt(D)`` at each ``D`` in ``data``: the batch with the lowest smoothed loss at ``D``.

    Only runs whose log reaches ``D`` compete at ``D``. The minimum is
    located continuously in ``log B`` by a parabola through the best grid
    batch and its neighbours. Intervals: a moving-block bootstrap of each
    run's residuals around its smoothed curve (blocks of the smoothing
    window), the estimate recomputed on every resample; ``level`` is the
    two-sided coverage. Runs at the same batch size (seeds) are averaged first.

    Returns
    -------
    EnvelopeBopt
    """
    data = np.atleast_1d(np.asarray(data, float))
    batches = np.array(sorted({r.batch_size for r in runs}))
    if batches.size < 3:
        raise ValueError(f"need runs at >= 3 batch sizes to locate a minimum; got {batches.size}")
    groups = [[r for r in runs if r.batch_size == b] for b in batches]
    curves = [[smooth(r.loss, smoothing, window) for r in g] for g in groups]
    L = _loss_matrix(groups, curves, data, smoothing, window)
    logB = np.log(batches)
    bopt, loss, code = _envelope(L, logB)
    lo, hi = np.full(data.size, np.nan), np.full(data.size, np.nan)
    if bootstrap:
        boots = _bootstrap_envelope(groups, curves, data, logB, smoothing, window, bootstrap, seed)
        q = (1 - level) / 2
        ok = code == 0
        lo[ok], hi[ok] = _quantiles(boots[:, ok], q)
    have = np.isfinite(L)
    lo = np.where(code == 1, [batches[h].max() if h.any() else np.nan for h in have.T], lo)
    hi = np.where(code == -1, [batches[h].min() if h.any() else np.nan for h in have.T], hi)
    reasons = {0: "", -1: "the smallest batch that reached this data is best: Bopt lies below the grid",
               1: "the largest batch that reached this data is best: Bopt lies above the grid",
               2: "fewer than 3 batch sizes reached this data"}
    return EnvelopeBopt(data, bopt, lo, hi, loss, code == 0, [reasons[int(c)] for c in code])


def _loss_matrix(groups, curves, data, smoothing, window):
    """Mean smoothed loss at each ``data`` per batch size (rows), NaN where a run's log does not reach."""
    L = np.empty((len(groups), data.size))
    for i, (g, cs) in enumerate(zip(groups, curves)):
        with np.errstate(all="ignore"):
            L[i] = np.mean([loss_at(r, data, curve=c) for r, c in zip(g, cs)], axis=0)
    return L


def _bootstrap_envelope(groups, curves, data, logB, smoothing, window, n, seed):
    """``(n, data)`` envelope Bopt of ``n`` block-bootstrap resamples, all resamples of a run at once."""
    rng = np.random.default_rng(seed)
    log_data = np.log(data)
    L = np.empty((n, len(groups), data.size))
    for i, (g, cs) in enumerate(zip(groups, curves)):
        vals = []
        for r, c in zip(g, cs):
            e = r.loss - c
            block = min(e.size, max(2, int(window if window >= 1 else round(window * e.size))))
            starts = rng.integers(0, e.size - block + 1, size=(n, e.size // block + 1))
            idx = (starts[:, :, None] + np.arange(block)).reshape(n, -1)[:, :e.size]
            ok = r.tokens > 0
            noisy = smooth(c[None, :] + e[idx], smoothing, window)[:, ok]
            vals.append(_at_rows(log_data, np.log(r.tokens[ok]), noisy))
        L[:, i] = np.mean(vals, axis=0)
    return np.array([_envelope(L[b], logB)[0] for b in range(n)])


def _at_rows(log_data, log_tokens, curves):
    """:func:`_at` for a stack of curves on the same data axis: weights computed once."""
    j = np.clip(np.searchsorted(log_tokens, log_data), 1, log_tokens.size - 1)
    x0, x1 = log_tokens[j - 1], log_tokens[j]
    w = np.clip((log_data - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0, 1.0)
    out = curves[:, j - 1] * (1 - w) + curves[:, j] * w
    inside = (log_data >= log_tokens[0]) & (log_data <= log_tokens[-1])
    return np.where(inside, out, np.nan)


def tail_floor(run, smoothing="centered", window=0.02, tail=0.2, flat=0.01):
    """``(floor, identified)``: the loss a constant-LR run has settled at, if it has.

    The run has reached its floor when its smoothed loss changed by at most
    ``flat`` (relative) over the last ``tail`` of its data range in log scale;
    the floor is then the mean raw loss over that tail (not the smoothed
    curve's end: its running minimum sits below the mean of a noisy log). A
    run still descending gives no floor: extrapolating a
    descending curve to its asymptote is what made the E(S) fit's ``Bmin``
    unidentifiable.
    """
    c = smooth(run.loss, smoothing, window)
    ok = run.tokens > 0
    D, c = run.tokens[ok], c[ok]
    if D.size < 8:
        return np.nan, False
    lD = np.log(D)
    k = int(np.searchsorted(lD, lD[-1] - tail * (lD[-1] - lD[0])))
    end = float(c[-1])
    change = (c[k] - end) / abs(end) if end else np.inf
    return float(np.mean(run.loss[ok][k:])), bool(c.size - k >= 4 and change <= flat)


def _fit_floor_law(B, F, gamma=None):
    """``(L_inf, K, gamma)`` of ``F = L_inf + K / B^gamma`` by least squares, or ``None``.

    For each ``gamma`` on a grid (or the given one) the model is a straight
    line in ``x = B^-gamma``, solved in closed form for all ``gamma`` at once;
    the ``gamma`` with the least squared error and ``K > 0`` wins.
    """
    g = np.array([gamma]) if gamma is not None else np.linspace(0.2, 2.0, 181)
    x = B[None, :] ** -g[:, None]
    xm, fm = x.mean(axis=1, keepdims=True), F.mean()
    var = ((x - xm) ** 2).sum(axis=1)
    with np.errstate(all="ignore"):
        K = ((x - xm) * (F - fm)).sum(axis=1) / var
    L_inf = fm - K * xm[:, 0]
    sse = ((L_inf[:, None] + K[:, None] * x - F) ** 2).sum(axis=1)
    sse[~(K > 0) | ~np.isfinite(sse)] = np.inf
    i = int(np.argmin(sse))
    return None if not np.isfinite(sse[i]) else (float(L_inf[i]), float(K[i]), float(g[i]))


def floor_bmin(runs, targets, smoothing="centered", window=0.02, bootstrap=200, seed=0, level=0.9):
    """``Bmin(L*)`` at each target: the batch whose loss floor equals ``L*``.

    Each run's floor comes from :func:`tail_floor`; floors are fitted across
    batches by ``L_inf + K / B^gamma`` (``gamma`` free with >= 4 identified
    floors, else fixed at the NQM's 1) and inverted. A target at or below
    ``L_inf`` has no ``Bmin`` (no batch reaches it). Intervals: a bootstrap
    over the identified floors (resampled batches, the law refitted).

    Returns
    -------
    FloorBmin
    """
    targets = np.atleast_1d(np.asarray(targets, float))
    floors = {}
    for r in runs:
        f, ok = tail_floor(r, smoothing, window)
        if ok:
            floors.setdefault(r.batch_size, []).append(f)
    B = np.array(sorted(floors))
    F = np.array([np.mean(floors[b]) for b in B])
    n = targets.size
    empty = lambda why: FloorBmin(targets, np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                                  np.zeros(n, bool), [why] * n, dict(floors=dict(zip(B.tolist(), F.tolist()))))
    if B.size < 2:
        return empty(f"only {B.size} run(s) flattened enough to show a loss floor (need 2)")
    gamma = None if B.size >= 4 else 1.0
    law = _fit_floor_law(B, F, gamma)
    if law is None:
        return empty("the floors do not fall with the batch size")
    bmin = _invert(law, targets)
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if bootstrap and B.size >= 3:
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(bootstrap):
            i = rng.integers(0, B.size, B.size)
            if np.unique(B[i]).size < 2:
                continue
            fit = _fit_floor_law(B[i], F[i], gamma)
            if fit is not None:
                boots.append(_invert(fit, targets))
        if boots:
            q = (1 - level) / 2
            lo, hi = _quantiles(np.asarray(boots), q)
    ok = np.isfinite(bmin)
    reason = ["" if o else f"the target lies at or below the fitted floor L_inf = {law[0]:.4g}" for o in ok]
    return FloorBmin(targets, bmin, lo, hi, ok, reason,
                     dict(L_inf=law[0], K=law[1], gamma=law[2], floors=dict(zip(B.tolist(), F.tolist()))))


def _quantiles(draws, q):
    """``(q, 1 - q)`` quantiles of bootstrap draws per column; NaN where every draw failed (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is a valid "no interval"
        return np.nanquantile(draws, q, axis=0), np.nanquantile(draws, 1 - q, axis=0)


def _invert(law, targets):
    L_inf, K, gamma = law
    with np.errstate(all="ignore"):
        return np.where(targets > L_inf, (K / (targets - L_inf)) ** (1 / gamma), np.nan)
