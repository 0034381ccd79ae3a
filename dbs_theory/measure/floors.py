"""``floor_bmin``: ``Bmin`` from the loss floors that constant-LR runs approach.

On the noisy quadratic model a constant-LR run's floor is ``L_irr + K / B``
exactly (``m_inf`` is proportional to ``1/B``; see ``dbs derive nqm_mode``).
A run whose curve has flattened gives its floor (:func:`tail_floor`); the
floors across batches are fitted by ``L_floor(B) = L_inf + K / B^gamma``, and
``Bmin(L*)`` -- the smallest batch whose floor is below ``L*`` -- is its
inverse. Runs still descending give no floor (they are not extrapolated).
Units: batch sizes in the logs' unit (tokens or examples).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .curves import WINDOW, smooth

__all__ = ["FloorBmin", "floor_bmin", "tail_floor", "draw_quantiles", "FLOOR_REACH"]


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


def tail_floor(run, smoothing="centered", window=WINDOW, tail=0.2, flat=0.01):
    """``(floor, identified)``: the loss a constant-LR run has settled at, if it has.

    The run has reached its floor when its loss changed by at most ``flat``
    (relative) over the last ``tail`` of its data range in log scale, or by
    less than twice the noise of that change; the floor is then the mean raw
    loss over that tail (not the smoothed curve's end: its running minimum
    sits below the mean of a noisy log). A run still descending gives no
    floor: extrapolating a descending curve to its asymptote is what made the
    E(S) fit's ``Bmin`` unidentifiable. See :func:`_tail` for the floor's
    standard error.
    """
    floor, ok, _ = _tail(run, smoothing, window, tail, flat)
    return floor, ok


def _tail(run, smoothing, window, tail=0.2, flat=0.01):
    """``(floor, identified, se)``: :func:`tail_floor` with the floor's standard error.

    ``se`` combines the standard error of the tail mean (the scatter around
    a straight line in ``log D``, with the effective number of points of an
    AR(1) process, so correlated noise counts) with half the remaining
    change across the tail (a run that is nearly flat still sits a little
    above its floor).
    """
    c = smooth(run.tokens, run.loss, smoothing, window)
    ok = run.tokens > 0
    D, c, raw = run.tokens[ok], c[ok], run.loss[ok]
    if D.size < 8:
        return np.nan, False, np.nan
    lD = np.log(D)
    k = int(np.searchsorted(lD, lD[-1] - tail * (lD[-1] - lD[0])))
    v = raw[k:]
    if v.size < 4:
        return np.nan, False, np.nan
    floor = float(np.mean(v))
    x = lD[k:] - lD[k:].mean()
    noise = v - np.polyval(np.polyfit(x, v, 1), x)  # the trend is not noise
    rho = float(np.clip(np.corrcoef(noise[:-1], noise[1:])[0, 1], 0.0, 0.99)) if noise.std() > 0 else 0.0
    n_eff = v.size * (1 - rho) / (1 + rho)  # AR(1): correlated points count less
    se_mean = float(noise.std(ddof=2)) / np.sqrt(max(n_eff, 1.0))
    change = float(c[k] - c[-1])
    se_change = 2 * se_mean  # two halves of the tail, each with twice the mean's variance
    flat_enough = change <= flat * abs(floor) or change <= 2 * se_change
    return floor, bool(flat_enough), float(np.hypot(se_mean, max(change, 0.0) / 2))


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


def floor_bmin(runs, targets, smoothing="centered", window=WINDOW, bootstrap=200, seed=0, level=0.9):
    """``Bmin(L*)`` at each target: the batch whose loss floor equals ``L*``.

    Each run's floor comes from :func:`tail_floor`; floors are fitted across
    batches by ``L_inf + K / B^gamma`` (``gamma`` free with >= 4 identified
    floors, else fixed at the NQM's 1) and inverted. A target at or below
    ``L_inf`` has no ``Bmin`` (no batch reaches it). Intervals: a parametric
    bootstrap, each floor redrawn from its standard error (tail noise, the
    remaining change, the spread over seeds) plus the law's residual
    scatter, and the law refitted.

    Returns
    -------
    FloorBmin
    """
    targets = np.atleast_1d(np.asarray(targets, float))
    B, F, se = _floors(runs, smoothing, window)
    n = targets.size
    floors = dict(zip(B.tolist(), F.tolist()))
    empty = lambda why: FloorBmin(
        targets,
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n, bool),
        [why] * n,
        dict(floors=floors),
    )
    if B.size < 2:
        return empty(f"only {B.size} run(s) flattened enough to show a loss floor (need 2)")
    gamma = None if B.size >= 4 else 1.0
    law = _fit_floor_law(B, F, gamma)
    if law is None:
        return empty("the floors do not fall with the batch size")
    bmin = _invert(law, targets)
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if bootstrap:
        lo, hi = _bootstrap_floors(B, F, se, law, gamma, targets, bootstrap, seed, level)
    reason = [_floor_reason(b, a, z, B, law) for b, a, z in zip(bmin, lo, hi)]
    ok = np.array([not r for r in reason], bool)
    return FloorBmin(targets, bmin, lo, hi, ok, reason, dict(L_inf=law[0], K=law[1], gamma=law[2], floors=floors))


#: with 2 floors (the law, exponent fixed at 1, passes through both: nothing tests it) a floor Bmin more than
#: this factor outside the batches whose floors were measured is an extrapolation, not a measurement
FLOOR_REACH = 2.0


def _floor_reason(bmin, lo, hi, B, law) -> str:
    """Why a floor ``Bmin`` is not identified, or '': the target is at or below the fitted ``L_inf``; with
    only 2 floors, the value lies more than :data:`FLOOR_REACH` x outside their batches (two floors
    determine the law without testing it); or it lies outside its own interval (the law is not pinned down
    by these floors). With 3 or more floors the law's residuals enter the interval, so an extrapolation
    stands if its interval contains it (on the NQM, 3 floors at batches 1-4 give Bmin at 48 within 15%)."""
    if not np.isfinite(bmin):
        return f"the target lies at or below the fitted floor L_inf = {law[0]:.4g}"
    if B.size < 3 and (bmin < B.min() / FLOOR_REACH or bmin > B.max() * FLOOR_REACH):
        return (
            f"{bmin:.4g} lies outside the batches with a measured floor ({B.min():.4g}..{B.max():.4g}) by more "
            f"than {FLOOR_REACH:g}x: an extrapolation of the floor law"
        )
    if np.isfinite(lo) and np.isfinite(hi) and not lo <= bmin <= hi:
        return f"{bmin:.4g} lies outside its own interval [{lo:.4g}, {hi:.4g}]: {B.size} floors do not pin the law"
    return ""


def _floors(runs, smoothing, window):
    """Batch sizes, mean floors and their standard errors, for the batches with an identified floor."""
    found = {}
    for r in runs:
        f, ok, se = _tail(r, smoothing, window)
        if ok:
            found.setdefault(r.batch_size, []).append((f, se))
    B = np.array(sorted(found))
    F, se = np.empty(B.size), np.empty(B.size)
    for i, b in enumerate(B):
        f, s = np.array(found[b]).T
        F[i] = f.mean()
        spread = f.std(ddof=1) / np.sqrt(f.size) if f.size > 1 else 0.0
        se[i] = max(np.sqrt((s**2).sum()) / f.size, spread)
    return B, F, se


def _bootstrap_floors(B, F, se, law, gamma, targets, n, seed, level):
    """Interval bounds of ``Bmin`` from ``n`` parametric redraws of the floors."""
    rng = np.random.default_rng(seed)
    dof = B.size - (2 if gamma is not None else 3)
    fit = law[0] + law[1] * B ** -law[2]
    scatter = np.sqrt(((F - fit) ** 2).sum() / dof) if dof > 0 else 0.0
    sd = np.hypot(se, scatter)
    boots = []
    for _ in range(n):
        redraw = _fit_floor_law(B, F + sd * rng.standard_normal(B.size), gamma)
        boots.append(_invert(redraw, targets) if redraw is not None else np.full(targets.size, np.nan))
    q = (1 - level) / 2
    return draw_quantiles(np.asarray(boots), q)


def draw_quantiles(draws, q):
    """``(q, 1 - q)`` quantiles of bootstrap draws per column; NaN where every draw failed (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is a valid "no interval"
        return np.nanquantile(draws, q, axis=0), np.nanquantile(draws, 1 - q, axis=0)


def _invert(law, targets):
    L_inf, K, gamma = law
    with np.errstate(all="ignore"):
        return np.where(targets > L_inf, (K / (targets - L_inf)) ** (1 / gamma), np.nan)
