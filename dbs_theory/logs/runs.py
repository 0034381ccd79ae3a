"""Loss logs in: reading runs (curve analysis lives in :mod:`dbs_theory.measure.curves`).

The interchange format (docs/conventions.md, "Loss log format") is CSV or JSONL with one row
per logged step and columns ``run, batch_size, step, tokens, loss`` plus
optional ``lr, val_loss, seq_len, world_size, b_simple, gns_g2, gns_trace, wall_time``
(Unix seconds). ``tokens`` is data
consumed so far (tokens or examples); ``batch_size`` is in the same unit.
"""

from __future__ import annotations

import csv
import math
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import readers
from .log_files import LOG_FIELDS, OPTIONAL, REQUIRED, log_files, read_log_file

__all__ = ["Run", "load_runs", "write_runs", "REQUIRED", "OPTIONAL", "LOG_FIELDS"]


@dataclass(frozen=True)
class Run:
    """One training run's log, sorted by step.

    Attributes
    ----------
    name : str                  The run's identity: its name in a log, or its path (module readers).
    batch_size : float          Global batch (tokens or examples); where the logged batch changes
                                (``dynamic``), the batch of the run's last fixed stretch.
    step, tokens, loss : ndarray
        Optimizer steps, data consumed, training loss.
    extra : dict                Optional columns (``lr``, ``val_loss``, ...) as arrays; ``batch_size``, the
                                batch of each row, when the batch changes within the run.
    """

    name: str
    batch_size: float
    step: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def dynamic(self) -> bool:
        """True when the logged batch changes within the run (per row in ``extra["batch_size"]``)."""
        b = self.extra.get("batch_size")
        return b is not None and np.unique(b).size > 1

    @property
    def lr(self):
        """The learning rate if logged and constant after warmup, else ``None``."""
        lr = self.extra.get("lr")
        if lr is None or not np.any(np.isfinite(lr)):
            return None
        tail = lr[len(lr) // 2 :]
        tail = tail[np.isfinite(tail)]
        return float(np.median(tail)) if tail.size else None


def _check_sources(names, cols, source, files):
    """Refuse a run name that two files share with overlapping steps, or with different batch sizes where the
    later part's data does not continue the earlier's (two runs, not one logged in parts; a run resumed into
    a new file at another batch is one dynamic-batch run)."""
    order = np.lexsort((source, names))
    n, src = names[order], source[order]
    change = np.nonzero((n[1:] != n[:-1]) | (src[1:] != src[:-1]))[0] + 1
    starts = np.r_[0, change]
    ends = np.r_[change, n.size]
    seen = {}
    for a, b in zip(starts, ends):
        name, f = n[a], int(src[a])
        idx = order[a:b]
        st, tok = cols["step"][idx], cols["tokens"][idx]
        info = (
            f,
            set(np.unique(cols["batch_size"][idx]).tolist()),
            st.min(),
            st.max(),
            tok[np.argmin(st)],
            tok[np.argmax(st)],
        )
        if name in seen:
            g, bs, lo, hi, t_lo, t_hi = seen[name]
            overlap = not (info[3] < lo or info[2] > hi)
            first, then = (seen[name], info) if hi < info[2] else (info, seen[name])
            if overlap or (bs != info[1] and then[4] < first[5]):
                raise ValueError(
                    f"run {name!r} appears in both {files[g]} and {files[f]} with "
                    + (
                        "overlapping steps"
                        if overlap
                        else "different batch sizes, and the later part's data does not continue the earlier's"
                    )
                    + (
                        "; if they are one run resumed, give its rows as one file in the order they were written "
                        "(a repeated step keeps its last row); if two runs, rename one"
                        if overlap
                        else "; rename one of them"
                    )
                )
            info = (f, bs | info[1], min(lo, info[2]), max(hi, info[3]), first[4], then[5])
        seen[name] = info


def _read_once(got, seen):
    """The ``(file, part)`` pairs of ``got`` whose file was not read before (``seen``: ``{resolved path: name
    read}``, updated): a file named twice is read once; one reached again under another name (a link) is
    read once, with a warning naming both. A reader's several parts of one file are all kept."""
    out, fresh = [], set()
    for f, part in got:
        real = Path(f).resolve()
        if real in seen and not (real in fresh and Path(seen[real]) == Path(f)):
            if Path(seen[real]) != Path(f):
                warnings.warn(f"{f} is the same file as {seen[real]}: read once", stacklevel=3)
            continue
        seen[real] = f
        fresh.add(real)
        out.append((f, part))
    return out


def load_runs(*paths, max_bad_fraction=0.1, batch_sizes=None, loss_tag=None, batch_tag=None, log_format=None):
    """Read runs from CSV/JSONL files or directories of them, Hugging Face ``Trainer`` output folders or
    W&B CSV exports, TensorBoard event folders (:mod:`dbs_theory.logs.readers`; ``batch_sizes`` ``{run: B}``,
    ``loss_tag`` and ``batch_tag`` for those; ``log_format``, one of :data:`dbs_theory.logs.readers.FORMATS`,
    chooses the reader instead of the path).

    Rows are grouped by ``run`` and sorted by ``step``. Repairs, each with a
    warning: unsorted rows are sorted; repeated steps (as after a resume)
    keep the last row; rows with NaN or infinite loss are dropped while they
    are at most ``max_bad_fraction`` of a run. A run whose batch changes is
    kept as a dynamic-batch run (:attr:`Run.dynamic`, with a warning). Grouping
    sorts once, so the cost is O(rows log rows) whatever the number of runs.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        One line naming the file and line (or entry, or step) at fault:
        empty, binary or malformed file, missing column, non-numeric value
        (a bool or a string in JSON), non-positive batch size or loss, a negative
        step or token count, tokens that fall or disagree with step x
        batch_size by more than :data:`dbs_theory.logs.readers.REL_TOL`, a value
        beyond :data:`LIMITS`, a run whose loss is mostly NaN/inf, or one run
        name in two files with different batch sizes or overlapping steps.

    Returns
    -------
    list of Run
    """
    if log_format is not None and log_format not in readers.FORMATS:
        raise ValueError(f"log_format: must be one of {', '.join(readers.FORMATS)}; got {log_format!r}")
    files, parts, seen = [], [], {}
    for p in map(Path, paths):
        got = _read_path(p, log_format, batch_sizes, loss_tag, batch_tag)
        got = _read_once(got, seen)
        files += [f for f, _ in got]
        parts += [part for _, part in got]
    names = np.concatenate([p[0] for p in parts])
    cols = {c: np.concatenate([p[1][c] for p in parts]) for c in REQUIRED[1:]}
    keys = dict.fromkeys(k for p in parts for k in p[2])
    extra = {k: np.concatenate([p[2].get(k, np.full(p[0].size, np.nan)) for p in parts]) for k in keys}
    source = np.concatenate([np.full(p[0].size, i) for i, p in enumerate(parts)])
    row = np.concatenate([np.arange(p[0].size) for p in parts])
    if len(files) > 1:
        _check_sources(names, cols, source, files)
    codes = {}  # run name -> group number, in order of first appearance
    inverse = np.fromiter((codes.setdefault(n, len(codes)) for n in names), dtype=np.int64, count=names.size)
    groups = np.argsort(inverse, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(codes)))]
    locate = lambda g: parts[source[g]][3](int(row[g]))
    runs = [
        _one_run(str(name), groups[bounds[g] : bounds[g + 1]], cols, extra, max_bad_fraction, locate)
        for name, g in codes.items()
    ]
    _warn_copies(runs)
    _check_batch_sizes(runs, batch_sizes or {})
    return runs


