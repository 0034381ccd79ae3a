"""Bopt(D) from a published sweep table: final loss per batch size and data, one row per run.

Papers publish sweeps as tables, not curves: each run's batch size, the data
it trained on and its final loss (often also its learning rate and model).
At each data amount ``D`` that at least three batch sizes reached, the loss is
a function of the batch on the grid; its minimiser is ``Bopt(D)`` -- the batch
that reaches the lowest loss with ``D`` data, i.e. the one that reaches that
loss with the least data.

The minimiser is read between grid points: a cubic spline of ``log loss`` in
``log B`` through the grid, minimised between the best batch's neighbours
(within 8% of the exact ``Bopt`` on NQM tables with batches 2x apart, 1.4% at
sqrt 2).
When the best batch is the grid's smallest or largest, ``Bopt(D)`` is *below
the grid* or *above the grid* and only that bound is reported. Intervals come
from a parametric bootstrap: the log losses perturbed by their scatter between
neighbouring batches (third differences in ``log B``, pooled over ``D``: an
upper bound on the noise, as a smooth curve's are small) and the minimiser
re-read. A power law ``Bopt = k D^alpha`` is fitted in log
space through the bracketed points, its exponent's interval the wider of the
bootstrap's and least squares' (which also counts the points' departure from
a power law).

With an ``lr`` column, each (batch, data) cell keeps its best learning rate
(the lowest loss), and the fit says so; with a ``model`` column there is one
fit per model. Batch sizes and data are in the table's units (tokens, usually).
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GRID_COLUMNS", "GridPoint", "GridFit", "read_grid", "grid_fits", "grid_fit"]

#: required columns of a grid table; ``lr`` and ``model`` are optional
GRID_COLUMNS = ("batch_size", "tokens", "loss")
#: relative closeness below which two data amounts are the same
_SAME = 1e-6


@dataclass(frozen=True)
class GridPoint:
    """``Bopt`` at one data amount ``data``: ``status`` is ``ok`` (bracketed, ``bopt`` within ``[lo, hi]``),
    ``below`` / ``above`` (the grid's smallest / largest batch was best: ``bopt`` is that bound)."""

    data: float
    bopt: float
    lo: float
    hi: float
    status: str
    batches: int
    best_batch: float
    best_loss: float
    best_lr: float = math.nan

    def text(self) -> str:
        if self.status == "below":
            return f"below the grid (<= {self.bopt:.4g})"
        if self.status == "above":
            return f"above the grid (>= {self.bopt:.4g})"
        if not math.isfinite(self.lo):
            return f"{self.bopt:.4g} (no interval: --bootstrap 0)"
        return f"{self.bopt:.4g} [{self.lo:.4g}, {self.hi:.4g}]"


@dataclass(frozen=True)
class GridFit:
    """One model's ``Bopt(D)`` (:class:`GridPoint` per data amount) and power law ``Bopt = k D^alpha``."""

    model: str
    points: list
    k: float = math.nan
    alpha: float = math.nan
    alpha_lo: float = math.nan
    alpha_hi: float = math.nan
    noise: float = 0.0
    notes: list = field(default_factory=list)

    def power_law_text(self) -> str:
        if not math.isfinite(self.alpha):
            return "no power law (fewer than 2 data amounts inside the grid)"
        iv = (
            f" [{self.alpha_lo:.3f}, {self.alpha_hi:.3f}] (the exponent's 95% interval)"
            if math.isfinite(self.alpha_lo)
            else ""
        )
        return f"Bopt = {self.k:.4g} D^{self.alpha:.3f}{iv}, through the data amounts inside the grid"

    def record(self) -> dict:
        """A JSON-safe dict (NaN written as null)."""
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
        return dict(
            model=self.model,
            k=clean(self.k),
            alpha=clean(self.alpha),
            alpha_lo=clean(self.alpha_lo),
            alpha_hi=clean(self.alpha_hi),
            noise=self.noise,
            notes=list(self.notes),
            points=[{k: clean(v) for k, v in vars(p).items()} for p in self.points],
        )


def _number(path, line, column, text):
    """A positive finite number from a cell, or one line naming the file, line and column."""
    text = (text or "").strip()
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{path} line {line} column {column!r}: not a number ({text!r})") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{path} line {line} column {column!r}: must be a positive finite number; got {text!r}")
    return v


