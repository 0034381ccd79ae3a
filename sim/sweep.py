"""The E(S) frontier over a grid of batch sizes and targets, as one result object."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field

import numpy as np

from .frontier import bmin, bopt, steps_to_target, tuned_steps
from .nqm import NQM

__all__ = ["FrontierResult", "es_frontier", "phase_labels"]


@dataclass(frozen=True)
class FrontierResult:
    """Steps and data to each target at each batch size, plus per-target optima.

    Attributes
    ----------
    batch_sizes : ndarray (nB,)     Batch sizes, examples.
    targets : ndarray (nT,)         Target losses.
    S : ndarray (nB, nT)            Steps to target (``inf`` if unreachable).
    E : ndarray (nB, nT)            Data to target ``B S``, examples.
    eta : ndarray (nB, nT)          Learning rate used (constant unless tuned).
    smin, bmin, bopt, sopt, emin : ndarray (nT,)
        ``Smin`` (steps, noise-free limit), ``Bmin`` and ``Bopt`` (examples),
        ``Sopt`` (steps at ``Bopt``), ``Emin`` (examples). With a tuned rate
        ``bmin``/``bopt``/``sopt`` are NaN (no floor at a re-optimised rate),
        and ``emin`` is the least data on the grid.
    tuned : bool                    Whether ``eta`` was re-optimised per point.
    meta : dict                     NQM description and settings.
    """

    batch_sizes: np.ndarray
    targets: np.ndarray
    S: np.ndarray
    E: np.ndarray
    eta: np.ndarray
    smin: np.ndarray
    bmin: np.ndarray
    bopt: np.ndarray
    sopt: np.ndarray
    emin: np.ndarray
    tuned: bool = False
    meta: dict = field(default_factory=dict)

    def phases(self) -> np.ndarray:
        """Phase label per point: ``linear``, ``quadratic``, ``inverse`` or ``unreached``."""
        return phase_labels(self)

    def rows(self):
        """Tidy rows: one dict per (batch, target) pair."""
        ph = self.phases()
        out = []
        for k, L in enumerate(self.targets):
            for b, B in enumerate(self.batch_sizes):
                out.append(
                    dict(
                        target=float(L),
                        batch_size=float(B),
                        S=float(self.S[b, k]),
                        E=float(self.E[b, k]),
                        eta=float(self.eta[b, k]),
                        phase=ph[b, k],
                    )
                )
        return out

    def target_rows(self):
        """One dict per target with ``Smin``, ``Bmin``, ``Bopt``, ``Sopt``, ``Emin``."""
        keys = ("smin", "bmin", "bopt", "sopt", "emin")
        return [
            dict(target=float(L), **{k: float(getattr(self, k)[i]) for k in keys}) for i, L in enumerate(self.targets)
        ]

    def to_pandas(self):
        """The tidy rows as a ``pandas.DataFrame`` (pandas is optional)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def write(self, directory):
        """Write ``frontier.csv``, ``targets.csv`` and ``frontier.json`` into ``directory``."""
        from dbs_theory.io import atomic_write, json_default

        rows, trows = self.rows(), self.target_rows()
        for name, data in (("frontier.csv", rows), ("targets.csv", trows)):
            with atomic_write(f"{directory}/{name}") as fh:
                wr = csv.DictWriter(fh, fieldnames=list(data[0]))
                wr.writeheader()
                wr.writerows(data)
        with atomic_write(f"{directory}/frontier.json") as fh:
            json.dump(
                dict(meta=self.meta, tuned=self.tuned, points=rows, targets=trows), fh, indent=1, default=json_default
            )


