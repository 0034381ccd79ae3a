"""Loss logs in, E(S) points out: reading runs and finding when they hit targets.

The interchange format (docs/conventions.md, "Loss log format") is CSV or JSONL with one row
per logged step and columns ``run, batch_size, step, tokens, loss`` plus
optional ``lr, val_loss, seq_len, world_size, b_simple, gns_g2, gns_trace, wall_time``
(Unix seconds). ``tokens`` is data
consumed so far (tokens or examples); ``batch_size`` is in the same unit.
"""
from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import readers

__all__ = ["moving_average", "Run", "load_runs", "write_runs", "smooth", "es_points", "ESPoints", "choose_targets",
           "crossovers", "REQUIRED", "OPTIONAL"]

REQUIRED = ("run", "batch_size", "step", "tokens", "loss")
OPTIONAL = ("lr", "val_loss", "seq_len", "world_size", "b_simple", "gns_g2", "gns_trace", "wall_time")


@dataclass(frozen=True)
class Run:
    """One training run's log, sorted by step.

    Attributes
    ----------
    name : str
    batch_size : float          Batch size (tokens or examples); the most common value if it varies.
    step, tokens, loss : ndarray
        Optimizer steps, data consumed, training loss.
    extra : dict                Optional columns (``lr``, ``val_loss``, ...) as arrays.
    """

    name: str
    batch_size: float
    step: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def lr(self):
        """The learning rate if logged and constant after warmup, else ``None``."""
        lr = self.extra.get("lr")
        if lr is None or not np.any(np.isfinite(lr)):
            return None
        tail = lr[len(lr) // 2:]
        tail = tail[np.isfinite(tail)]
        return float(np.median(tail)) if tail.size else None


def _read_text(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM (as Excel writes) is not part of a column name
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (undecodable byte at offset {exc.start}; "
                         "UTF-16 or binary?)") from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a text log (it holds NUL bytes: binary or UTF-16?)")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    return text


def _read_rows(path: Path):
    """``(columns, line_numbers)``: ``{name: list of cell values}`` and the line each row came from."""
    text = _read_text(path)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows, lines = [], []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{i}: malformed JSON ({exc.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise ValueError(f"{path}:{i}: each JSONL line must be an object")
                lines.append(i)
        keys = dict.fromkeys(k for r in rows[:1] for k in r)
        keys.update(dict.fromkeys(k for r in rows for k in r if k in OPTIONAL))
        return {k: [r.get(k) for r in rows] for k in keys}, lines
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or len(header) < 2:
        raise ValueError(f"{path}: malformed CSV (no header with the columns {', '.join(REQUIRED)})")
    fast = _read_csv_fast(text, header)
    if fast is not None:
        return fast
    rows = [r for r in reader if r]
    lines = _CsvLines(text, len(rows))
    n = len(header)
    for i, r in enumerate(rows):
        if len(r) != n:
            if len(r) > n:
                raise ValueError(f"{path}:{lines[i]}: malformed CSV (the row has more fields than the header)")
            r.extend([""] * (n - len(r)))
    cols = list(zip(*rows)) if rows else [()] * n
    return dict(zip(header, cols)), lines


def _read_csv_fast(text, header):
    """Columns of a well-formed CSV through numpy's C reader, or ``None`` (the caller falls back).

    Only the columns the reader uses are parsed; any irregularity (an empty
    cell, a non-number, a ragged row) returns ``None`` so the careful path can
    name the line and column.
    """
    import io

    want = [c for c in (*REQUIRED, *OPTIONAL) if c in header]
    if "run" not in want or len(set(header)) != len(header):
        return None
    numeric = [header.index(c) for c in want if c != "run"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=numeric, ndmin=2,
                              quotechar='"', comments=None)
            names = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=header.index("run"),
                               dtype=str, ndmin=1, quotechar='"', comments=None)
    except (ValueError, TypeError, IndexError):
        return None
    if text.count(",") != (names.size + 1) * (len(header) - 1):  # ragged rows (or quoted commas)
        return None
    cols = {c: vals[:, j] for j, c in enumerate(c for c in want if c != "run")}
    cols["run"] = names.tolist()
    return cols, _CsvLines(text, names.size)


class _CsvLines:
    """Line number of the i-th data row of a CSV text, found only when an error needs it."""

    def __init__(self, text, n):
        self.text, self.n = text, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        reader = csv.reader(self.text.splitlines())
        next(reader)
        k = -1
        for r in reader:
            k += bool(r)
            if k == i:
                return reader.line_num
        raise IndexError(i)


def _column(values, key, path, lines, numeric=True):
    if isinstance(values, np.ndarray):
        return values
    if not numeric:
        if all(type(v) is str for v in values):
            return np.array(values, dtype=object)
        return np.array(["" if v is None else str(v) for v in values], dtype=object)
    try:  # the fast path: every cell a number
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = np.nan if v in (None, "") else float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{lines[i]}: column {key!r} has a non-numeric value {v!r}") from None
    return out


def _files(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".jsonl", ".ndjson"))
        if not files:
            raise ValueError(f"{path}: the directory holds no .csv or .jsonl logs")
        return files
    return [path]


def _read_file(f: Path):
    """One log file as columns: ``(names, {column: array}, {optional: array})``."""
    got, lines = _read_rows(f)
    missing = [c for c in REQUIRED if c not in got]
    if not lines or missing:
        raise ValueError(f"{f}: missing column(s) {', '.join(missing) or ', '.join(REQUIRED)}"
                         + ("" if lines else " (no data rows)"))
    names = _column(got["run"], "run", f, lines, numeric=False)
    cols = {c: _column(got[c], c, f, lines) for c in REQUIRED[1:]}
    extra = {c: _column(got[c], c, f, lines) for c in OPTIONAL if c in got}
    return names, cols, extra


def _check_sources(names, cols, source, files):
    """Refuse a run name that two files share with different batch sizes or overlapping steps."""
    order = np.lexsort((source, names))
    n, src = names[order], source[order]
    change = np.nonzero((n[1:] != n[:-1]) | (src[1:] != src[:-1]))[0] + 1
    starts = np.r_[0, change]
    ends = np.r_[change, n.size]
    seen = {}
    for a, b in zip(starts, ends):
        name, f = n[a], int(src[a])
        idx = order[a:b]
        info = (f, set(np.unique(cols["batch_size"][idx]).tolist()), cols["step"][idx].min(),
                cols["step"][idx].max())
        if name in seen:
            g, bs, lo, hi = seen[name]
            if bs != info[1] or not (info[3] < lo or info[2] > hi):
                raise ValueError(f"run {name!r} appears in both {files[g]} and {files[f]} with "
                                 + ("different batch sizes" if bs != info[1] else "overlapping steps")
                                 + "; rename one of them")
        seen[name] = info


def load_runs(*paths, max_bad_fraction=0.1, batch_sizes=None, loss_tag=None, batch_tag=None):
    """Read runs from CSV/JSONL files or directories of them, Hugging Face ``Trainer`` output folders or
    W&B CSV exports, TensorBoard event folders (:mod:`dbs_theory.readers`; ``batch_sizes`` ``{run: B}``,
    ``loss_tag`` and ``batch_tag`` for those).

    Rows are grouped by ``run`` and sorted by ``step``. Repairs, each with a
    warning: unsorted rows are sorted; repeated steps (as after a resume)
    keep the last row; rows with NaN or infinite loss are dropped while they
    are at most ``max_bad_fraction`` of a run. Grouping sorts once, so the
    cost is O(rows log rows) whatever the number of runs.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        Empty, binary or malformed file, missing column, non-numeric value
        (named by file, line and column), non-positive batch size, a run
        whose loss is mostly NaN/inf, or one run name in two files with
        different batch sizes or overlapping steps.

    Returns
    -------
    list of Run
    """
    files, parts = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {str(p)!r}")
        kind = readers.detect(p)
        if kind == "native":
            got = [(f, _read_file(f)) for f in _files(p)]
        else:
            read = {"hf": lambda: readers.read_hf(p, batch_sizes),
                    "wandb": lambda: readers.read_wandb(p, batch_sizes, loss_tag),
                    "tensorboard": lambda: readers.read_tensorboard(p, batch_sizes, loss_tag, batch_tag)}[kind]()
            got = [(p, part) for part in read]
        files += [f for f, _ in got]
        parts += [part for _, part in got]
    names = np.concatenate([p[0] for p in parts])
    cols = {c: np.concatenate([p[1][c] for p in parts]) for c in REQUIRED[1:]}
    keys = dict.fromkeys(k for p in parts for k in p[2])
    extra = {k: np.concatenate([p[2].get(k, np.full(p[0].size, np.nan)) for p in parts]) for k in keys}
    source = np.concatenate([np.full(p[0].size, i) for i, p in enumerate(parts)])
    if len(files) > 1:
        _check_sources(names, cols, source, files)
    codes = {}  # run name -> group number, in order of first appearance
    inverse = np.fromiter((codes.setdefault(n, len(codes)) for n in names), dtype=np.int64, count=names.size)
    groups = np.argsort(inverse, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(codes)))]
    return [_one_run(str(name), groups[bounds[g]:bounds[g + 1]], cols, extra, max_bad_fraction)
            for name, g in codes.items()]


