"""Loss logs in, E(S) points out: reading runs and finding when they hit targets.

The interchange format (DESIGN.md section 8) is CSV or JSONL with one row
per logged step and columns ``run, batch_size, step, tokens, loss`` plus
optional ``lr, val_loss, seq_len, world_size``. ``tokens`` is data
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

__all__ = ["Run", "load_runs", "write_runs", "smooth", "es_points", "ESPoints", "choose_targets",
           "crossovers", "REQUIRED", "OPTIONAL"]

REQUIRED = ("run", "batch_size", "step", "tokens", "loss")
OPTIONAL = ("lr", "val_loss", "seq_len", "world_size", "b_simple")


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


def _read_rows(path: Path):
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{i}: malformed JSON ({exc.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise ValueError(f"{path}:{i}: each JSONL line must be an object")
        return rows
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or len(reader.fieldnames) < 2:
        raise ValueError(f"{path}: malformed CSV (no header with the columns {', '.join(REQUIRED)})")
    rows = list(reader)
    if any(None in r for r in rows):
        raise ValueError(f"{path}: malformed CSV (a row has more fields than the header)")
    return rows


def _column(rows, key, path, numeric=True):
    vals = [r.get(key) for r in rows]
    if not numeric:
        return [str(v) for v in vals]
    out = np.empty(len(vals))
    for i, v in enumerate(vals):
        try:
            out[i] = float(v) if v not in (None, "") else np.nan
        except (TypeError, ValueError):
            raise ValueError(f"{path}: column {key!r} has a non-numeric value {v!r}") from None
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


def load_runs(*paths, max_bad_fraction=0.1):
    """Read runs from CSV/JSONL files or directories of them.

    Rows are grouped by ``run`` and sorted by ``step``. Repairs, each with a
    warning: unsorted rows are sorted; repeated steps (as after a resume)
    keep the last row; rows with NaN or infinite loss are dropped while they
    are at most ``max_bad_fraction`` of a run.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        Empty or malformed file, missing column, non-numeric value,
        non-positive batch size, or a run whose loss is mostly NaN/inf.

    Returns
    -------
    list of Run
    """
    rows, where = [], {}
    for p in paths:
        for f in _files(Path(p)):
            got = _read_rows(f)
            missing = [c for c in REQUIRED if got and c not in got[0]]
            if not got or missing:
                raise ValueError(f"{f}: missing column(s) {', '.join(missing) or ', '.join(REQUIRED)}")
            for r in got:
                where[id(r)] = f
            rows.extend(got)
    names = _column(rows, "run", "log", numeric=False)
    cols = {c: _column(rows, c, "log") for c in REQUIRED[1:]}
    extra = {c: _column(rows, c, "log") for c in OPTIONAL if any(c in r for r in rows)}
    runs = []
    for name in dict.fromkeys(names):
        idx = np.array([i for i, n in enumerate(names) if n == name])
        runs.append(_one_run(name, idx, cols, extra, max_bad_fraction))
    return runs


def _one_run(name, idx, cols, extra, max_bad):
    step, tokens, loss, bs = (cols[c][idx] for c in ("step", "tokens", "loss", "batch_size"))
    if not np.all(np.isfinite(bs)) or np.any(bs <= 0):
        bad = bs[~(np.isfinite(bs) & (bs > 0))][0]
        raise ValueError(f"run {name!r}: batch_size must be positive; got {bad!r}")
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


def smooth(loss, method="centered", window=0.02):
    """A monotone (non-increasing) version of a noisy loss curve.

    ``method="running_min"`` takes the running minimum of the raw loss
    (fast, biased early by noise dips); ``"centered"`` (default) first
    averages over a centred window of ``window`` logged points (an int, or
    a fraction of the run's points), then takes the running minimum.
    """
    loss = np.asarray(loss, float)
    if method == "centered":
        k = int(window if window >= 1 else max(1, round(window * loss.size)))
        if k > 1:
            pad = k // 2
            padded = np.pad(loss, pad, mode="edge")
            loss = np.convolve(padded, np.ones(2 * pad + 1) / (2 * pad + 1), mode="valid")
    elif method != "running_min":
        raise ValueError(f"smoothing={method!r} must be 'centered' or 'running_min'")
    return np.minimum.accumulate(loss)


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
        raise ValueError(f"targets must be finite numbers; got {targets!r}")
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
    fifth of its log, so the early transient is left out.
    """
    if len(runs) < 1:
        raise ValueError("no runs given")
    min_runs = min_runs or max(3, math.ceil(0.6 * len(runs)))
    if len(runs) < min_runs:
        raise ValueError(f"need at least {min_runs} runs to choose targets; got {len(runs)}")
    finals, earlies = [], []
    for r in runs:
        _, _, sig = _signal(r, use)
        c = smooth(sig, smoothing, window)
        finals.append(c[-1])
        earlies.append(c[max(1, c.size // 5) - 1])
    lo = np.sort(finals)[min_runs - 1] * 1.005
    hi = max(earlies)  # every run is at or below its own early loss, so below the largest
    if not lo < hi:
        raise ValueError("the runs do not descend far enough to place distinct targets "
                         f"(lowest reachable {lo:.4g}, highest common {hi:.4g})")
    return np.geomspace(hi, lo, n)


def crossovers(runs, smoothing="centered", window=0.02, use="loss", grid=400):
    """Where loss-vs-data curves of runs with different batch sizes cross.

    For each pair (smaller batch, larger batch), the smoothed curves are
    compared on a common log grid of data; a crossing is where the smaller
    batch goes from ahead (lower loss) to behind.

    Returns
    -------
    list of dict
        ``run_small``, ``run_large``, ``b_small``, ``b_large``, ``tokens``, ``loss``.
    """
    curves = []
    for r in runs:
        _, tok, sig = _signal(r, use)
        ok = tok > 0
        curves.append((r, tok[ok], smooth(sig, smoothing, window)[ok]))
    out = []
    for (ra, ta, la), (rb, tb, lb) in ((a, b) for a in curves for b in curves
                                       if a[0].batch_size < b[0].batch_size):
        lo, hi = max(ta[0], tb[0]), min(ta[-1], tb[-1])
        if not lo < hi:
            continue
        D = np.geomspace(lo, hi, grid)
        gap = np.interp(D, ta, la) - np.interp(D, tb, lb)
        k = np.nonzero((gap[:-1] < 0) & (gap[1:] >= 0))[0]
        if k.size:
            i = k[0]
            f = -gap[i] / (gap[i + 1] - gap[i])
            Dx = D[i] * (D[i + 1] / D[i]) ** f
            out.append(dict(run_small=ra.name, run_large=rb.name, b_small=ra.batch_size,
                            b_large=rb.batch_size, tokens=float(Dx), loss=float(np.interp(Dx, ta, la))))
    return out