def _check_batch_sizes(runs, batch_sizes):
    """``batch_sizes`` against the runs read: a run whose log states another batch is refused (which one is
    meant?); names that match no run are warned (a run of that name was not read)."""
    for r in runs:
        given = batch_sizes.get(r.name)
        if given is not None and not r.dynamic and not math.isclose(given, r.batch_size, rel_tol=1e-9):
            raise ValueError(
                f"batch_sizes: run {r.name!r} is given {given:g} but its log says batch_size "
                f"{r.batch_size:g}; drop one (a log with a batch_size column needs none given)"
            )
    names = [r.name for r in runs]
    unused = [k for k in batch_sizes if not any(n == k or n.startswith(f"{k} (column ") for n in names)]
    if unused:
        warnings.warn(
            f"batch_sizes: names {len(unused)} run(s) the logs do not hold: {', '.join(map(repr, unused))} "
            f"(runs read: {', '.join(map(repr, names[:8]))}{' ...' if len(names) > 8 else ''})",
            stacklevel=3,
        )


def _warn_copies(runs):
    """Warn, naming both, when two runs hold the very same rows (a copy under another name counts twice)."""
    import hashlib

    seen = {}
    for r in runs:
        key = hashlib.sha256(
            b"".join(np.ascontiguousarray(a, float).tobytes() for a in (r.step, r.tokens, r.loss))
        ).hexdigest()
        if key in seen:
            warnings.warn(
                f"runs {seen[key]!r} and {r.name!r} hold identical rows (steps, tokens and losses): a "
                "copy under another name counts as a second run; drop one",
                stacklevel=3,
            )
        seen.setdefault(key, r.name)


