"""The fit's table as a type: :class:`BoptTable` (what ``dbs fit`` writes as fit.json, bopt_table.csv and
es_points.csv), each row's :class:`Estimate` of ``Bmin``/``Bopt``, and the verdict rule :func:`monotonicity`.
Built by :func:`dbs_theory.measure.tabulate.bopt_table` (logs) or :func:`~dbs_theory.measure.tabulate.points_table`."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..theory.laws import LAWS
from ..logs.schemas import FitFile

__all__ = [
    "FitRecord",
    "fit_summary",
    "cell",
    "FIT_VERSION",
    "BoptTable",
    "TargetRow",
    "Estimate",
    "estimate",
    "put_estimate",
    "withdraw",
    "chosen_column",
    "chosen",
    "monotonicity",
    "SOURCES",
    "COLUMNS",
    "MIN_IDENTIFIED",
]

#: fit.json's format; a file without ``version`` is format 1 (the one before it was written down)
FIT_VERSION = 1
#: quantity -> its estimators as ``(row column, source name)``, the law-free one first
SOURCES = {
    "bopt": (("bopt_envelope", "envelope"), ("bopt", "three-phase fit")),
    "bmin": (("bmin_floor", "loss floors"), ("bmin", "three-phase fit")),
}
#: row column -> the column holding the data (tokens or examples) at which its value is read
_DATA = {"bopt_envelope": "data_envelope", "bopt": "emin", "bmin": "emin"}
#: a law-free estimator is used when it is identified at at least this many targets
MIN_IDENTIFIED = 2
#: The table for people: ``(column, heading)``; Bmin/Bopt cells print as ``value [lo, hi]`` or ``n/i``.
COLUMNS = (
    ("target", "L*"),
    ("n_batches", "batches"),
    ("smin", "Smin"),
    ("sopt", "Sopt"),
    ("emin", "Emin"),
    ("bmin", "Bmin (3-phase)"),
    ("bmin_floor", "Bmin (floors)"),
    ("bopt", "Bopt (3-phase)"),
    ("bopt_envelope", "Bopt (envelope)"),
)


@dataclass(frozen=True)
class Estimate:
    """One ``Bmin`` or ``Bopt`` cell of a table (batch units: tokens or examples, as the runs).

    Attributes
    ----------
    value, lo, hi : float  The estimate and its interval (NaN where none).
    status : str           ``ok``, or ``not identified: <why>`` (then ``value`` is NaN).
    source : str           ``envelope``, ``loss floors`` or ``three-phase fit``.
    column : str           The table column it was read from.
    target : float         The target loss of its row.
    data : float           Data (tokens or examples) at which the value is read: the envelope's data where
                           it meets the target, the fit's ``Emin``; NaN for the floors.
    """

    value: float
    lo: float
    hi: float
    status: str
    source: str
    column: str
    target: float = math.nan
    data: float = math.nan

    @property
    def identified(self) -> bool:
        return self.status == "ok" and math.isfinite(self.value)

    @property
    def has_interval(self) -> bool:
        return self.identified and math.isfinite(self.lo) and math.isfinite(self.hi)


def _num(row, key):
    v = row.get(key)
    return math.nan if v is None else float(v)


def estimate(row: dict, column: str) -> Estimate:
    """The :class:`Estimate` in ``column`` (one of :data:`SOURCES`' columns) of a table row (a ``dict``, as
    :class:`BoptTable` holds and ``fit.json`` stores)."""
    source = next((name for pairs in SOURCES.values() for col, name in pairs if col == column), None)
    if source is None:
        raise ValueError(
            f"unknown estimate column {column!r}; choose one of {[c for pairs in SOURCES.values() for c, _ in pairs]}"
        )
    value = _num(row, column)
    status = row.get(f"{column}_status") or ("ok" if math.isfinite(value) else row.get("status", "not fitted"))
    if not math.isfinite(value) and status == "ok":
        status = "not identified: no value"
    data = _num(row, _DATA[column]) if column in _DATA else math.nan
    return Estimate(
        value, _num(row, f"{column}_lo"), _num(row, f"{column}_hi"), status, source, column, _num(row, "target"), data
    )


def put_estimate(row: dict, column: str, value, lo=math.nan, hi=math.nan, reason: str = "") -> None:
    """Write one estimate cell of a table row (the one place that knows its keys: ``column``, ``column_lo``,
    ``column_hi``, ``column_status``): the value, its interval where both ends are finite, status ``ok``;
    or, where ``reason`` is given or the value is not a finite number, :func:`withdraw` it."""
    if reason or not np.isfinite(value):
        withdraw(row, column, reason or "no value")
        return
    row[column] = float(value)
    if np.isfinite(lo) and np.isfinite(hi):
        row[f"{column}_lo"], row[f"{column}_hi"] = float(lo), float(hi)
    row[f"{column}_status"] = "ok"


def withdraw(row: dict, column: str, reason: str) -> None:
    """Mark ``column``'s estimate in ``row`` not identified because of ``reason``: its value and interval go
    (a table never holds a number the data cannot pin down)."""
    for k in (column, f"{column}_lo", f"{column}_hi"):
        row.pop(k, None)
    row[f"{column}_status"] = f"not identified: {reason}"


@dataclass(frozen=True)
class TargetRow:
    """One target of a fit, typed: what a row of :class:`BoptTable` (and of fit.json) holds.

    Attributes
    ----------
    target : float              The target loss.
    status : str                ``ok`` or why the law could not be fitted at this target.
    n_points, n_batches : int   (S, E) points and distinct batch sizes that reached it.
    smin, sopt : float          The fit's fewest steps and steps at its optimum (NaN where none).
    emin : float                The fit's least data (tokens or examples; NaN where none).
    bmin, bmin_floor, bopt, bopt_envelope : Estimate
                                Each estimator's value, interval and status (:data:`SOURCES`).
    fits : dict                 Law -> ``(R^2 of log E, degrees of freedom)``; R^2 NaN where not fitted.
    """

    target: float
    status: str
    n_points: int
    n_batches: int
    smin: float
    sopt: float
    emin: float
    bmin: Estimate
    bmin_floor: Estimate
    bopt: Estimate
    bopt_envelope: Estimate
    fits: dict

    @classmethod
    def from_dict(cls, row: dict) -> TargetRow:
        """The typed row of a table row as stored (a ``dict``)."""
        cols = {c: estimate(row, c) for pairs in SOURCES.values() for c, _ in pairs}
        fits = {law: (_num(row, f"r2_log_{law}"), int(row[f"dof_{law}"])) for law in LAWS if f"dof_{law}" in row}
        return cls(
            _num(row, "target"),
            str(row.get("status", "")),
            int(row.get("n_points", 0)),
            int(row.get("n_batches", 0)),
            _num(row, "smin"),
            _num(row, "sopt"),
            _num(row, "emin"),
            fits=fits,
            **cols,
        )

    def estimate(self, column: str) -> Estimate:
        """The :class:`Estimate` in ``column`` (``bmin``, ``bmin_floor``, ``bopt`` or ``bopt_envelope``)."""
        if column not in {c for pairs in SOURCES.values() for c, _ in pairs}:
            raise ValueError(f"unknown estimate column {column!r}")
        return getattr(self, column)


def chosen_column(rows, quantity: str) -> str:
    """THE rule for which estimator to use for ``quantity`` (``bmin`` or ``bopt``): the law-free one
    (envelope, loss floors) when it is identified at >= :data:`MIN_IDENTIFIED` targets, else the
    three-phase fit when it is, else the law-free one (whose status says why not)."""
    if quantity not in SOURCES:
        raise ValueError(f"unknown quantity {quantity!r}; choose one of {sorted(SOURCES)}")
    cols = [c for c, _ in SOURCES[quantity]]
    return next((c for c in cols if sum(estimate(r, c).identified for r in rows) >= MIN_IDENTIFIED), cols[0])


def chosen(rows, quantity: str) -> list:
    """Per row, the :class:`Estimate` of ``quantity`` from :func:`chosen_column`'s estimator."""
    col = chosen_column(rows, quantity)
    return [estimate(r, col) for r in rows]


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
    crossovers : list of Crossover  Crossings of loss-vs-data curves.
    fits : list                     ``{law: FitResult}`` per row (row ``i`` is target ``i``: :meth:`index`).
    points : ESPoints               The (S, E) points behind the fits.
    envelope : EnvelopeBopt or None Bopt(D) read off the runs over the whole data range they cover
                                    (80 log-spaced amounts), not only at the targets.
    dynamic : list of dict          The dynamic-batch runs left out of the estimates (``name``, and at up to
                                    600 of their rows ``tokens``, ``loss``, ``batch``), for the report to draw.
    """

    rows: list
    verdict: dict
    law: str
    lr: float | None
    excluded: list
    crossovers: list
    fits: list = field(repr=False, default_factory=list)
    points: object = field(repr=False, default=None)
    envelope: Any = field(repr=False, default=None)
    dynamic: list = field(repr=False, default_factory=list)

    @property
    def target_rows(self) -> list[TargetRow]:
        """The rows, typed (:class:`TargetRow`), highest target first."""
        return [TargetRow.from_dict(r) for r in self.rows]

    def column(self, key):
        """One column of ``rows`` as a float array (NaN where missing)."""
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.rows], float)

    def estimates(self, quantity: str, column: str | None = None) -> list:
        """Per row, the :class:`Estimate` of ``quantity`` (``bmin``/``bopt``) from ``column``, by default
        the estimator :func:`chosen_column` picks."""
        return chosen(self.rows, quantity) if column is None else [estimate(r, column) for r in self.rows]

    def index(self, target: float) -> int:
        """The row of ``target`` (targets are positions, not keys); ``ValueError`` if it is not one."""
        for i, r in enumerate(self.rows):
            if r["target"] == target:
                return i
        raise ValueError(f"target {target:g} is not one of this table's targets")

    @classmethod
    def load(cls, path):
        """The fit.json ``dbs fit`` wrote at ``path`` (a file, or the folder holding it) as its typed record,
        :class:`FitRecord`: rows, laws, verdicts, envelope, with :meth:`~FitFile.estimates`
        and :meth:`~FitFile.summary` as here. One line names what is wrong with the file. (The fits and the
        (S, E) points stay with the table that made them: a record holds what the file holds.)"""
        from pathlib import Path

        from ..logs.schemas import read

        p = Path(path)
        return read(p / "fit.json" if p.is_dir() else p, FitRecord)

    def summary(self) -> str:
        """The text table ``dbs fit`` prints (:func:`fit_summary`)."""
        return fit_summary(self)

    def to_dict(self) -> dict:
        """``fit.json`` (format :data:`FIT_VERSION`): ``laws[i]`` holds the fitted laws' parameters of
        ``rows[i]``."""
        laws = [{name: f.law.params() for name, f in fits.items()} for fits in self.fits]
        return dict(
            version=FIT_VERSION,
            law=self.law,
            lr=self.lr,
            verdict=self.verdict,
            rows=self.rows,
            laws=laws,
            excluded=[list(e) for e in self.excluded],
            crossovers=[c.to_dict() for c in self.crossovers],
            envelope=None if self.envelope is None else self.envelope.to_dict(),
            dynamic_runs=self.dynamic,
        )

    def write(self, directory):
        """Write ``bopt_table.csv``, ``fit.json`` and ``es_points.csv`` atomically."""
        from ..io import atomic_write, json_default

        keys = sorted({k for r in self.rows for k in r}, key=_column_order)
        with atomic_write(f"{directory}/bopt_table.csv") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        with atomic_write(f"{directory}/fit.json") as fh:
            json.dump(self.to_dict(), fh, indent=1, default=json_default)
        p = self.points
        row_of = {float(r["target"]): i for i, r in enumerate(self.rows)}
        with atomic_write(f"{directory}/es_points.csv") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "batch_size", "target_index", "target", "S", "E"])
            w.writerows(zip(p.run, p.batch_size, (row_of[float(t)] for t in p.target), p.target, p.S, p.E))


_ORDER = [
    "target",
    "status",
    "n_points",
    "n_batches",
    "smin",
    "sopt",
    "emin",
    "bmin",
    "bmin_lo",
    "bmin_hi",
    "bopt",
    "bopt_lo",
    "bopt_hi",
]


def _column_order(k):
    return (_ORDER.index(k), k) if k in _ORDER else (len(_ORDER), k)


def monotonicity(values, lo=None, hi=None):
    """Verdict on "non-decreasing as the target falls" for values ordered from the highest target.

    ``holds``: every step is non-decreasing and, with intervals, the rise is
    resolved: the last value's interval lies wholly above the first's (a rise
    inside the noise is no evidence of growth). ``does not hold``: some
    decrease is larger than the intervals allow (the lower target's upper
    bound lies below the higher target's lower bound; without intervals,
    any decrease). ``inconclusive``: otherwise, or fewer than two values.
    Without intervals (exact values) a non-decreasing sequence holds.
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return "inconclusive"
    v = v[ok]
    if lo is None or hi is None:
        return "holds" if np.all(np.diff(v) >= 0) else "does not hold"
    lo, hi = np.asarray(lo, float)[ok], np.asarray(hi, float)[ok]
    if np.all(np.diff(v) >= 0):
        return "holds" if lo[-1] > hi[0] else "inconclusive"
    for i in range(v.size - 1):
        if v[i + 1] < v[i] and hi[i + 1] < lo[i]:
            return "does not hold"
    return "inconclusive"


