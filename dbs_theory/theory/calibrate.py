"""Fit a modal loss model (:class:`dbs_theory.theory.modal.ModalModel`) to a sweep's loss curves.

The family: modes whose per-step rates ``x`` are log-spaced from ``x_lo`` to
``x_hi`` (:data:`NODES` of them), whose initial excess loss and noise-floor
coefficient are power laws in the rate, per unit of ``log x``::

    initial(x) = E x^beta_e / Z_e,     floor(x) = F x^beta_f / Z_f

(``Z`` normalise each to a total of ``E`` and ``F`` over the nodes), plus
``L_irr``: seven parameters. Every NQM with power-law curvatures ``h ~ i^-a``,
noise ``c ~ h^b`` and a constant ``m0`` is in it up to the discreteness of its
modes: mode ``i`` has rate ``eta h_i``, and there are ``i / a`` modes per unit of
``log x``, so both densities are power laws of ``x``. A spectrum with a gap or
two bands is not.

The fit reads what ``dbs fit`` writes: the envelope's smoothed loss per
batch and data amount (``fit.json``'s ``envelope.mean_by_batch``, the local
line without a running minimum, which would bias noisy curves low), all at the
sweep's one learning rate, and minimises the relative residuals
``model / measured - 1`` by trust-region least squares (a Cauchy loss of scale
:data:`ROBUST_SCALE`, so a run that strays as a whole counts less) from a few starts.
The fitted model then predicts a run under another batch schedule and
another learning-rate plan (the plan's multiples of the sweep's rate):
:func:`dbs_theory.rules.calibrated.choose` optimises the batch on it.

Units: the envelope's (tokens or examples per step); rates are per optimizer step.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .modal import ModalModel

__all__ = ["NODES", "ROBUST_SCALE", "Calibration", "family", "calibrate"]

#: rate nodes of the fitted family
NODES = 96
#: relative residuals beyond about this size count less than squared (Cauchy loss): one seed's curve strays from
#: the expected loss by 10-60% where a few slow modes carry its excess (their initial draw), and a least-squares
#: fit follows those strays (on the NQM sweeps of sim.rule_chain the WSD schedule then lost to the best fixed batch)
ROBUST_SCALE = 0.05
_NAMES = ("log_x_hi", "log_span", "beta_e", "log_E", "beta_f", "log_F", "L_irr")


def family(theta, nodes: int = NODES) -> ModalModel:
    """The family's model at parameters ``theta`` (:data:`_NAMES` order; module doc)."""
    log_hi, span, be, log_E, bf, log_F, L_irr = (float(v) for v in theta)
    x = np.exp(np.linspace(log_hi - span, log_hi, nodes))
    e, f = x**be, x**bf
    return ModalModel(x, math.exp(log_F) * f / f.sum(), math.exp(log_E) * e / e.sum(), L_irr)


@dataclass(frozen=True)
class Calibration:
    """A fitted model and how well it fits.

    Attributes
    ----------
    model : ModalModel   The fitted modes (rates at the sweep's learning rate).
    params : dict        The family's seven parameters by name.
    rms : float          Root mean square of the relative residuals ``model / measured - 1``.
    spread : float       Root mean square, over the data amounts, of the standard deviation of ``log loss``
                         across the sweep's batches: the differences between batches the model is to explain.
    points : int         Measured ``(batch, data)`` points fitted.
    batches : ndarray    The sweep's batch sizes.
    data : ndarray       The envelope's data amounts.
    """

    model: ModalModel
    params: dict
    rms: float
    spread: float
    points: int
    batches: np.ndarray
    data: np.ndarray

    @property
    def r2(self) -> float:
        """``1 - rms^2 / spread^2``: the share of the between-batch differences of the curves the model explains
        (-inf where the batches do not differ at all)."""
        return 1.0 - (self.rms / self.spread) ** 2 if self.spread > 0 else -math.inf


def _arrays(envelope):
    get = (lambda k: envelope.get(k)) if isinstance(envelope, dict) else (lambda k: getattr(envelope, k, None))
    clean = lambda v: np.array([np.nan if x is None else x for x in np.ravel(v)], float)
    by = get("mean_by_batch")
    by = get("by_batch") if by is None else by
    if by is None:
        raise ValueError("the envelope holds no per-batch losses (a fit.json from dbs fit on a sweep has them)")
    L = np.array([[np.nan if v is None else v for v in row] for row in by], float)
    return clean(get("batches")), clean(get("data")), L


def _starts(L, B):
    """A few starting points: fast or slow top mode, short or long spectrum, flat or steep densities."""
    lo = float(np.nanmin(L))
    excess = max(float(np.nanmax(L)) - 0.5 * lo, 1e-12)
    floor = max(float(np.nanmin(L[0])) - 0.5 * lo, 1e-12) * float(B[0])
    for hi, span, be, bf in itertools.product((0.2, 1.0), (6.0, 12.0), (0.0, 1.0), (0.5,)):
        yield np.array([math.log(hi), span, be, math.log(excess), bf, math.log(floor), 0.5 * lo])


def calibrate(envelope, nodes: int = NODES, start=None) -> Calibration:
    """Fit the family (module doc) to the envelope's per-batch smoothed losses; refuses an envelope with fewer
    than two batches or fewer than four points per parameter. ``start``: one starting point (the seven
    parameters) in place of the default few (a refit near a known fit)."""
    from scipy import optimize

    B, D, L = _arrays(envelope)
    ok = np.isfinite(L) & (L > 0)
    if B.size < 2 or ok.sum() < 4 * len(_NAMES):
        raise ValueError(f"too few measured points to calibrate a model ({int(ok.sum())} over {B.size} batches)")
    bi, di = np.nonzero(ok)
    obs, Bk, Dk = L[ok], B[bi], D[di]
    lo_bound = [math.log(1e-8), 0.5, -2.0, -60.0, -2.0, -60.0, 0.0]
    hi_bound = [math.log(1.95), 30.0, 3.0, 30.0, 3.0, 60.0, 0.999 * float(obs.min())]

    def resid(theta):
        m = family(theta, nodes)
        stat = m.floor / (2.0 - m.rate)
        with np.errstate(divide="ignore"):
            loga = 2.0 * np.log(np.abs(1.0 - m.rate))
        n = (Dk / Bk)[:, None]
        pred = m.L_irr + np.sum(stat / Bk[:, None] + (m.initial - stat / Bk[:, None]) * np.exp(n * loga), axis=1)
        return pred / obs - 1.0

    best = None
    for x0 in _starts(L, B) if start is None else [np.asarray(start, float)]:
        x0 = np.clip(x0, lo_bound, hi_bound)
        res = optimize.least_squares(
            resid,
            x0,
            bounds=(lo_bound, hi_bound),
            method="trf",
            x_scale="jac",
            max_nfev=300,
            loss="cauchy",
            f_scale=ROBUST_SCALE,
        )
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None  # starts is never empty
    rms = float(np.sqrt(np.mean(best.fun**2)))
    logs = np.log(np.where(ok, L, 1.0))
    two = ok.sum(axis=0) >= 2  # data amounts at which at least two batches were measured
    per = [float(np.var(logs[ok[:, j], j])) for j in np.nonzero(two)[0]]
    spread = float(np.sqrt(np.mean(per))) if per else 0.0
    return Calibration(family(best.x, nodes), dict(zip(_NAMES, map(float, best.x))), rms, spread, int(obs.size), B, D)