def _read_path(p: Path, log_format, batch_sizes, loss_tag, batch_tag) -> list:
    """``[(source, part)]``: the runs one path given to :func:`load_runs` holds, by its reader."""
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {str(p)!r}")
    kind = "native" if log_format in ("csv", "jsonl") else log_format or readers.detect(p)
    if kind in ("hf", "tensorboard") and log_format is None and p.is_dir():
        own = [q.name for q in p.iterdir() if q.suffix.lower() in (".csv", ".jsonl", ".ndjson") and q.is_file()]
        if own:
            what = "Trainer states (trainer_state.json)" if kind == "hf" else "TensorBoard event files"
            raise ValueError(
                f"{p}: holds both loss logs ({', '.join(sorted(own)[:3])}{' ...' if len(own) > 3 else ''})"
                f" and {what} below it; give each as its own path (or name the log format to read one kind)"
            )
    if kind == "native":
        for name, tag in (("loss_tag", loss_tag), ("batch_tag", batch_tag)):
            if tag is not None:
                warnings.warn(
                    f"{name}: {tag!r} is not used for {p}: CSV and JSONL logs are read from their own columns "
                    "(loss, batch_size); the tag names a TensorBoard, W&B or Trainer log's series",
                    stacklevel=4,
                )
        return [(f, read_log_file(f, log_format)) for f in log_files(p, log_format)]
    parts = readers.read(kind, p, batch_sizes=batch_sizes, loss_tag=loss_tag, batch_tag=batch_tag)
    return [(p, part) for part in parts]


LIMITS = dict(batch_size=1e12, step=1e15, tokens=1e18, loss=1e30)  # beyond any training run, far below overflow


def _got(x: float) -> str:
    """A cell's value for a refusal: NaN is what an empty cell or a missing key reads as, so it is said so."""
    return "nothing (an empty cell or a missing key)" if math.isnan(x) else f"{x:g}"


def _check_rows(name, idx, cols, locate):
    """Refuse, naming the first bad row: a batch that is not positive, a step or token count that is not a
    finite non-negative number, or a magnitude beyond :data:`LIMITS`."""
    for c in ("batch_size", "step", "tokens", "loss"):
        v = cols[c][idx]
        fin = np.isfinite(v)
        checks = [
            (fin & (np.abs(v) > LIMITS[c]), lambda x: f"{c} {x:g} is beyond any training run (|{c}| > {LIMITS[c]:g})")
        ]
        if c == "batch_size":
            checks.insert(0, (~(fin & (v > 0)), lambda x: f"batch_size must be positive; got {_got(x)}"))
        elif c != "loss":
            checks[:0] = [
                (~fin, lambda x: f"{c} must be a finite number; got {_got(x)}"),
                (v < 0, lambda x: f"{c} {x:g} is negative"),
            ]
        else:  # a language model's cross-entropy is above 0: none or a negative one is a placeholder or a shift
            checks.insert(
                0,
                (
                    fin & (v <= 0),
                    lambda x: (
                        f"loss {x:g} is not positive (a cross-entropy is > 0: a "
                        "placeholder, or a shifted or corrupt log?)"
                    ),
                ),
            )
        for bad, say in checks:
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{locate(idx[j])}: {say(float(v[j]))} (run {name!r})")


def _order(name, step, bs, loss, max_bad):
    """Indices of the rows kept, in step order: NaN/inf loss dropped, the last of each repeated step."""
    bad = ~np.isfinite(loss)
    if bad.mean() > max_bad:
        raise ValueError(f"run {name!r}: {bad.sum()} of {bad.size} loss values are NaN or inf")
    if bad.any():
        warnings.warn(f"run {name!r}: dropped {bad.sum()} rows with NaN/inf loss", stacklevel=4)
    keep = ~bad
    order = np.argsort(step[keep], kind="stable")
    if np.any(np.diff(step[keep]) < 0):
        warnings.warn(f"run {name!r}: rows were not sorted by step; sorted them", stacklevel=4)
    sel = np.nonzero(keep)[0][order]
    s = step[sel]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each repeated step wins
    if (~last).sum() > 0.5 * last.sum() and np.unique(bs[sel]).size > 1:
        raise ValueError(
            f"run {name!r}: most steps appear twice with different batch sizes "
            f"({', '.join(f'{b:g}' for b in np.unique(bs[sel]))}): two runs under one name? "
            "give each its own name"
        )
    if not last.all():
        warnings.warn(
            f"run {name!r}: {int((~last).sum())} repeated steps (a resume?); kept the last row of each", stacklevel=4
        )
    return sel[last]


