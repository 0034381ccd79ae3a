"""Loss curves in, E(S) points out: smoothing in data, first hitting steps, targets and crossings.

A loss log is smoothed in **data**, not in rows (docs/conventions.md, "Smoothing
a loss log"): the smoothed loss at a row with data ``D`` is a straight line in
``log D`` fitted by least squares to the rows whose data lies within
``[D / (1 + window), D (1 + window)]``, read at ``D``. A log written every step,
every N steps, at log-spaced steps or at irregular gaps gives the same curve
wherever its rows are dense enough; where fewer than :data:`MIN_ROWS` rows lie
inside the window the raw row is kept and the point is marked as resting on few
rows. Nothing is padded: at either end of a log the window is one-sided and the
line is unbiased for a curve that is straight in ``log D`` there.

Units: ``tokens`` (data consumed) and batch sizes in the log's unit (tokens or
examples); steps are optimizer steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "WINDOW",
    "MIN_ROWS",
    "measured_best",
    "ESPoints",
    "window_rows",
    "local_line",
    "smooth",
    "signal",
    "es_points",
    "choose_targets",
    "crossovers",
    "Crossover",
    "fixed_batch_runs",
    "DYNAMIC",
]

#: default half-width of the smoothing window, as a fraction of the data ``D`` on either side
WINDOW = 0.1

#: fewer rows than this inside a row's window: the raw row is used, and the point rests on few rows
MIN_ROWS = 5


#: why a dynamic-batch run is left out of fixed-batch estimates
DYNAMIC = "its batch size changes during the run (dynamic): left out of the fixed-batch estimates"


def fixed_batch_runs(runs):
    """``(fixed, dynamic)``: the runs at one batch size, and the runs whose batch changes.

    A dynamic-batch run (``Run.dynamic``) has no single batch size: an estimate
    of ``Bmin``/``Bopt`` from fixed-batch runs must not place it at any one, so
    callers leave it out and name it (:data:`DYNAMIC` says why).
    """
    fixed = [r for r in runs if not getattr(r, "dynamic", False)]
    return fixed, [r for r in runs if getattr(r, "dynamic", False)]


def _check_window(window):
    if not (isinstance(window, (int, float)) and 0 < window <= 1):
        raise ValueError(
            f"window={window!r} must be a fraction of the data in (0, 1] (the smoothing window's "
            "half-width: rows with data within D/(1+w)..D(1+w))"
        )


def _positive(tokens):
    """Index of the first row with positive data (rows before it cannot be placed in log data)."""
    tokens = np.asarray(tokens, float)
    return int(np.searchsorted(tokens > 0, True)) if tokens.size and tokens[-1] > 0 else tokens.size


def window_rows(tokens, at, window=WINDOW):
    """``(lo, hi)``: the rows ``lo:hi`` of a log (non-decreasing ``tokens``) whose data lies within
    ``[D / (1 + window), D (1 + window)]`` of each ``D`` in ``at``."""
    _check_window(window)
    tokens = np.asarray(tokens, float)
    at = np.asarray(at, float)
    h = math.log1p(window)
    with np.errstate(divide="ignore"):
        x = np.log(tokens)
    k = np.log(np.where(at > 0, at, np.nan))
    lo = np.searchsorted(x, np.where(np.isfinite(k), k - h, np.inf), "left")
    hi = np.searchsorted(x, np.where(np.isfinite(k), k + h, -np.inf), "right")
    return lo, np.maximum(hi, lo)


@dataclass(frozen=True)
class LogSums:
    """Cumulative sums of a log in log data, centred for accuracy: windows are differences of these."""

    c: float
    x: np.ndarray
    n: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    sy: np.ndarray
    sxy: np.ndarray
    syy: np.ndarray

    @classmethod
    def of(cls, tokens, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log(np.asarray(tokens, float))
        ok = np.isfinite(x)
        c = float(np.mean(x[ok])) if ok.any() else 0.0
        xc = np.where(ok, x - c, 0.0)
        yy = np.where(ok, y, 0.0)
        z = lambda a: np.concatenate(([0.0], np.cumsum(a)))
        return cls(c, xc, z(ok.astype(float)), z(xc), z(xc * xc), z(yy), z(xc * yy), z(yy * yy))

    def line(self, lo, hi, at):
        """``(value, n, mean x, sxx)`` of the least-squares line over rows ``lo:hi``, read at ``at`` (centred)."""
        d = lambda s: s[hi] - s[lo]
        n, sx, sxx, sy, sxy = d(self.n), d(self.sx), d(self.sxx), d(self.sy), d(self.sxy)
        with np.errstate(divide="ignore", invalid="ignore"):
            xm, ym = sx / n, sy / n
            vxx = sxx - n * xm * xm
            slope = np.where(vxx > 1e-12 * np.maximum(n, 1), (sxy - n * xm * ym) / vxx, 0.0)
        return ym + slope * (at - xm), n, xm, vxx

    def scatter(self, lo, hi):
        """Residual variance of the rows ``lo:hi`` around their least-squares line (``n - 2`` dof)."""
        d = lambda s: s[hi] - s[lo]
        n, sx, sxx, sy, sxy, syy = (d(a) for a in (self.n, self.sx, self.sxx, self.sy, self.sxy, self.syy))
        with np.errstate(divide="ignore", invalid="ignore"):
            vxx = sxx - sx * sx / n
            vxy = sxy - sx * sy / n
            sse = syy - sy * sy / n - np.where(vxx > 0, vxy * vxy / vxx, 0.0)
            return np.where(n > 2, np.maximum(sse, 0.0) / (n - 2), np.nan)


def local_line(tokens, loss, window=WINDOW):
    """``(curve, rows)``: the loss smoothed in data at each row, and how many rows its window holds.

    At a row with data ``D`` the smoothed value is the least-squares line in
    ``log D`` through the rows within ``[D / (1 + window), D (1 + window)]``,
    read at ``D`` (one-sided at a log's ends, never padded). Where the window
    holds fewer than :data:`MIN_ROWS` rows, or ``D <= 0``, the raw row is kept.
    Along the last axis of ``loss`` (a stack of curves on one ``tokens`` axis at
    once); O(rows) by cumulative sums.
    """
    tokens = np.asarray(tokens, float)
    loss = np.asarray(loss, float)
    lo, hi = window_rows(tokens, tokens, window)
    rows = hi - lo
    start = _positive(tokens)
    rows[:start] = 0
    if loss.ndim > 1:
        return np.stack([local_line(tokens, y, window)[0] for y in loss]), rows
    s = LogSums.of(tokens, loss)
    value = s.line(lo, hi, s.x)[0]
    return np.where(rows >= MIN_ROWS, value, loss), rows


def smooth(tokens, loss, method="centered", window=WINDOW):
    """A monotone (non-increasing) version of a noisy loss curve logged at data ``tokens``.

    ``method="centered"`` (default) smooths in data (:func:`local_line`), then
    takes the running minimum; ``"running_min"`` takes the running minimum of
    the raw loss (no window; biased early by noise dips).
    """
    loss = np.asarray(loss, float)
    if method == "centered":
        loss = local_line(tokens, loss, window)[0]
    elif method != "running_min":
        raise ValueError(f"smoothing={method!r} must be 'centered' or 'running_min'")
    return np.minimum.accumulate(loss, axis=-1)


@dataclass(frozen=True)
class ESPoints:
    """Steps and data to reach each target, one point per (run, target) reached.

    Attributes
    ----------
    run, batch_size, target, S, E : ndarray
        One entry per point; ``S`` in steps, ``E`` and ``batch_size`` in tokens/examples.
    few_rows : ndarray of bool
        The point rests on raw rows: fewer than :data:`MIN_ROWS` rows lay in the smoothing window there.
    excluded : list of (run, target, reason)
        Runs that never reached a target.
    """

    run: np.ndarray
    batch_size: np.ndarray
    target: np.ndarray
    S: np.ndarray
    E: np.ndarray
    few_rows: np.ndarray
    excluded: list

    def for_target(self, target):
        """``(S, E, batch_size)`` arrays of the points at one target."""
        m = self.target == target
        return self.S[m], self.E[m], self.batch_size[m]


def signal(run, use="loss"):
    """``(steps, tokens, values)`` of the logged column ``use`` (``loss`` or ``val_loss``), finite rows only."""
    if use == "loss":
        return run.step, run.tokens, run.loss
    v = run.extra.get(use)
    if v is None:
        raise ValueError(f"run {run.name!r} has no {use!r} column")
    ok = np.isfinite(v)
    return run.step[ok], run.tokens[ok], v[ok]


def _first_crossing(x_steps, x_tokens, curve, target):
    """``(step, data, row)`` where a non-increasing ``curve`` first reaches ``target`` (linear in between)."""
    hit = np.nonzero(curve <= target)[0]
    if hit.size == 0:
        return None
    k = hit[0]
    if k == 0:
        return float(x_steps[0]), float(x_tokens[0]), 0
    f = (curve[k - 1] - target) / (curve[k - 1] - curve[k])
    return (
        float(x_steps[k - 1] + f * (x_steps[k] - x_steps[k - 1])),
        float(x_tokens[k - 1] + f * (x_tokens[k] - x_tokens[k - 1])),
        int(k),
    )


def es_points(runs, targets, smoothing="centered", window=WINDOW, use="loss"):
    """Steps ``S`` and data ``E`` at which each run first reaches each target.

    The loss is smoothed in data and made monotone (:func:`smooth`), then
    interpolated linearly between logged rows; ``E`` is read from the logged
    ``tokens`` column at that point, so runs whose batch varies are handled
    too. Runs that never reach a target, or reach it by their second logged
    row (no earlier row brackets the hit), are excluded and listed in ``excluded``.

    Parameters
    ----------
    runs : list of Run
    targets : array_like
        Target losses.
    smoothing, window : see :func:`smooth`
    use : {"loss", "val_loss"}
        Which logged column to read.

    Returns
    -------
    ESPoints
    """
    targets = np.atleast_1d(np.asarray(targets, float))
    if targets.size == 0 or not np.all(np.isfinite(targets)):
        raise ValueError(f"targets must be finite numbers; got {', '.join(f'{t:g}' for t in targets) or 'none'}")
    cols = {k: [] for k in ("run", "batch_size", "target", "S", "E", "few_rows")}
    excluded = []
    for r in runs:
        steps, tokens, sig = signal(r, use)
        curve = smooth(tokens, sig, smoothing, window)
        rows = local_line(tokens, sig, window)[1] if smoothing == "centered" else np.full(sig.size, MIN_ROWS)
        for t in targets:
            hit = _first_crossing(steps, tokens, curve, t)
            if hit is None:
                excluded.append((r.name, float(t), f"never reached (best {curve[-1]:.4g})"))
                continue
            if hit[2] <= 1:
                excluded.append(
                    (
                        r.name,
                        float(t),
                        "reached by its first logged row or the next (the log does "
                        "not resolve when: the target lies near the starting loss)",
                    )
                )
                continue
            few = bool(min(rows[hit[2] - 1], rows[hit[2]]) < MIN_ROWS)
            for k, v in zip(cols, (r.name, r.batch_size, float(t), hit[0], hit[1], few)):
                cols[k].append(v)
    return ESPoints(*(np.array(cols[k], dtype=bool if k == "few_rows" else None) for k in cols), excluded)


def choose_targets(runs, n=6, min_runs=None, smoothing="centered", window=WINDOW, use="loss"):
    """``n`` log-spaced targets that at least ``min_runs`` runs reach.

    The lowest target is the ``min_runs``-th best final (smoothed) loss,
    nudged up by 0.5%; the highest is the loss every run has reached by a
    fifth of its data, so the early transient is left out, and
    lies below the (smoothed) loss at the second row of ``min_runs`` runs, so
    that many hits are bracketed by two logged rows (a sparse log's hit before
    its second row tells nothing: :func:`es_points` leaves it out). Spacing is linear instead when a noisy log dips
    to or below 0.
    """
    if len(runs) < 1:
        raise ValueError("no runs given")
    min_runs = min_runs or max(3, math.ceil(0.6 * len(runs)))
    if len(runs) < min_runs:
        raise ValueError(f"need at least {min_runs} runs to choose targets; got {len(runs)}")
    finals, earlies, starts = [], [], []
    for r in runs:
        _, tok, sig = signal(r, use)
        c = smooth(tok, sig, smoothing, window)
        finals.append(c[-1])
        earlies.append(c[_fifth(tok)])
        starts.append(c[min(1, c.size - 1)])
    f = np.sort(finals)[min_runs - 1]
    lo = f + 0.005 * abs(f)
    second = np.sort(starts)[::-1][min_runs - 1]  # min_runs runs are still above it at their second row
    hi = min(max(earlies), second - 1e-3 * abs(second))  # every run is at or below its own early loss
    if not lo < hi:
        if max(len(r.loss) for r in runs) < 2:
            raise ValueError("each run has a single logged row: a loss curve needs rows at two or more steps")
        raise ValueError(
            "the runs do not descend far enough to place distinct targets: every run must reach the "
            f"lowest target ({lo:.4g}, {min_runs} runs' final loss) after passing the highest "
            f"({hi:.4g}, the loss each has reached early), and {lo:.4g} is not below {hi:.4g}"
        )
    return np.geomspace(hi, lo, n) if lo > 0 else np.linspace(hi, lo, n)


def measured_best(runs, use="loss") -> str:
    """The fixed-batch answer a sweep supports without any fit, in words: the batch whose logged loss is lowest
    at the most data every run reached (linear interpolation in tokens between logged rows), or why the runs
    cannot be compared (they share no range of data). The fallback when no E(S) can be fitted."""
    tracks = []
    for r in runs:
        _, tok, sig = signal(r, use)
        ok = np.isfinite(sig)
        if ok.any():
            tracks.append((r, tok[ok], sig[ok]))
    if not tracks:
        return "no run has a finite loss to compare"
    common = min(t[-1] for _, t, _ in tracks)
    if common < max(t[0] for _, t, _ in tracks):
        return "the runs share no range of data to compare them at, so no fixed batch is measured either"
    at = sorted(((float(np.interp(common, t, y)), r) for r, t, y in tracks), key=lambda a: a[0])
    (loss, best), gap = at[0], (at[1][0] - at[0][0] if len(at) > 1 else float("nan"))
    return (
        f"the fixed batch these runs measure: {best.batch_size:g} (run {best.name!r}) has the lowest loss, "
        f"{loss:.4g}, at {common:.4g} tokens, the most data every run reached ({gap:.2g} below the next run's; "
        "a gap within the logs' noise decides nothing)"
    )


def _fifth(tokens):
    """The last row at or before a fifth of the log's data (at least row 0): where a language model's
    initial transient is long over, however the log is spaced."""
    tokens = np.asarray(tokens, float)
    return max(0, int(np.searchsorted(tokens, 0.2 * tokens[-1], "right")) - 1)


@dataclass(frozen=True)
class Crossover:
    """Where a smaller batch's loss-vs-data curve rises above a larger batch's (from logs or the NQM).

    Attributes
    ----------
    data : float             Data at the crossing (tokens for real runs, examples on the NQM).
    loss : float             Loss there.
    b_small, b_large : float The two batch sizes (the unit of ``data``).
    run_small, run_large : str or None   The runs' names (logs only).
    """

    data: float
    loss: float
    b_small: float
    b_large: float
    run_small: str | None = None
    run_large: str | None = None

    @property
    def D(self) -> float:
        """Deprecated name of :attr:`data` (``sim.crossover`` returned it as ``D``)."""
        warnings.warn("Crossover.D is deprecated; use Crossover.data", DeprecationWarning, stacklevel=2)
        return self.data

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Crossover":
        """From :meth:`to_dict` or an older ``fit.json`` row (data under ``tokens``)."""
        data = d["data"] if "data" in d else d["tokens"]
        return cls(
            float(data),
            float(d["loss"]),
            float(d["b_small"]),
            float(d["b_large"]),
            d.get("run_small"),
            d.get("run_large"),
        )


def crossovers(runs, smoothing="centered", window=WINDOW, use="loss", grid=400):
    """Where loss-vs-data curves of runs with different batch sizes cross.

    For each pair (smaller batch, larger batch), the smoothed curves are
    compared on one log grid of data (``grid`` points across all runs)
    inside the range both runs cover; a crossing is where the smaller batch
    goes from ahead (lower loss) to behind, located by linear interpolation
    of the gap in log data between grid points. Every curve is interpolated
    onto the grid once, so the cost is O(runs x grid) plus a vectorised
    O(pairs x grid) comparison.

    Returns
    -------
    list of Crossover
    """
    curves = []
    for r in runs:
        _, tok, sig = signal(r, use)
        ok = tok > 0
        if ok.sum() >= 2:
            curves.append((r, tok[ok], smooth(tok, sig, smoothing, window)[ok]))
    if len(curves) < 2:
        return []
    first = np.array([c[1][0] for c in curves])
    last = np.array([c[1][-1] for c in curves])
    G = np.geomspace(first.min(), last.max(), grid)
    V = np.array([np.interp(G, t, l) for _, t, l in curves])
    inside = (G >= first[:, None]) & (G <= last[:, None])
    B = np.array([c[0].batch_size for c in curves])
    out = []
    for a, (ra, ta, la) in enumerate(curves):
        bs = np.nonzero(B > B[a])[0]
        if bs.size == 0:
            continue
        gap = V[a] - V[bs]
        ok = inside[a] & inside[bs]
        up = (gap[:, :-1] < 0) & (gap[:, 1:] >= 0) & ok[:, :-1] & ok[:, 1:]
        hit = up.any(axis=1)
        for j, i in zip(np.nonzero(hit)[0], up[hit].argmax(axis=1)):
            g0, g1 = gap[j, i], gap[j, i + 1]
            Dx = G[i] * (G[i + 1] / G[i]) ** (-g0 / (g1 - g0))
            rb = curves[bs[j]][0]
            out.append(
                Crossover(float(Dx), float(np.interp(Dx, ta, la)), ra.batch_size, rb.batch_size, ra.name, rb.name)
            )
    return out