def _one_run(name, idx, cols, extra, max_bad):
    step, tokens, loss, bs = (cols[c][idx] for c in ("step", "tokens", "loss", "batch_size"))
    if not np.all(np.isfinite(bs)) or np.any(bs <= 0):
        bad = bs[~(np.isfinite(bs) & (bs > 0))][0]
        raise ValueError(f"run {name!r}: batch_size must be positive; got {float(bad):g}")
    if not (np.all(np.isfinite(step)) and np.all(np.isfinite(tokens))):
        raise ValueError(f"run {name!r}: step and tokens must be finite numbers")
    bad = ~np.isfinite(loss)
    if bad.mean() > max_bad:
        raise ValueError(f"run {name!r}: {bad.sum()} of {bad.size} loss values are NaN or inf")
    if bad.any():
        warnings.warn(f"run {name!r}: dropped {bad.sum()} rows with NaN/inf loss", stacklevel=3)
    keep = ~bad
    order = np.argsort(step[keep], kind="stable")
    if np.any(np.diff(step[keep]) < 0):
        warnings.warn(f"run {name!r}: rows were not sorted by step; sorted them", stacklevel=3)
    sel = np.nonzero(keep)[0][order]
    s = step[sel]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each repeated step wins
    if (~last).sum() > 0.5 * last.sum() and np.unique(bs[sel]).size > 1:
        raise ValueError(f"run {name!r}: most steps appear twice with different batch sizes "
                         f"({', '.join(f'{b:g}' for b in np.unique(bs[sel]))}): two runs under one name? "
                         "give each its own name")
    if not last.all():
        warnings.warn(f"run {name!r}: {int((~last).sum())} repeated steps (a resume?); kept the last "
                      "row of each", stacklevel=3)
    sel = sel[last]
    vals, counts = np.unique(bs[sel], return_counts=True)
    ex = {k: v[idx][sel] for k, v in extra.items()}
    return Run(name, float(vals[np.argmax(counts)]), step[sel], tokens[sel], loss[sel], ex)


