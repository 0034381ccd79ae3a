"""Estimators of ``Bopt`` and ``Bmin`` that a real batch-size sweep can identify.

The three-phase E(S) fit can reach R^2 = 0.9999 with ``Bmin`` off by 100x
(a good fit is not a measurement). The two estimators here need no E(S)
fit and say when the data cannot pin a value down.

``envelope_bopt``
    By the equivalence of the two views of a sweep (the batch that reaches a
    target with the least data is the batch with the lowest loss at that
    much data), ``Bopt`` at the target ``L*(D) = min_B L_B(D)`` is the batch
    that minimises the loss at data ``D``. It is read off the runs directly:
    a cubic in ``log B`` through the best grid batch, its neighbours and the
    next batch on the lower side. When the best batch is the smallest or
    largest that reached ``D``, ``Bopt`` lies beyond the grid: not
    identified, and the grid edge is the bound; when a neighbour is more than
    2x away, ``Bopt`` is bracketed by the neighbours, not located.

``floor_bmin`` (:mod:`dbs_theory.measure.floors`, re-exported here)
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

from dataclasses import dataclass
from typing import Any

import numpy as np

from .curves import MIN_ROWS, WINDOW, LogSums, local_line, smooth, window_rows
from .floors import FloorBmin, draw_quantiles, floor_bmin, tail_floor  # noqa: F401 (re-exported)

__all__ = [
    "MAX_GAP",
    "EnvelopeBopt",
    "FloorBmin",
    "envelope_bopt",
    "floor_bmin",
    "line_se",
    "loss_at",
    "reaches",
    "tail_floor",
]


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
    loss_lo, loss_hi : interval of the envelope loss (NaN without bootstrap); reading
        ``Bopt`` at a target loss needs it, since a noisy envelope meets the target
        at an uncertain ``D``.
    few_rows : the best batch's smoothed loss at ``D`` rests on raw rows (fewer
        than :data:`dbs_theory.measure.curves.MIN_ROWS` in the smoothing window).
    batches, by_batch : the batch sizes of the sweep and each one's mean smoothed
        loss at each ``D`` (batches x data; NaN where its runs do not reach ``D``).
    mean_by_batch : the same without the running minimum: each run's local line in
        ``log D`` (:func:`dbs_theory.measure.curves.local_line`), an unbiased reading of its
        expected loss. The running minimum of a noisy curve sits below it (by 4x at
        batch 1 of a one-seed NQM sweep near its floor); a model of the expected loss
        (:mod:`dbs_theory.theory.calibrate`) is fitted to this one.
    log_gap : the runs' median last logging interval, data units (NaN for one-row runs): a horizon within
        it of the sweep's end is the sweep's end (:func:`dbs_theory.rules.envelope.past_measured`).
    """

    data: np.ndarray
    bopt: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    loss: np.ndarray
    identified: np.ndarray
    reason: list
    loss_lo: np.ndarray | None = None
    loss_hi: np.ndarray | None = None
    few_rows: np.ndarray | None = None
    batches: np.ndarray | None = None
    by_batch: np.ndarray | None = None
    mean_by_batch: np.ndarray | None = None
    log_gap: float = float("nan")

    def to_dict(self) -> dict:
        """JSON-ready columns (NaN as ``None``): what ``fit.json`` stores as its ``envelope``."""
        clean = lambda a: None if a is None else [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]
        out: dict[str, Any] = {
            k: clean(getattr(self, k)) for k in ("data", "bopt", "lo", "hi", "loss", "loss_lo", "loss_hi", "batches")
        }
        out["identified"] = [bool(v) for v in self.identified]
        out["reason"] = list(self.reason)
        for key in ("by_batch", "mean_by_batch"):
            rows = getattr(self, key)
            out[key] = None if rows is None else [clean(row) for row in rows]
        out["log_gap"] = float(self.log_gap) if np.isfinite(self.log_gap) else None
        return out