def phase_labels(fr: FrontierResult) -> np.ndarray:
    """Label each frontier point with its E(S) phase (a display heuristic).

    With ``dE/dS`` the slope along the frontier (central differences over
    the batch grid): ``linear`` where the slope is at least half ``Bmin`` (the
    asymptote's slope), ``inverse`` where ``B > Bopt`` and ``E > 1.1 Emin``,
    ``quadratic`` otherwise. Fitted phase boundaries come from
    :func:`dbs_theory.measure.fit.fit_es`.
    """
    lab = np.full(fr.S.shape, "unreached", dtype=object)
    for k in range(fr.targets.size):
        S, E, B = fr.S[:, k], fr.E[:, k], fr.batch_sizes
        ok = np.isfinite(S)
        if ok.sum() < 3 or not np.isfinite(fr.bopt[k]):
            lab[ok, k] = "n/a"
            continue
        idx = np.nonzero(ok)[0]
        slope = np.gradient(E[idx], S[idx])
        for j, b in enumerate(idx):
            if slope[j] >= 0.5 * fr.bmin[k]:
                lab[b, k] = "linear"
            elif B[b] > fr.bopt[k] and E[b] > 1.1 * fr.emin[k]:
                lab[b, k] = "inverse"
            else:
                lab[b, k] = "quadratic"
    return lab


def _tuned_frontier(nqm, Bs, Ts, meta, bar):
    """:func:`es_frontier` with the learning rate re-optimised for every (batch, target)."""
    nB, nT = Bs.size, Ts.size
    S, etas = np.empty((nB, nT)), np.empty((nB, nT))
    for b in range(nB):
        for k in range(nT):
            S[b, k], etas[b, k] = tuned_steps(nqm, Bs[b], Ts[k])
            bar.update()
    smin = np.array([tuned_steps(nqm, math.inf, t)[0] for t in Ts])
    E = Bs[:, None] * S
    emin = np.where(np.isfinite(E).any(0), np.nanmin(np.where(np.isfinite(E), E, np.nan), 0), np.nan)
    bar.close()
    nan = np.full(nT, np.nan)
    return FrontierResult(Bs, Ts, S, E, etas, smin, nan, nan.copy(), nan.copy(), emin, True, dict(meta, eta="tuned"))


def es_frontier(nqm: NQM, eta, batch_sizes, targets, progress=False) -> FrontierResult:
    """Steps and data to every target at every batch size, with per-target optima.

    Parameters
    ----------
    nqm : NQM
    eta : float or "tuned"
        Fixed learning rate (the WSD stable phase), or ``"tuned"`` to
        re-optimise it for every (batch, target) as McCandlish's law assumes.
    batch_sizes : array_like
        Batch sizes, examples.
    targets : array_like
        Target losses.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FrontierResult
    """
    from tqdm.auto import tqdm

    Bs = np.asarray(batch_sizes, float)
    Ts = np.asarray(targets, float)
    if Bs.ndim != 1 or Bs.size == 0 or np.any(~(Bs > 0)) or not np.all(np.isfinite(Bs)):
        raise ValueError(f"batch_sizes must be positive and finite; got {batch_sizes!r}")
    if Ts.ndim != 1 or Ts.size == 0 or not np.all(np.isfinite(Ts)):
        raise ValueError(f"targets must be finite numbers; got {targets!r}")
    nB, nT = Bs.size, Ts.size
    meta = dict(d=nqm.d, stored_modes=int(nqm.h.size), L_irr=nqm.L_irr, initial_loss=nqm.initial_loss())
    bar = tqdm(total=nB * nT if eta == "tuned" else nT, disable=not progress, desc="frontier")
    if isinstance(eta, str):
        if eta != "tuned":
            raise ValueError(f"eta={eta!r} must be a number or 'tuned'")
        return _tuned_frontier(nqm, Bs, Ts, meta, bar)
    nqm.check_stable(eta)
    S = steps_to_target(nqm, eta, Bs[:, None], Ts[None, :])
    smin = steps_to_target(nqm, eta, np.inf, Ts)
    b_min, b_opt, s_opt = (np.full(nT, np.nan) for _ in range(3))
    for k, t in enumerate(Ts):
        if t > nqm.L_irr:
            b_min[k] = bmin(nqm, eta, t)
            if t < nqm.initial_loss():
                b_opt[k] = bopt(nqm, eta, t)
                s_opt[k] = steps_to_target(nqm, eta, b_opt[k], t)
        bar.update()
    bar.close()
    return FrontierResult(
        Bs,
        Ts,
        S,
        Bs[:, None] * S,
        np.full((nB, nT), float(eta)),
        np.atleast_1d(smin),
        b_min,
        b_opt,
        s_opt,
        b_opt * s_opt,
        False,
        dict(meta, eta=float(eta)),
    )