def write_runs(runs, path):
    """Write runs to ``path`` (CSV, or JSONL if it ends in .jsonl), atomically."""
    from .io import atomic_write

    path = Path(path)
    keys = list(REQUIRED) + sorted({k for r in runs for k in r.extra})
    with atomic_write(path) as fh:
        if path.suffix.lower() == ".jsonl":
            for r in runs:
                for i in range(r.step.size):
                    fh.write(json.dumps(_row(r, i, keys)) + "\n")
        else:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in runs:
                w.writerows(_row(r, i, keys) for i in range(r.step.size))


def _row(r, i, keys):
    base = dict(run=r.name, batch_size=r.batch_size, step=int(r.step[i]), tokens=float(r.tokens[i]),
                loss=float(r.loss[i]))
    base.update({k: float(r.extra[k][i]) for k in keys if k in r.extra})
    return base


def _fit_end(raw, out, pad):
    """Within ``pad`` points of the end, replace the cut-off mean by a straight line fitted to the
    last ``2 pad + 1`` points, in place. (The start keeps the cut-off mean: it is the initial
    transient, which no straight line follows.)"""
    w = 2 * pad + 1
    x = np.arange(w) - pad
    y = raw[..., -w:]
    slope = (y * x).sum(axis=-1, keepdims=True) / (x * x).sum()
    out[..., -pad:] = y.mean(axis=-1, keepdims=True) + slope * x[-pad:]