def loss_at(run, data, smoothing="centered", window=WINDOW, curve=None):
    """The run's smoothed loss at each amount of ``data`` (linear in log data); NaN outside its log.

    A run that stops less than one step (``batch_size``) short of ``D``
    counts as reaching it, at its last value: a sweep cut at a data budget
    ends at ``floor(budget / B)`` steps, just short of the budget for most
    ``B``, and must not lose those batches at the budget itself.
    """
    tok = run.tokens
    ok = tok > 0
    c = smooth(tok, run.loss, smoothing, window) if curve is None else curve
    D = np.asarray(data, float)
    if ok.sum() < 2:
        return np.full(D.shape, np.nan)
    return _at_rows(np.log(D), np.log(tok[ok]), np.asarray(c, float)[None, ok], _slack(run))[0]


def reaches(run, data):
    """Whether ``run``'s log reaches ``data`` (within one step, as :func:`loss_at` counts it)."""
    return float(data) <= float(run.tokens[-1]) + run.batch_size


def _slack(run):
    """Log-data by which a run's last record may fall short of a ``D`` it counts as reaching (one step)."""
    last = float(run.tokens[-1])
    return float(np.log1p(run.batch_size / last)) if last > 0 else 0.0


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
        return _vertex(x[k - 1 : k + 2], y[k - 1 : k + 2])
    return _cubic_argmin(x, y, sorted((k - 1, k, k + 1, lower)), x[k - 1], x[k + 1])


def _cubic_argmin(x, y, idx, a, b):
    """``(x, value)`` at the minimum over ``[a, b]`` of the cubic through the points ``idx``: the
    interpolating cubic solved exactly, its minimum at a root of the derivative or an end."""
    x0 = x[idx[1]]
    t = x[idx] - x0
    c0, c1, c2, c3 = np.linalg.solve(np.vander(t, 4, increasing=True), y[idx])
    cand = [a - x0, b - x0]
    if c3 != 0:
        disc = c2 * c2 - 3 * c3 * c1
        if disc >= 0:
            r = np.sqrt(disc)
            cand += [(-c2 + r) / (3 * c3), (-c2 - r) / (3 * c3)]
    elif c2 != 0:
        cand.append(-c1 / (2 * c2))
    cand = [u for u in cand if a - x0 <= u <= b - x0]
    vals = [c0 + u * (c1 + u * (c2 + u * c3)) for u in cand]
    i = int(np.argmin(vals))
    return cand[i] + x0, float(vals[i])


#: the widest ratio between the best batch and a neighbour at which Bopt counts as located
#: (a 2x grid locates it within 10% on the NQM: tests/test_estimators.py)
MAX_GAP = 2.0


#: batches closer than this factor are pooled (mean log B, mean loss) before the minimum is located:
#: a cubic through two nearly equal batches extrapolates wildly
POOL = 2**0.125


def _thin(x, y):
    """Pool runs of neighbours in sorted ``x`` (log B) that lie within ``log(POOL)`` of a group's first."""
    if x.size < 2 or np.min(np.diff(x)) >= np.log(POOL):
        return x, y
    group = np.zeros(x.size, int)
    start = x[0]
    for i in range(1, x.size):
        new = x[i] - start >= np.log(POOL)
        group[i] = group[i - 1] + new
        start = x[i] if new else start
    n = group[-1] + 1
    count = np.bincount(group, minlength=n)
    return np.bincount(group, x, n) / count, np.bincount(group, y, n) / count


