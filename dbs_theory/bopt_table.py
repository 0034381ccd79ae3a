"""Per-target ``Bmin``/``Bopt`` from a batch-size sweep's loss logs."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field

import numpy as np

from .es_laws import LAWS
from .fit import fit_es
from .runs import choose_targets, crossovers, es_points

__all__ = ["bopt_table", "BoptTable", "monotonicity", "R2_MIN"]

#: A fit whose R^2 (in log E) is below this supports no Bmin/Bopt and no verdict drawn from it.
R2_MIN = 0.9


@dataclass(frozen=True)
class BoptTable:
    """The result of :func:`bopt_table`.

    Attributes
    ----------
    rows : list of dict
        One per target (highest first): ``target``, ``n_points``, ``n_batches``,
        ``smin``, ``sopt`` (steps), ``emin``, ``bmin``, ``bopt`` (tokens or
        examples) with ``*_lo``/``*_hi`` bootstrap bounds, ``r2_log_<law>``
        and ``dof_<law>`` for every law fitted, and ``status``.
    verdict : dict
        ``{"bmin": ..., "bopt": ...}``: ``holds``, ``does not hold`` or
        ``inconclusive`` for "grows as the target falls".
    law : str                       The law ``bmin``/``bopt`` come from.
    lr : float or None              The learning rate the runs used (``Bmin`` scales with it).
    excluded : list                 ``(run, target, reason)`` for runs that missed a target.
    crossovers : list of dict       Crossings of loss-vs-data curves.
    fits : dict                     ``target -> {law: FitResult}``.
    points : ESPoints               The (S, E) points behind the fits.
    """

    rows: list
    verdict: dict
    law: str
    lr: float | None
    excluded: list
    crossovers: list
    fits: dict = field(repr=False, default_factory=dict)
    points: object = field(repr=False, default=None)

    def column(self, key):
        """One column of ``rows`` as a float array (NaN where missing)."""
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.rows], float)

    def to_dict(self) -> dict:
        laws = {str(t): {name: f.law.params() for name, f in fits.items()} for t, fits in self.fits.items()}
        return dict(law=self.law, lr=self.lr, verdict=self.verdict, rows=self.rows, laws=laws,
                    excluded=[list(e) for e in self.excluded], crossovers=self.crossovers)

    def write(self, directory):
        """Write ``bopt_table.csv``, ``fit.json`` and ``es_points.csv`` atomically."""
        from .io import atomic_write, json_default

        keys = sorted({k for r in self.rows for k in r}, key=_column_order)
        with atomic_write(f"{directory}/bopt_table.csv") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        with atomic_write(f"{directory}/fit.json") as fh:
            json.dump(self.to_dict(), fh, indent=1, default=json_default)
        p = self.points
        with atomic_write(f"{directory}/es_points.csv") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "batch_size", "target", "S", "E"])
            w.writerows(zip(p.run, p.batch_size, p.target, p.S, p.E))


_ORDER = ["target", "status", "n_points", "n_batches", "smin", "sopt", "emin", "bmin", "bmin_lo",
          "bmin_hi", "bopt", "bopt_lo", "bopt_hi"]


def _column_order(k):
    return (_ORDER.index(k), k) if k in _ORDER else (len(_ORDER), k)


def monotonicity(values, lo=None, hi=None):
    """Verdict on "non-decreasing as the target falls" for values ordered from the highest target.

    ``holds``: every step is non-decreasing. ``does not hold``: some
    decrease is larger than the intervals allow (the lower target's upper
    bound lies below the higher target's lower bound; without intervals,
    any decrease). ``inconclusive``: decreases all within the intervals, or
    fewer than two values.
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return "inconclusive"
    v = v[ok]
    if np.all(np.diff(v) >= 0):
        return "holds"
    if lo is None or hi is None:
        return "does not hold"
    lo, hi = np.asarray(lo, float)[ok], np.asarray(hi, float)[ok]
    for i in range(v.size - 1):
        if v[i + 1] < v[i] and hi[i + 1] < lo[i]:
            return "does not hold"
    return "inconclusive"