def read_grid(path) -> dict:
    """``{model: (B, D, loss, lr)}`` arrays from a grid CSV (module doc); one line names any bad cell.

    Refused: a missing or repeated column, a row with more fields than the header, an empty model name,
    and two rows of one run (the same model, learning rate, batch and data: seeds or copies, not runs).
    """
    from .log_files import regular_file

    regular_file(path)  # a FIFO is never opened: reading it could block forever
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise OSError(f"cannot read the grid file {str(path)!r}: {exc.strerror or exc}") from None
    header = [h.strip() for h in (rows[0] if rows else [])]
    col = _columns(path, header)
    out: dict = {}
    seen: dict = {}
    for line, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) > len(header):
            raise ValueError(f"{path} line {line}: more fields than the header's")
        r = r + [""] * (len(header) - len(r))
        raw = r[col["model"]] if "model" in col else ""
        model = raw.strip()
        if "model" in col and not model:
            raise ValueError(f"{path} line {line} column 'model': empty")
        if raw != model:
            raise ValueError(
                f"{path} line {line} column 'model': {raw!r} has surrounding spaces (the same model as "
                f"{model!r}, or another?); fix the name"
            )
        vals = [_number(path, line, c, r[col[c]]) for c in GRID_COLUMNS]
        lr = _number(path, line, "lr", r[col["lr"]]) if "lr" in col else math.nan
        key = (model, lr, vals[0], vals[1])
        if key in seen:
            raise ValueError(
                f"{path} lines {seen[key]} and {line}: two rows for one run (model {model or '-'}, "
                f"lr {lr:g}, batch {vals[0]:g}, tokens {vals[1]:g}); give one row per run "
                "(average seeds yourself, and say so)"
            )
        seen[key] = line
        out.setdefault(model, []).append((*vals, lr))
    if not out:
        raise ValueError(f"{path}: no rows under the header")
    return {m: tuple(np.array(c, float) for c in zip(*v)) for m, v in out.items()}