def smooth(loss, method="centered", window=0.02):
    """A monotone (non-increasing) version of a noisy loss curve.

    ``method="running_min"`` takes the running minimum of the raw loss
    (fast, biased early by noise dips); ``"centered"`` (default) first
    averages over a centred window (:func:`moving_average`), then takes the
    running minimum.
    """
    loss = np.asarray(loss, float)
    if method == "centered":
        loss = moving_average(loss, window)
    elif method != "running_min":
        raise ValueError(f"smoothing={method!r} must be 'centered' or 'running_min'")
    return np.minimum.accumulate(loss, axis=-1)


def moving_average(loss, window=0.02):
    """The mean over a centred window of ``window`` logged points (an int, or a fraction of the
    run's points), along the last axis (a stack of curves at once, in O(n) by a moving sum).

    Within half a window of the end, where the window is cut off, a
    straight line fitted to the last window replaces the mean (a cut-off
    mean of a descending curve sits above the curve at its end, and the
    end is where a run meets its data budget).
    """
    loss = np.asarray(loss, float)
    k = int(window if window >= 1 else max(1, round(window * loss.shape[-1])))
    if k <= 1:
        return loss
    pad = k // 2
    padded = np.pad(loss, [(0, 0)] * (loss.ndim - 1) + [(pad, pad)], mode="edge")
    zero = np.zeros(loss.shape[:-1] + (1,))
    csum = np.concatenate((zero, np.cumsum(padded, axis=-1)), axis=-1)
    w = 2 * pad + 1
    out = (csum[..., w:] - csum[..., :-w]) / w
    if loss.shape[-1] >= w:
        _fit_end(loss, out, pad)
    return out


@dataclass(frozen=True)
class ESPoints:
    """Steps and data to reach each target, one point per (run, target) reached.

    Attributes
    ----------
    run, batch_size, target, S, E : ndarray
        One entry per point; ``S`` in steps, ``E`` and ``batch_size`` in tokens/examples.
    excluded : list of (run, target, reason)
        Runs that never reached a target.
    """

    run: np.ndarray
    batch_size: np.ndarray
    target: np.ndarray
    S: np.ndarray
    E: np.ndarray
    excluded: list

    def for_target(self, target):
        """``(S, E, batch_size)`` arrays of the points at one target."""
        m = self.target == target
        return self.S[m], self.E[m], self.batch_size[m]


def _signal(run, use):
    if use == "loss":
        return run.step, run.tokens, run.loss
    v = run.extra.get(use)
    if v is None:
        raise ValueError(f"run {run.name!r} has no {use!r} column")
    ok = np.isfinite(v)
    return run.step[ok], run.tokens[ok], v[ok]


def _first_crossing(x_steps, x_tokens, curve, target):
    """Step and data where a non-increasing ``curve`` first reaches ``target`` (linear in between)."""
    hit = np.nonzero(curve <= target)[0]
    if hit.size == 0:
        return None
    k = hit[0]
    if k == 0:
        return float(x_steps[0]), float(x_tokens[0])
    f = (curve[k - 1] - target) / (curve[k - 1] - curve[k])
    return (float(x_steps[k - 1] + f * (x_steps[k] - x_steps[k - 1])),
            float(x_tokens[k - 1] + f * (x_tokens[k] - x_tokens[k - 1])))