def _envelope(L, logB):
    """``(bopt, loss, code)`` per column of ``L`` (batches x data): code 0 ok, -1 below, 1 above,
    2 none, 3 the neighbours of the best batch are more than :data:`MAX_GAP` away.

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
        x, y = _thin(logB[have], L[have, j])
        if x.size < 3:
            continue
        k = int(np.argmin(y))
        loss[j] = y[k]
        if k == 0 or k == x.size - 1:
            code[j] = -1 if k == 0 else 1
            continue
        if max(x[k] - x[k - 1], x[k + 1] - x[k]) > np.log(MAX_GAP) + 1e-9:
            code[j] = 3
            continue
        xv, yv = _cubic_min(x, y, k)
        bopt[j], loss[j], code[j] = np.exp(xv), min(yv, loss[j]), 0
    return bopt, loss, code


def envelope_bopt(runs, data, smoothing="centered", window=WINDOW, bootstrap=200, seed=0, level=0.9):
    """``Bopt(D)`` at each ``D`` in ``data``: the batch with the lowest smoothed loss at ``D``.

    Only runs whose log reaches ``D`` (within one step) compete at ``D``; runs
    at the same batch size (seeds) are averaged first, and batches within
    ``POOL`` of each other pooled. The minimum is located continuously in
    ``log B`` (:func:`_envelope`). Intervals (``level`` two-sided): the
    bootstrap of :func:`_bootstrap_envelope` (each run's smoothed loss at ``D``
    redrawn from its standard error, plus the smoothed curve's slow wander),
    widened by the grid's interpolation spread (:func:`_interpolation_spread`).

    Returns
    -------
    EnvelopeBopt
        ``few_rows`` marks the ``D`` where the best batch's smoothed loss rests
        on fewer than :data:`dbs_theory.measure.curves.MIN_ROWS` logged rows (raw rows).
    """
    data = np.atleast_1d(np.asarray(data, float))
    batches = np.array(sorted({r.batch_size for r in runs}))
    if batches.size < 3:
        raise ValueError(f"need runs at >= 3 batch sizes to locate a minimum; got {batches.size}")
    groups = [[r for r in runs if r.batch_size == b] for b in batches]
    lines = [
        [local_line(r.tokens, r.loss, window)[0] if smoothing == "centered" else r.loss for r in g] for g in groups
    ]
    curves = [[np.minimum.accumulate(c) for c in cs] for cs in lines]
    L = _loss_matrix(groups, curves, data)
    logB = np.log(batches)
    bopt, loss, code = _envelope(L, logB)
    lo, hi = np.full(data.size, np.nan), np.full(data.size, np.nan)
    loss_lo, loss_hi = lo.copy(), hi.copy()
    if bootstrap:
        boots, boot_loss = _bootstrap_envelope(groups, lines, L, data, logB, window, bootstrap, seed)
        q = (1 - level) / 2
        ok = code == 0
        lo[ok], hi[ok] = draw_quantiles(boots[:, ok], q)
        loss_lo, loss_hi = draw_quantiles(boot_loss, q)
        spread = np.exp(_interpolation_spread(L, logB, bopt))
        lo, hi = np.minimum(lo, bopt) / spread, np.maximum(hi, bopt) * spread
    have = np.isfinite(L)
    lo = np.where(code == 1, [batches[h].max() if h.any() else np.nan for h in have.T], lo)
    hi = np.where(code == -1, [batches[h].min() if h.any() else np.nan for h in have.T], hi)
    for j in np.nonzero(code == 3)[0]:  # Bopt lies between the best batch's neighbours
        x, y = _thin(np.log(batches[have[:, j]]), L[have[:, j], j])
        k = int(np.argmin(y))
        lo[j], hi[j] = np.exp(x[k - 1]), np.exp(x[k + 1])
    reasons = {
        0: "",
        -1: "the smallest batch that reached this data is best: Bopt lies below the grid",
        1: "the largest batch that reached this data is best: Bopt lies above the grid",
        2: "fewer than 3 batch sizes reached this data",
        3: f"the batches around the minimum are more than {MAX_GAP:g}x apart: Bopt lies between the "
        "best batch's neighbours",
    }
    few = _few_rows(groups, L, data, window)
    mean = _loss_matrix(groups, lines, data) if smoothing == "centered" else None
    gaps = [float(r.tokens[-1] - r.tokens[-2]) for r in runs if r.tokens.size > 1]
    return EnvelopeBopt(
        data,
        bopt,
        lo,
        hi,
        loss,
        code == 0,
        [reasons[int(c)] for c in code],
        loss_lo,
        loss_hi,
        few,
        batches,
        L,
        mean,
        float(np.median(gaps)) if gaps else float("nan"),
    )


def _few_rows(groups, L, data, window):
    """Per ``D``: whether the best batch's smoothed loss there rests on fewer than ``MIN_ROWS`` rows."""
    best = np.where(np.isfinite(L).any(axis=0), np.argmin(np.where(np.isfinite(L), L, np.inf), axis=0), -1)
    few = np.zeros(data.size, bool)
    for i in np.unique(best[best >= 0]):
        sparse = np.zeros(data.size, bool)
        for r in groups[i]:
            lo, hi = window_rows(r.tokens, data, window)
            sparse |= hi - lo < MIN_ROWS
        few[best == i] = sparse[best == i]
    return few


def _loss_matrix(groups, curves, data):
    """Mean smoothed loss at each ``data`` per batch size (rows), NaN where a run's log does not reach."""
    L = np.empty((len(groups), data.size))
    for i, (g, cs) in enumerate(zip(groups, curves)):
        with np.errstate(all="ignore"):
            L[i] = np.mean([loss_at(r, data, curve=c) for r, c in zip(g, cs)], axis=0)
    return L


def _bootstrap_envelope(groups, lines, L, data, logB, window, n, seed):
    """``(n, data)`` envelope Bopt and envelope loss of ``n`` parametric resamples of the loss matrix.

    Each batch's mean smoothed loss at each ``D`` is redrawn from a normal
    law whose variance adds, per run, two errors: the standard error of the
    local line at ``D`` (:func:`line_se`: the scatter of the rows in the
    window, with the effective number of rows of AR(1)-correlated noise), and
    the smoothed curve's own wander at scales longer than the window, which
    the rows in one window cannot show (:func:`_slow_noise`). Both are
    measured in data, so a log's spacing does not change them. The grid's
    interpolation error is added afterwards (:func:`_interpolation_spread`).
    """
    rng = np.random.default_rng(seed)
    log_data = np.log(data)
    sd = np.zeros(L.shape)
    for i, (g, cs) in enumerate(zip(groups, lines)):
        var = np.zeros(data.size)
        for r, c in zip(g, cs):
            pos = r.tokens > 0
            slow = _slow_noise(np.log(r.tokens[pos]), np.minimum.accumulate(c)[pos], log_data)
            var += line_se(r.tokens, r.loss, data, window, fitted=c) ** 2 + slow**2
        sd[i] = np.sqrt(var) / len(g)
    draws = L[None] + sd[None] * rng.standard_normal((n, *L.shape))
    out = [_envelope(d, logB)[:2] for d in draws]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def line_se(tokens, loss, data, window=WINDOW, blocks=5, fitted=None):
    """Standard error of the smoothed loss (:func:`dbs_theory.measure.curves.local_line`) read at each ``D``.

    From the residuals of the rows around their smoothed values inside the
    window at ``D``, scaled by the leverage of ``D`` on a straight line in
    ``log D`` through those rows. Correlated noise counts: the larger of two
    readings of the mean's error, the effective number of rows of AR(1) noise
    (lag-one autocorrelation in the window, clipped to ``[0, 0.99]``) and the
    scatter of the means of ``blocks`` consecutive blocks of the window (which
    also sees correlation longer than one row, as an SGD run's loss has).
    Where the window holds fewer than ``MIN_ROWS`` rows the raw rows stand,
    and the error is one row's: the scatter of the ``2 MIN_ROWS`` nearest rows
    around a straight line in ``log D`` (curvature counts as noise there).
    ``fitted``: the rows' smoothed values, if already computed.
    """
    tokens, loss = np.asarray(tokens, float), np.asarray(loss, float)
    e = loss - (local_line(tokens, loss, window)[0] if fitted is None else fitted)
    lo, hi = window_rows(tokens, data, window)
    s = LogSums.of(tokens, loss)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.log(np.asarray(data, float)) - s.c
    _, n, xm, vxx = s.line(lo, hi, at)
    e2 = np.concatenate(([0.0], np.cumsum(e * e)))
    lag = np.concatenate(([0.0], np.cumsum(e[1:] * e[:-1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        ss = e2[hi] - e2[lo]
        last = np.minimum(np.maximum(hi - 1, lo), lag.size - 1)
        rho = np.clip((lag[last] - lag[np.minimum(lo, lag.size - 1)]) / ss, 0.0, 0.99)
        lever = n * (1 / n + np.where(vxx > 0, (at - xm) ** 2 / vxx, 0.0))
        ar1 = ss / np.maximum(n - 2, 1) / n * (1 + rho) / (1 - rho)
        se = np.sqrt(lever * np.maximum(ar1, _block_var(e, lo, hi, blocks)))
    near = np.sqrt(s.scatter(*_nearest(tokens, data, 2 * MIN_ROWS)))
    return np.where(n >= MIN_ROWS, np.nan_to_num(se), np.nan_to_num(near))


def _nearest(tokens, data, k):
    """``(lo, hi)``: about ``k`` rows with positive data around each ``D`` (fewer near a log's ends)."""
    first = int(np.searchsorted(tokens > 0, True))
    p = np.searchsorted(tokens, data)
    lo = np.clip(p - k // 2, first, None)
    return lo, np.clip(lo + k, None, tokens.size)


def _block_var(e, lo, hi, blocks):
    """Per window ``lo:hi``: the variance of the mean of ``e`` there, from the scatter of its block means."""
    ce = np.concatenate(([0.0], np.cumsum(e)))
    n = hi - lo
    edges = lo[:, None] + np.round(np.arange(blocks + 1)[None, :] * n[:, None] / blocks).astype(int)
    size = np.diff(edges, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.diff(ce[edges], axis=1) / size
        var = np.var(means, axis=1, ddof=1) / blocks
    return np.where(n >= 2 * blocks, var, 0.0)


def _slow_noise(log_tokens, curve, log_data, span=0.1):
    """Per ``D``: the noise of a smoothed curve at scales longer than the smoothing window.

    The smoothed loss still wanders at long scales (the loss of one SGD run
    is correlated over many steps), which residuals around it cannot show.
    Around each ``D`` a quadratic in ``log D`` is fitted to the smoothed
    curve over ``+/- span`` of the run's log-data range; the RMS of what it
    leaves is that noise (near 0 for an exact, smooth curve).
    """
    thin = max(1, log_tokens.size // 4000)  # the curve is smooth at this scale: a few thousand rows suffice
    log_tokens, curve = log_tokens[::-1][::thin][::-1], curve[::-1][::thin][::-1]
    w = span * (log_tokens[-1] - log_tokens[0])
    out = np.zeros(log_data.size)
    for j, x0 in enumerate(log_data):
        m = np.abs(log_tokens - x0) <= w
        if m.sum() < 8 or not log_tokens[0] <= x0 <= log_tokens[-1]:
            continue
        x, y = log_tokens[m] - x0, curve[m]
        out[j] = np.sqrt(np.mean((y - np.polyval(np.polyfit(x, y, 2), x)) ** 2))
    return out


def _interpolation_spread(L, logB, bopt):
    """Per column: how far (in log B) other readings of the same grid put the minimum.

    The alternatives: the parabola through the best batch and its
    neighbours, the cubic with its fourth point on the other side, and the
    estimate with each of the two nearest batches on either side left out
    (a jackknife over the grid: the error of a locally coarser grid, so an
    upper bound on this grid's). They agree as the grid is refined around
    the minimum, so the spread measures the grid's interpolation error
    (0 where ``bopt`` is not identified).
    """
    out = np.zeros(L.shape[1])
    for j in np.nonzero(np.isfinite(bopt))[0]:
        have = np.nonzero(np.isfinite(L[:, j]))[0]
        x, y = _thin(logB[have], L[have, j])
        k = int(np.argmin(y))
        alts = [_vertex(x[k - 1 : k + 2], y[k - 1 : k + 2])[0]]
        other = k + 2 if y[k - 1] < y[k + 1] else k - 2
        if 0 <= other < x.size:
            alts.append(_cubic_argmin(x, y, sorted((k - 1, k, k + 1, other)), x[k - 1], x[k + 1])[0])
        for drop in (k - 2, k - 1, k + 1, k + 2):
            if 0 <= drop < x.size and x.size > 3:
                keep = np.arange(x.size) != drop
                b, _, code = _envelope(y[keep, None], x[keep])
                if code[0] == 0:
                    alts.append(np.log(b[0]))
        out[j] = max(abs(a - np.log(bopt[j])) for a in alts)
    return out


def _at_rows(log_data, log_tokens, curves, slack=0.0):
    """Each curve (rows, on the axis ``log_tokens``) at ``log_data``, linear in log data: weights computed
    once; NaN outside the log, which may end ``slack`` short of ``log_data`` (the last value is used)."""
    j = np.clip(np.searchsorted(log_tokens, log_data), 1, log_tokens.size - 1)
    x0, x1 = log_tokens[j - 1], log_tokens[j]
    w = np.clip((log_data - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0, 1.0)
    out = curves[:, j - 1] * (1 - w) + curves[:, j] * w
    inside = (log_data >= log_tokens[0]) & (log_data <= log_tokens[-1] + slack)
    return np.where(inside, out, np.nan)