def _check_tokens(name, s, t, b, where):
    """Tokens never fall, and rise over each logged interval by its steps x the batch (between the batches
    at its two ends, within :data:`dbs_theory.logs.readers.REL_TOL`); ``where(j)`` names row j."""
    dt, ds = np.diff(t), np.diff(s)
    falls = np.flatnonzero(dt < 0)
    if falls.size:
        j = falls[0] + 1
        raise ValueError(
            f"{where(j)}: tokens fall from {t[j - 1]:g} to {t[j]:g} in run {name!r} "
            "(data consumed so far never decreases)"
        )
    lo, hi = np.minimum(b[:-1], b[1:]) * ds, np.maximum(b[:-1], b[1:]) * ds
    slack = 1e-6 * np.abs(t[1:])  # float32 logs (TensorBoard) round large counts
    off = np.flatnonzero((dt < lo * (1 - readers.REL_TOL) - slack) | (dt > hi * (1 + readers.REL_TOL) + slack))
    if off.size:
        j = off[0] + 1
        raise ValueError(
            f"{where(j)}: tokens rise by {dt[j - 1]:g} over {ds[j - 1]:g} step(s) but batch_size "
            f"{b[j]:g} makes {b[j] * ds[j - 1]:g} in run {name!r}: tokens and batch_size must be "
            "in one unit (tokens: data consumed so far)"
        )


def _snapped(b):
    """Batch sizes within 1e-6 (relative) of a whole number are that number: 63.999999 is 64 written by a
    float32 logger, not a second batch size."""
    r = np.round(b)
    return np.where((r > 0) & (np.abs(b - r) <= 1e-6 * np.abs(b)), r, b)


def _check_offset(name, s, t, b):
    """Warn when tokens and step x batch_size disagree by a constant (the increments agree, checked before):
    a shifted step count moves every S, shifted tokens every E. One batch either way is a logging convention
    (tokens counted before or after the step)."""
    off = float(t[0] - s[0] * b[0])
    if abs(off) > b[0] * (1 + readers.REL_TOL):
        warnings.warn(
            f"run {name!r}: tokens are step x batch_size {off:+g} throughout ({off / b[0]:+g} steps at "
            f"batch {b[0]:g}): E is read from tokens and S from steps, so if one column is shifted (a "
            "resumed counter, an unlogged ramp-up) the fit is too",
            stacklevel=4,
        )


def _one_run(name, idx, cols, extra, max_bad, locate=None):
    """The checked, ordered :class:`Run` of rows ``idx``; ``locate(row)`` names a row's origin."""
    locate = locate or (lambda g: f"run {name!r}, row {g + 1}")
    _check_rows(name, idx, cols, locate)
    step, tokens, loss = (cols[c][idx] for c in ("step", "tokens", "loss"))
    bs = _snapped(cols["batch_size"][idx])
    sel = _order(name, step, bs, loss, max_bad)
    _check_tokens(name, step[sel], tokens[sel], bs[sel], lambda j: locate(idx[sel[j]]))
    _check_offset(name, step[sel], tokens[sel], bs[sel])
    ex = {k: v[idx][sel] for k, v in extra.items()}
    b = bs[sel]
    if np.unique(b).size > 1:
        ex["batch_size"] = b
        stretches = b[np.r_[True, b[1:] != b[:-1]]]
        shown = " -> ".join(f"{x:g}" for x in stretches[:6]) + (" -> ..." if stretches.size > 6 else "")
        warnings.warn(
            f"run {name!r}: its batch size changes ({shown}): "
            f"a dynamic-batch run; its batch per row is kept, batch_size is its last stretch's "
            f"({b[-1]:g})",
            stacklevel=3,
        )
    return Run(name, float(b[-1]), step[sel], tokens[sel], loss[sel], ex)


def write_runs(runs, path):
    """Write runs to ``path`` (CSV, or JSONL if it ends in .jsonl), atomically; a dynamic-batch run's
    ``batch_size`` column is its batch per row."""
    from ..io import atomic_write

    path = Path(path)
    keys = list(REQUIRED) + sorted({k for r in runs for k in r.extra} - set(REQUIRED))
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
    base = dict(
        run=r.name, batch_size=r.batch_size, step=int(r.step[i]), tokens=float(r.tokens[i]), loss=float(r.loss[i])
    )
    base.update({k: float(r.extra[k][i]) for k in keys if k in r.extra})
    return base