def cell(row, key) -> str:
    """``value [lo, hi]``, ``value``, or ``n/i`` (not identified; the reason is printed below the table)."""
    if key not in row:
        return "n/i" if f"{key}_status" in row or key in ("bmin", "bopt") else "-"
    if f"{key}_lo" in row:
        return f"{row[key]:.4g} [{row[key + '_lo']:.3g}, {row[key + '_hi']:.3g}]"
    return f"{row[key]:.4g}"


def fit_summary(table) -> str:
    """The table ``dbs fit`` prints, as text, for a :class:`BoptTable` or the fit.json record
    (:meth:`BoptTable.load`): per target ``L*``, steps and data, ``Bmin``/``Bopt`` with intervals, each law's
    R^2, the verdicts, and why cells are not identified."""
    from .curves import DYNAMIC
    from ..table import format_table

    out: list[str] = []

    lr = "none recorded" if table.lr is None else f"{table.lr:g} (Bmin/Bopt hold at this rate)"
    out.append(f"{len(table.rows)} targets; law {table.law}; learning rate {lr}")
    cols, heads = [c for c, _ in COLUMNS], [h for _, h in COLUMNS]
    rows = []
    for r in table.rows:
        row = dict(r)
        for k in (c for pairs in SOURCES.values() for c, _ in pairs):
            row[k] = cell(r, k)
        for law in LAWS:
            if f"dof_{law}" in r:
                row[law] = (
                    f"{r[f'r2_log_{law}']:.3f} ({r[f'dof_{law}']})"
                    if f"r2_log_{law}" in r
                    else f"dof {r[f'dof_{law}']}: not fitted"
                )
        rows.append(row)
    laws = [k for k in LAWS if any(k in r for r in rows)]
    out.append(format_table(rows, cols + laws + ["status"], heads + [f"R2log {k} (dof)" for k in laws] + ["status"]))
    out.append(
        f"\nBmin grows as the target falls: {table.verdict['bmin']} (from the {table.verdict['bmin_source']}); "
        f"Bopt: {table.verdict['bopt']} (from the {table.verdict['bopt_source']})"
    )
    why = sorted(
        {r[k].removeprefix("not identified: ") for r in table.rows for k in r if k.endswith("_status") and r[k] != "ok"}
    )
    if why:
        out.append("not identified (n/i) because: " + "; ".join(why[:4]) + ("; ..." if len(why) > 4 else ""))
    for r, _, why in (tuple(e) for e in table.excluded):
        if why == DYNAMIC:
            out.append(f"run {r!r}: {why}")
    missed = [(r, t) for r, t, why in (tuple(e) for e in table.excluded) if why != DYNAMIC]
    if missed:
        out.append(
            f"excluded {len(missed)} (run, target) pairs that never reached the target, e.g. "
            + "; ".join(f"{r} @ {t:.4g}" for r, t in missed[:3])
        )
    if table.crossovers:
        out.append(f"{len(table.crossovers)} crossings of loss-vs-data curves, e.g.:")
        out.append(
            format_table(
                [c.to_dict() if hasattr(c, "to_dict") else c for c in table.crossovers[:6]],
                ["b_small", "b_large", "data", "loss"],
                ["B small", "B large", "data at crossing", "loss"],
            )
        )
    return "\n".join(out)


class FitRecord(FitFile):
    """fit.json read back (:meth:`BoptTable.load`): its schema (:class:`dbs_theory.logs.schemas.FitFile`) with the
    table's readings -- :meth:`estimates` and :meth:`summary` as :class:`BoptTable` gives them."""

    @property
    def target_rows(self) -> list[TargetRow]:
        """The rows, typed (:class:`TargetRow`), as :attr:`BoptTable.target_rows`."""
        return [TargetRow.from_dict(r) for r in self.rows]

    def estimates(self, quantity: str, column: str | None = None) -> list:
        """Per row, the :class:`Estimate` of ``quantity`` (``bmin``/``bopt``), as :meth:`BoptTable.estimates`."""
        return chosen(self.rows, quantity) if column is None else [estimate(r, column) for r in self.rows]

    def summary(self) -> str:
        """The text table ``dbs fit`` printed (:func:`fit_summary`)."""
        return fit_summary(self)