def bopt_table(runs, targets=None, law="three_phase", bootstrap=0, seed=0, smoothing="centered",
               window=0.02, use="loss", n_targets=6, laws=("three_phase", "hyperbolic")) -> BoptTable:
    """Fit E(S) per target and tabulate ``Bmin``/``Bopt`` with intervals.

    Parameters
    ----------
    runs : list of Run
        One run per batch size (at least 3 distinct batch sizes).
    targets : array_like, optional
        Target losses; default :func:`choose_targets` with ``n_targets``.
    law : str
        The law whose ``bmin``/``bopt`` fill the table (``three_phase`` or
        ``three_phase_free``; the hyperbola defines neither).
    bootstrap, seed : int
        Bootstrap resamples for intervals, and their seed.
    smoothing, window, use : see :func:`dbs_theory.runs.es_points`.
    laws : tuple
        Laws whose R^2 and degrees of freedom are reported.

    Returns
    -------
    BoptTable
    """
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r}; choose one of {sorted(LAWS)}")
    if law == "hyperbolic":
        raise ValueError("the hyperbolic law defines no Bmin or Bopt; use law='three_phase'")
    batches = {r.batch_size for r in runs}
    if len(batches) < 3:
        raise ValueError(f"need runs at at least 3 distinct batch sizes; got {len(batches)} "
                         f"({', '.join(f'{b:g}' for b in sorted(batches))})")
    if targets is None:
        targets = choose_targets(runs, n_targets, smoothing=smoothing, window=window, use=use)
    targets = np.sort(np.atleast_1d(np.asarray(targets, float)))[::-1]
    if targets.size and np.any(targets[1:] == targets[:-1]):
        rep = sorted({float(t) for t in targets[1:][targets[1:] == targets[:-1]]})
        raise ValueError(f"repeated target(s) {', '.join(f'{t:g}' for t in rep)}: give each target once "
                         "(a repeat would count the same points twice)")
    pts = es_points(runs, targets, smoothing, window, use)
    reached = {float(t) for t in pts.target}
    if not reached:
        raise ValueError(f"no run reaches any of the targets {', '.join(f'{t:.4g}' for t in targets)}")
    rows, fits = [], {}
    for t in targets:
        row, fits[float(t)] = _target_row(pts, float(t), law, laws, bootstrap, seed)
        rows.append(row)
    verdict = {k: monotonicity([r.get(k) for r in rows], [r.get(f"{k}_lo") for r in rows] if bootstrap else None,
                               [r.get(f"{k}_hi") for r in rows] if bootstrap else None)
               for k in ("bmin", "bopt")}
    lrs = [r.lr for r in runs if r.lr is not None]
    lr = float(np.median(lrs)) if lrs else None
    return BoptTable(rows, verdict, law, lr, pts.excluded, crossovers(runs, smoothing, window, use),
                     fits, pts)


def _target_row(pts, t, law, laws, bootstrap, seed):
    S, E, B = pts.for_target(t)
    row = dict(target=t, n_points=int(S.size), n_batches=int(np.unique(B).size))
    fits = {}
    for name in dict.fromkeys((law, *laws)):
        k = LAWS[name]
        if S.size < k + 3:
            row[f"dof_{name}"] = S.size - k
            continue
        fits[name] = fit_es(S, E, name, bootstrap=bootstrap if name == law else 0, seed=seed)
        row[f"r2_log_{name}"] = fits[name].r2_log
        row[f"r2_{name}"] = fits[name].r2
        row[f"dof_{name}"] = fits[name].dof
    main = fits.get(law)
    if main is None:
        row["status"] = f"not fitted: {S.size} points < {LAWS[law] + 3} needed"
        return row, fits
    row["status"] = "ok"
    if not main.r2_log >= R2_MIN:
        row["status"] = (f"not supported: the {law} fit explains too little (R^2 log {main.r2_log:.2f} < "
                         f"{R2_MIN}); noisy or too few points")
        return row, fits
    law_ = main.law
    if not (S.min() <= law_.sopt <= S.max() and law_.emin >= 0.5 * E.min()):
        # The fitted minimum lies outside the observed steps (or far below every point): the data do
        # not bracket the optimum, so Bopt = Emin/Sopt is an extrapolation of a degenerate fit.
        row["status"] = (f"optimum not bracketed by the data (Sopt {law_.sopt:.4g} outside "
                         f"[{S.min():.4g}, {S.max():.4g}] steps or Emin far below the points)")
        return row, fits
    row.update(smin=main.law.smin, sopt=main.law.sopt, emin=main.law.emin, bmin=main.law.bmin,
               bopt=main.law.bopt)
    for key, (lo, hi) in main.ci.items():
        if key in ("bmin", "bopt", "emin", "smin"):
            row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi
    if not (math.isfinite(row["bopt"]) and row["bopt"] > 0):
        row["status"] = "fit gave no positive Bopt"
    return row, fits