def es_points(runs, targets, smoothing="centered", window=0.02, use="loss"):
    """Steps ``S`` and data ``E`` at which each run first reaches each target.

    The loss is made monotone with :func:`smooth`, then interpolated
    linearly between logged steps (monotone interpolation); ``E`` is read
    from the logged ``tokens`` column at that point, so runs whose batch
    varies are handled too. Runs that never reach a target are excluded and
    listed in ``excluded``.

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
    cols = {k: [] for k in ("run", "batch_size", "target", "S", "E")}
    excluded = []
    for r in runs:
        steps, tokens, sig = _signal(r, use)
        curve = smooth(sig, smoothing, window)
        # The centred average is one-sided in its last half-window: a first hit there is noise-biased.
        edge = steps.size - (int(window if window >= 1 else round(window * steps.size)) // 2 if
                             smoothing == "centered" else 0)
        for t in targets:
            hit = _first_crossing(steps, tokens, curve, t)
            if hit is None:
                excluded.append((r.name, float(t), f"never reached (best {curve[-1]:.4g})"))
                continue
            if hit[0] <= steps[0]:
                excluded.append((r.name, float(t), "reached at its first logged row (the target lies at or "
                                                   "above the run's starting loss)"))
                continue
            if hit[0] > steps[min(edge, steps.size) - 1]:
                excluded.append((r.name, float(t), "reached only at the log's end, where smoothing is one-sided"))
                continue
            for k, v in zip(cols, (r.name, r.batch_size, float(t), *hit)):
                cols[k].append(v)
    return ESPoints(*(np.array(cols[k]) for k in cols), excluded)


def choose_targets(runs, n=6, min_runs=None, smoothing="centered", window=0.02, use="loss"):
    """``n`` log-spaced targets that at least ``min_runs`` runs reach.

    The lowest target is the ``min_runs``-th best final (smoothed) loss,
    nudged up by 0.5%; the highest is the loss every run has reached by a
    fifth of its log, so the early transient is left out, and lies below
    every run's starting (smoothed) loss, so no run hits a target at its
    first row. Spacing is linear instead when a noisy log dips to or below 0.
    """
    if len(runs) < 1:
        raise ValueError("no runs given")
    min_runs = min_runs or max(3, math.ceil(0.6 * len(runs)))
    if len(runs) < min_runs:
        raise ValueError(f"need at least {min_runs} runs to choose targets; got {len(runs)}")
    finals, earlies, starts = [], [], []
    for r in runs:
        _, _, sig = _signal(r, use)
        c = smooth(sig, smoothing, window)
        finals.append(c[-1])
        earlies.append(c[max(1, c.size // 5) - 1])
        starts.append(c[0])
    f = np.sort(finals)[min_runs - 1]
    lo = f + 0.005 * abs(f)
    start = min(starts)
    hi = min(max(earlies), start - 1e-3 * abs(start))  # every run is at or below its own early loss
    if not lo < hi:
        raise ValueError("the runs do not descend far enough to place distinct targets "
                         f"(lowest reachable {lo:.4g}, highest common {hi:.4g})")
    return np.geomspace(hi, lo, n) if lo > 0 else np.linspace(hi, lo, n)


def crossovers(runs, smoothing="centered", window=0.02, use="loss", grid=400):
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
    list of dict
        ``run_small``, ``run_large``, ``b_small``, ``b_large``, ``tokens``, ``loss``.
    """
    curves = []
    for r in runs:
        _, tok, sig = _signal(r, use)
        ok = tok > 0
        if ok.sum() >= 2:
            curves.append((r, tok[ok], smooth(sig, smoothing, window)[ok]))
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
            out.append(dict(run_small=ra.name, run_large=rb.name, b_small=ra.batch_size,
                            b_large=rb.batch_size, tokens=float(Dx), loss=float(np.interp(Dx, ta, la))))
    return out
