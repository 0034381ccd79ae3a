"""A modal model of training loss, and the loss-optimal batch schedule on it under a learning-rate plan.

The noisy quadratic model, written in what a loss curve can measure: the excess
loss is a sum over modes, each relaxing geometrically toward a noise floor.
Per mode ``i`` and optimizer step at batch ``B`` and rate ``s`` times the peak::

    u  <-  a u + (1 - a) q / B,     a = (1 - s x_i)^2,     q = s F_i / (2 - s x_i)

where ``u`` is the mode's share of the excess loss (loss units), ``x_i`` its
per-step rate at the peak learning rate (``eta h_i`` on the NQM), ``F_i`` its
floor coefficient (``counts_i eta c_i / 2``: the mode's floor at batch 1 is
``F_i / (2 - x_i)``) and ``u(0)`` its initial excess. The loss is
``L_irr + sum_i u_i``. Over ``n`` steps at a constant batch and rate the map is
closed form, ``u <- a^n u + (1 - a^n) q / B``, so a whole schedule is a
composition of affine maps and its gradient in ``log B`` per piece comes from
one adjoint pass.

:func:`optimise` cuts a run of ``horizon`` examples into pieces (log-spaced
early, linear late and through a decay, :func:`discretise`), holds the rate
constant on finer cells where the plan varies, and minimises the *relaxed*
loss (real step counts ``n = Delta / B``) in ``log B`` per piece with L-BFGS-B.
The NQM's exact optimum (:func:`sim.optimal_schedule`) and the calibrated-model
rule (:mod:`dbs_theory.theory.calibrate`, a model fitted to a sweep) both run it.

Units: data and batch sizes in examples (or tokens: the model does not care,
as long as the rates were measured per step of that unit's batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..schedules.lr_plan import LRPlan

__all__ = [
    "ModalModel",
    "Grid",
    "discretise",
    "relaxed_loss",
    "bounds",
    "warm_starts",
    "optimise",
    "FIRST_PIECE",
    "LR_CELLS",
]

#: the first piece ends at this fraction of the stable phase; later pieces are log-spaced up to its middle
FIRST_PIECE = 1e-3
#: cells across a varying rate (a decay or cosine), on top of the piece edges
LR_CELLS = 128


@dataclass(frozen=True)
class ModalModel:
    """Modes of the excess loss (module doc); arrays of one length, ``d`` modes.

    Attributes
    ----------
    rate : ndarray      Per-step rate ``x_i`` at the peak learning rate (``eta h_i``); SGD is stable where the
                        rate times the plan's multiple stays below 2. (The NQM's own model, ``NQM.modal()``, has
                        ``x_i = h_i``: its "peak" is a rate of 1 and the multiples are the rates themselves.)
    floor : ndarray     Floor coefficients ``F_i`` (loss x examples): the floor at batch ``B`` is ``F_i / (B (2 -
    x_i))``.
    initial : ndarray   Excess loss of each mode at the start (loss units).
    L_irr : float       The loss no batch or step count removes.
    """

    rate: np.ndarray
    floor: np.ndarray
    initial: np.ndarray
    L_irr: float = 0.0

    def __post_init__(self):
        arrays = [np.atleast_1d(np.asarray(getattr(self, k), float)) for k in ("rate", "floor", "initial")]
        if len({a.size for a in arrays}) != 1:
            raise ValueError("rate, floor and initial must hold one value per mode")
        if not all(np.all(np.isfinite(a)) for a in arrays) or np.any(arrays[1] < 0) or np.any(arrays[2] < 0):
            raise ValueError("floor and initial must be finite and >= 0, rate finite")
        if np.any(arrays[0] <= 0):
            raise ValueError(f"every rate must be > 0; got min {arrays[0].min():g}")
        for k, a in zip(("rate", "floor", "initial"), arrays):
            object.__setattr__(self, k, a)

    def cells(self, scale):
        """``(loga, q)`` per cell (rows, the rate ``scale`` times the peak) and mode: ``log a`` and ``q``."""
        sx = np.asarray(scale, float)[:, None] * self.rate[None, :]
        with np.errstate(divide="ignore"):
            loga = 2.0 * np.log(np.abs(1.0 - sx))
        return loga, np.asarray(scale, float)[:, None] * self.floor[None, :] / (2.0 - sx)

    def fixed_loss(self, batch_size, data) -> np.ndarray:
        """Loss at the peak rate for each fixed ``batch_size`` (rows) after each amount of ``data`` (columns),
        with real step counts ``data / batch_size``."""
        B = np.asarray(batch_size, float)[:, None, None]
        n = np.asarray(data, float)[None, :, None] / B
        stat = self.floor / (2.0 - self.rate) / B
        with np.errstate(divide="ignore"):
            loga = 2.0 * np.log(np.abs(1.0 - self.rate))
        return self.L_irr + np.sum(stat + (self.initial - stat) * np.exp(n * loga), axis=-1)

    def floor_loss(self, batch_size, scale=1.0) -> np.ndarray:
        """The loss a fixed ``batch_size`` settles at, at ``scale`` times the peak rate."""
        s = float(scale)
        return self.L_irr + np.sum(s * self.floor / (2.0 - s * self.rate)) / np.asarray(batch_size, float)


@dataclass(frozen=True)
class Grid:
    """A run cut into batch pieces and rate cells.

    Attributes
    ----------
    starts : ndarray (K,)      Data where each batch piece begins; ``starts[0] = 0``.
    horizon : float            Data at the end of the run.
    cell_data : ndarray (J,)   Data in each cell.
    cell_piece : ndarray (J,)  The piece each cell belongs to.
    cell_scale : ndarray (J,)  The rate on each cell, as a multiple of the peak (at the cell's data midpoint).
    """

    starts: np.ndarray
    horizon: float
    cell_data: np.ndarray
    cell_piece: np.ndarray
    cell_scale: np.ndarray

    @property
    def ends(self) -> np.ndarray:
        """Data where each piece ends."""
        return np.append(self.starts[1:], self.horizon)

    def on_pieces(self, starts, sizes) -> np.ndarray:
        """The batch per piece that takes as many steps on it as the step schedule ``(starts, sizes)`` does:
        the harmonic mean of the schedule's batch over the piece's data."""
        s, b = np.asarray(starts, float), np.asarray(sizes, float)
        edges = np.append(s[1:], np.inf)
        steps = [
            np.sum(np.clip(np.minimum(edges, z) - np.maximum(s, a), 0.0, None) / b)
            for a, z in zip(self.starts, self.ends)
        ]
        return (self.ends - self.starts) / np.array(steps)


def _piece_starts(stable, horizon, pieces, decaying):
    """Piece starts: log-spaced from ``FIRST_PIECE stable`` to ``stable / 2``; half the stable pieces linear
    over its second half (most of the data, and a constant-rate optimum rises steeply at the end); then
    ``pieces // 8`` linear ones over a decay."""
    n_decay = max(2, pieces // 8) if decaying else 0
    n_lin = max(2, (pieces - n_decay) // 2)
    early = np.geomspace(FIRST_PIECE * stable, 0.5 * stable, pieces - n_decay - n_lin)[:-1]
    late = stable * (0.5 + 0.5 * np.arange(n_lin) / n_lin)
    decay = stable + (horizon - stable) * np.arange(n_decay) / n_decay if n_decay else np.array([])
    return np.concatenate([[0.0], early, late, decay])


def discretise(horizon: float, plan: LRPlan = LRPlan(), pieces: int = 32, lr_cells: int = LR_CELLS) -> Grid:
    """The pieces and cells of a run of ``horizon`` data under ``plan`` (module doc). A cosine plan's pieces
    are laid out as a constant rate's; its rate varies on ``lr_cells`` cells over the whole run."""
    if int(pieces) != pieces or pieces < 4:
        raise ValueError(f"pieces={pieces!r} must be a whole number >= 4")
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon={horizon!r} must be a positive amount of data")
    decaying = plan.shape == "wsd" and plan.decay > 0
    stable = plan.stable_end(horizon) if decaying else float(horizon)
    starts = _piece_starts(stable, float(horizon), int(pieces), decaying)
    edges = np.append(starts, float(horizon))
    if not plan.constant:
        lo = plan.stable_end(horizon)
        edges = np.unique(np.concatenate([edges, np.linspace(lo, horizon, lr_cells + 1)]))
    mid = 0.5 * (edges[:-1] + edges[1:])
    piece = np.searchsorted(starts, mid, side="right") - 1
    return Grid(starts, float(horizon), np.diff(edges), piece, plan.scale(mid, horizon))


def relaxed_loss(model: ModalModel, grid: Grid, log_batch, grad: bool = False, arrays=None):
    """The relaxed final loss at ``B_k = exp(log_batch[k])`` per piece; with ``grad`` also its gradient in
    ``log_batch`` (adjoint pass). ``arrays``: :meth:`ModalModel.cells` of ``grid.cell_scale``, cached."""
    from ._kernels import relaxed_schedule_loss

    loga, q = arrays if arrays is not None else model.cells(grid.cell_scale)
    x = np.ascontiguousarray(log_batch, dtype=float)
    g = np.empty(x.size)
    work = np.empty(loga.shape), np.empty((loga.shape[0] + 1, loga.shape[1]))
    ones = np.ones(loga.shape[1])
    loss = model.L_irr + relaxed_schedule_loss(
        loga, q, ones, model.initial, grid.cell_data, grid.cell_piece, x, g, *work
    )
    return (loss, g) if grad else loss


def bounds(grid: Grid, min_batch: float, max_batch: float = math.inf):
    """``log B`` bounds per piece: from ``min_batch`` to the smaller of ``max_batch`` and the piece's data
    (at least one step on it), never below ``min_batch``."""
    lo = math.log(min_batch)
    return [(lo, max(lo, math.log(min(max_batch, d)))) for d in grid.ends - grid.starts]


def warm_starts(grid: Grid, fixed_batch: float) -> list:
    """Starting batches per piece: the fixed batch throughout, and a ramp ``B ~ D`` through it at a quarter of
    the run."""
    mid = np.sqrt(np.maximum(grid.starts, grid.ends * FIRST_PIECE) * grid.ends)
    return [np.full(grid.starts.size, float(fixed_batch)), fixed_batch * mid / (0.25 * grid.horizon)]


def optimise(
    model: ModalModel, grid: Grid, starts, min_batch: float, max_batch: float = math.inf, arrays=None
) -> np.ndarray:
    """The per-piece batches (``grid.starts.size``) that minimise the relaxed loss, by L-BFGS-B in ``log B``
    from each start (a sequence of per-piece batches); the best descent's batches."""
    from scipy import optimize

    arrays = arrays if arrays is not None else model.cells(grid.cell_scale)
    bnd = bounds(grid, min_batch, max_batch)
    lo, hi = np.array([b[0] for b in bnd]), np.array([b[1] for b in bnd])
    best = None
    for x0 in starts:
        x0 = np.clip(np.log(np.asarray(x0, float)), lo, hi)
        scale = 1.0 / relaxed_loss(model, grid, x0, arrays=arrays)
        fun = lambda x: tuple(v * scale for v in relaxed_loss(model, grid, x, grad=True, arrays=arrays))
        res = optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", bounds=bnd, options=dict(maxiter=2000, ftol=1e-13, gtol=1e-9)
        )
        if best is None or res.fun < best[0]:
            best = (res.fun, res.x)
    assert best is not None  # starts is never empty
    return np.exp(best[1])