def _columns(path, header) -> dict:
    """``{column: index}`` of a grid file's header; a repeated or missing column is refused, others warned."""
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise ValueError(f"{path}: column {twice[0]!r} appears twice in the header")
    missing = [c for c in GRID_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column {missing[0]!r} (needs {', '.join(GRID_COLUMNS)}; optional lr, "
            f"model; the header is {','.join(header) or 'empty'})"
        )
    unknown = [h for h in header if h not in (*GRID_COLUMNS, "lr", "model")]
    if unknown:
        warnings.warn(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not in the grid format "
            f"({', '.join(GRID_COLUMNS)}, lr, model) and are ignored: rows that differ only in them read "
            "as one cell (split the file by them, or name each setting in 'model')",
            stacklevel=3,
        )
    return {h: i for i, h in enumerate(header)}


def _cells(B, D, L, lr):
    """``{data: (batches, losses, lrs)}`` with each (batch, data) cell at its best learning rate."""
    order = np.argsort(D, kind="stable")
    groups, cur = [], [order[0]]
    for i in order[1:]:
        if abs(D[i] - D[cur[0]]) <= _SAME * D[cur[0]]:
            cur.append(i)
        else:
            groups.append(cur)
            cur = [i]
    groups.append(cur)
    out = {}
    for g in groups:
        best = {}
        for i in g:
            if B[i] not in best or L[i] < L[best[B[i]]]:
                best[B[i]] = i
        idx = [best[b] for b in sorted(best)]
        out[float(D[g[0]])] = (B[idx], L[idx], lr[idx])
    return out


def _minimiser(x, y):
    """``(argmin x, edge)``: the minimiser of the cubic spline of ``y`` through ``x`` between the best grid
    point's neighbours; at either end of the grid that end's ``x`` with ``edge`` ``below`` or ``above``."""
    from scipy.interpolate import CubicSpline
    from scipy.optimize import minimize_scalar

    j = int(np.argmin(y))
    if j == 0 or j == x.size - 1:
        return float(x[j]), "below" if j == 0 else "above"
    spline = CubicSpline(x, y)
    r = minimize_scalar(
        lambda t: float(spline(t)), bounds=(x[j - 1], x[j + 1]), method="bounded", options=dict(xatol=1e-9)
    )
    return float(r.x), None


def _roughness(cells) -> float:
    """Scatter of log loss between neighbouring batches: from third differences in ``log B`` (a smooth curve's
    are small, independent noise of sd s gives sd s sqrt(20)); an upper bound on the noise."""
    parts = [np.diff(np.log(loss), 3) for b, loss, _ in cells.values() if b.size >= 4]
    d3 = np.concatenate(parts) if parts else np.array([])
    return float(math.sqrt(np.mean(d3**2) / 20)) if d3.size else 0.0


def grid_fit(batch_size, data, loss, lr=None, model="", bootstrap=200, seed=0, level=0.95) -> GridFit:
    """:class:`GridFit` of one model's table rows (arrays of each run's batch size, data and final loss, in the
    table's units; ``lr`` its learning rate or None; module doc)."""
    B, D, L = (np.asarray(x, float) for x in (batch_size, data, loss))
    lr = np.full(B.size, math.nan) if lr is None else np.asarray(lr, float)
    cells = {d: c for d, c in _cells(B, D, L, lr).items() if c[0].size >= 3}
    if not cells:
        raise ValueError(
            f"model {model or '-'}: no data amount was reached by >= 3 batch sizes; Bopt(D) needs "
            "the loss of several batches at one data amount"
        )
    notes = []
    if np.isfinite(lr).any():
        n_lr = np.unique(lr[np.isfinite(lr)]).size
        notes.append(
            f"each (batch, data) cell at its best of {n_lr} learning rates ({np.nanmin(lr):.3g} to {np.nanmax(lr):.3g})"
        )
    noise = _roughness(cells)
    rng = np.random.default_rng(seed)
    points, draws = [], {}
    for d, (b, loss, _) in sorted(cells.items()):
        xm, edge = _minimiser(np.log(b), np.log(loss))
        j = int(np.argmin(loss))
        if edge is not None:
            points.append(
                GridPoint(
                    d, float(b[j]), math.nan, math.nan, edge, b.size, float(b[j]), float(loss[j]), float(cells[d][2][j])
                )
            )
            continue
        reps = np.array(
            [
                _minimiser(np.log(b), np.log(loss) + rng.normal(0, noise, loss.size))[0]
                for _ in range(bootstrap if noise > 0 else 0)
            ]
        ).reshape(-1)
        reps = reps if reps.size else np.array([xm])
        draws[d] = reps
        q = (1 - level) / 2
        lo, hi = np.exp(np.quantile(reps, [q, 1 - q])) if reps.size > 1 else (math.nan, math.nan)
        lo, hi = (min(lo, math.exp(xm)), max(hi, math.exp(xm))) if math.isfinite(lo) else (lo, hi)
        points.append(
            GridPoint(
                d, math.exp(xm), float(lo), float(hi), "ok", b.size, float(b[j]), float(loss[j]), float(cells[d][2][j])
            )
        )
    edge = _lr_at_edge(cells, lr)
    if edge:
        notes.append(edge)
    if noise > 0 and bootstrap > 0:
        notes.append(
            f"intervals: parametric bootstrap, {bootstrap} resamples, relative loss scatter {noise:.2g} "
            "(from third differences between neighbouring batches)"
        )
    return _with_power_law(GridFit(model, points, noise=noise, notes=notes), draws, level)


def _lr_at_edge(cells, lr):
    """A warning line when the best learning rate of most cells is the smallest or largest the table ran."""
    rates = np.unique(lr[np.isfinite(lr)])
    if rates.size < 2:
        return ""
    best = np.concatenate([c[2][np.isfinite(c[2])] for c in cells.values()])
    for end, name in ((rates[0], "smallest"), (rates[-1], "largest")):
        share = float(np.mean(best == end)) if best.size else 0.0
        if share > 0.5:
            return (
                f"warning: {share:.0%} of cells are best at the {name} learning rate run ({end:.3g}): the "
                "optimum may lie outside the lr grid, and Bopt with it"
            )
    return ""


def _with_power_law(fit: GridFit, draws: dict, level) -> GridFit:
    ok = [p for p in fit.points if p.status == "ok"]
    if len(ok) < 2:
        return fit
    x, y = np.log([p.data for p in ok]), np.log([p.bopt for p in ok])
    slope, icpt = np.polyfit(x, y, 1)
    lo = hi = math.nan
    if len(ok) >= 3:  # least squares' interval, from the points' scatter about the line
        from scipy import stats

        resid = y - (slope * x + icpt)
        se = math.sqrt(float(np.sum(resid**2)) / (len(ok) - 2) / float(np.sum((x - x.mean()) ** 2)))
        t = float(stats.t.ppf(0.5 + level / 2, len(ok) - 2))
        lo, hi = slope - t * se, slope + t * se
    reps = np.array([draws[p.data] for p in ok if p.data in draws])
    if reps.ndim == 2 and reps.shape[1] > 1:  # the bootstrap's: refit the line on each resample
        alphas = np.polyfit(x, reps, 1)[0]
        q = (1 - level) / 2
        blo, bhi = np.quantile(alphas, [q, 1 - q])
        lo, hi = (blo, bhi) if not math.isfinite(lo) else (min(lo, blo), max(hi, bhi))
    return GridFit(
        fit.model, fit.points, float(math.exp(icpt)), float(slope), float(lo), float(hi), fit.noise, fit.notes
    )


def grid_fits(path, bootstrap=200, seed=0) -> list:
    """One :class:`GridFit` per model of the grid CSV at ``path``."""
    return [grid_fit(B, D, L, lr, model, bootstrap, seed) for model, (B, D, L, lr) in read_grid(path).items()]
