"""The loss-optimal batch schedule on the NQM, by gradients of the exact expected loss (issue 29).

The run is cut into ``pieces`` intervals of data (examples), log-spaced from
``FIRST_PIECE budget`` to half the budget, linear over the second half and over
a WSD decay (:func:`_piece_starts`); the batch is constant on each.
Inside a piece the learning rate is held constant on finer *cells* (its value
at the cell's data midpoint) wherever the LR schedule varies. On a cell of
``Delta`` examples at batch ``B`` and rate ``eta`` every mode's second moment
makes the exact closed-form jump of ``n = Delta / B`` steps::

    m' = E m + (1 - E) q / B,   E = (1 - eta h)^(2 n),   q / B = m_inf = eta c / (B h (2 - eta h))

so the final loss ``L_irr + sum_i counts_i h_i m_i / 2`` is a composition of
per-cell affine maps of ``m``, and its gradient in ``u_k = log B_k`` follows
from one forward pass and one adjoint (backward) pass::

    dm'/du = -n log(a) E (m - q/B) - (1 - E) q/B,    lambda <- E lambda.

The step count ``n`` is real here (the *relaxed* loss). The one loss the
package reports is :func:`sim.schedule_eval.loss_at_budget` (whole steps,
the last step of a segment may run past its end, the loss read at exactly the
horizon); the two agree exactly where every cell holds a whole number of steps
at a constant rate, and the relaxation only steers the optimiser: every loss
this module returns is ``loss_at_budget``'s.

``lr_schedule``: ``"constant"`` (``eta`` throughout, horizon = budget),
``"wsd"`` (``eta`` for ``budget`` examples, then a linear decay to ``0.1 eta``
over ``0.2 budget`` more; horizon ``1.2 budget``; the decay's batches are
optimised too, on ``pieces // 8`` linear pieces), ``"cosine"`` (cosine from
``eta`` to 0 at the budget).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from dbs_theory.batch_schedules import BatchSchedule, constant_batch
from dbs_theory.lr_schedules import cosine, wsd

from .nqm import NQM

__all__ = ["LR_SCHEDULES", "lr_setup", "Problem", "problem", "relaxed_loss", "optimal_schedule",
           "FIRST_PIECE", "WSD_DECAY", "WSD_FINAL"]

LR_SCHEDULES = ("constant", "wsd", "cosine")
#: the first piece ends at this fraction of the budget; later pieces are log-spaced up to the budget
FIRST_PIECE = 1e-3
#: WSD as ``sim.schedule_eval.ablations`` runs it: decay over this fraction of the budget, to this ratio
WSD_DECAY, WSD_FINAL = 0.2, 0.1
_LR_CELLS = 128  # cells across a varying LR (decay or cosine), on top of the piece edges


def lr_setup(eta: float, budget: float, lr_schedule: str = "constant"):
    """``(lr, horizon)``: the LR schedule (a number or a Piecewise of data) and where the run ends (examples)."""
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget={budget!r} must be a positive number of examples")
    if lr_schedule == "wsd":
        return wsd(float(eta), 0.0, float(budget), WSD_DECAY * budget, WSD_FINAL), (1 + WSD_DECAY) * budget
    if lr_schedule == "cosine":
        return cosine(float(eta), float(budget)), float(budget)
    return float(eta), float(budget)


@dataclass(frozen=True)
class Problem:
    """The optimiser's discretisation of one run.

    Attributes
    ----------
    starts : ndarray (K,)      Data (examples) where each batch piece begins; ``starts[0] = 0``.
    horizon : float            Data at the end of the run (examples).
    lr, lr_schedule            The LR schedule and its name.
    cell_data : ndarray (J,)   Examples in each cell.
    cell_piece : ndarray (J,)  The piece each cell belongs to.
    cell_eta : ndarray (J,)    The rate on each cell (the schedule at the cell's data midpoint).
    """

    starts: np.ndarray
    horizon: float
    lr: object
    lr_schedule: str
    cell_data: np.ndarray
    cell_piece: np.ndarray
    cell_eta: np.ndarray

    @property
    def ends(self) -> np.ndarray:
        """Data (examples) where each piece ends."""
        return np.append(self.starts[1:], self.horizon)

    def schedule(self, batch_size, **params) -> BatchSchedule:
        """The :class:`BatchSchedule` (examples) holding ``batch_size[k]`` (examples) on piece ``k``."""
        return BatchSchedule(tuple(float(s) for s in self.starts), tuple(float(b) for b in batch_size), "examples",
                             kind="step", params=dict(params))

    def on_pieces(self, schedule: BatchSchedule) -> np.ndarray:
        """The batch (examples) per piece that takes as many steps on it as ``schedule`` (examples) does:
        the harmonic mean of ``schedule`` over the piece's data."""
        s, b = np.asarray(schedule.starts, float), np.asarray(schedule.sizes, float)
        edges = np.append(s[1:], np.inf)
        steps = [np.sum(np.clip(np.minimum(edges, z) - np.maximum(s, a), 0.0, None) / b)
                 for a, z in zip(self.starts, self.ends)]
        return (self.ends - self.starts) / np.array(steps)


def _piece_starts(budget, lr_schedule, pieces):
    """Piece starts (examples): log-spaced from ``FIRST_PIECE budget`` to ``budget / 2``; half the stable
    pieces linear over the second half (most of the data, and a constant-rate optimum rises steeply
    at the end); then the WSD decay's, linear."""
    n_decay = max(2, pieces // 8) if lr_schedule == "wsd" else 0
    n_lin = max(2, (pieces - n_decay) // 2)
    early = np.geomspace(FIRST_PIECE * budget, 0.5 * budget, pieces - n_decay - n_lin)[:-1]
    late = budget * (0.5 + 0.5 * np.arange(n_lin) / n_lin)
    decay = budget * (1 + WSD_DECAY * np.arange(n_decay) / n_decay) if n_decay else np.array([])
    return np.concatenate([[0.0], early, late, decay])


def problem(eta: float, budget: float, lr_schedule: str = "constant", pieces: int = 32,
            lr_cells: int = _LR_CELLS) -> Problem:
    """The pieces and cells of a run of ``budget`` examples under ``lr_schedule`` (module doc)."""
    if int(pieces) != pieces or pieces < 4:
        raise ValueError(f"pieces={pieces!r} must be a whole number >= 4")
    lr, horizon = lr_setup(eta, budget, lr_schedule)
    starts = _piece_starts(float(budget), lr_schedule, int(pieces))
    edges = np.append(starts, horizon)
    if lr_schedule != "constant":
        lo = budget if lr_schedule == "wsd" else 0.0
        edges = np.unique(np.concatenate([edges, np.linspace(lo, horizon, lr_cells + 1)]))
    mid = 0.5 * (edges[:-1] + edges[1:])
    eta_c = np.full(mid.size, float(eta)) if lr_schedule == "constant" else np.asarray(lr(mid), float)
    piece = np.searchsorted(starts, mid, side="right") - 1
    return Problem(starts, float(horizon), lr, lr_schedule, np.diff(edges), piece, eta_c)


def _cell_arrays(nqm: NQM, prob: Problem):
    """Per cell and mode: ``log a = 2 log|1 - eta h|`` and ``q = B m_inf``; the loss weights."""
    eh = prob.cell_eta[:, None] * nqm.h[None, :]
    with np.errstate(divide="ignore"):
        loga = 2.0 * np.log(np.abs(1.0 - eh))
    q = prob.cell_eta[:, None] * nqm.c[None, :] / (nqm.h[None, :] * (2.0 - eh))
    return loga, q, 0.5 * nqm.weights * nqm.h


def relaxed_loss(nqm: NQM, prob: Problem, log_batch, grad: bool = False, arrays=None):
    """The relaxed final loss (module doc) at ``B_k = exp(log_batch[k])`` (examples); with ``grad``, also
    its gradient in ``log_batch`` (adjoint pass). ``arrays`` caches :func:`_cell_arrays` between calls."""
    from ._kernels import relaxed_schedule_loss

    loga, q, w = arrays if arrays is not None else _cell_arrays(nqm, prob)
    x = np.ascontiguousarray(log_batch, dtype=float)
    g = np.empty(x.size)
    work = np.empty(loga.shape), np.empty((loga.shape[0] + 1, loga.shape[1]))
    loss = nqm.L_irr + relaxed_schedule_loss(loga, q, w, nqm.m0, prob.cell_data, prob.cell_piece, x, g, *work)
    return (loss, g) if grad else loss


def _bounds(prob: Problem, budget):
    """``log B`` bounds per piece: from ``1e-7 budget`` up to the piece's data (one step at least)."""
    lo = math.log(budget * 1e-7)
    return [(lo, max(lo + 1.0, math.log(d))) for d in prob.ends - prob.starts]


def _starts(prob: Problem, fixed_batch):
    """Warm starts: the best fixed batch, and a ramp ``B ~ D`` through it at a quarter of the budget."""
    mid = np.sqrt(np.maximum(prob.starts, prob.ends * FIRST_PIECE) * prob.ends)
    ramp = fixed_batch * mid / (0.25 * prob.horizon)
    return [np.full(prob.starts.size, math.log(fixed_batch)), np.log(ramp)]


def _minimise(nqm, prob, x0, bounds, arrays):
    scale = 1.0 / relaxed_loss(nqm, prob, x0, arrays=arrays)
    fun = lambda x: tuple(v * scale for v in relaxed_loss(nqm, prob, x, grad=True, arrays=arrays))
    x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options=dict(maxiter=2000, ftol=1e-13, gtol=1e-9))
    return res.x


def optimal_schedule(nqm: NQM, eta: float, budget: float, lr_schedule: str = "constant", pieces: int = 32,
                     fixed=None, return_info=False, candidates=None):
    """The best ``pieces``-piece batch schedule for a run of ``budget`` examples (module doc).

    L-BFGS-B on the relaxed loss in ``log B`` per piece (bounds: ``1e-7 budget``
    to the piece's data), from two starts: the best fixed batch and a
    ramp ``B ~ D`` through it. Every candidate schedule (``candidates``; e.g.
    the rules' schedules) whose exact loss beats that optimum is a further
    start, mapped onto the pieces (:meth:`Problem.on_pieces`). The result is
    the lowest :func:`sim.schedule_eval.loss_at_budget` among the optima and the
    starts themselves (the best fixed batch and each candidate as they are), so
    it never loses to the best fixed batch nor to a candidate; ``info["start"]``
    names the winner (a candidate's name where no refinement of it on the
    pieces beats it: few whole steps, or a batch above a narrow piece's data).

    Parameters
    ----------
    nqm : NQM
    eta : float               Peak (stable) learning rate.
    budget : float            Examples in the stable phase (the whole run for constant and cosine).
    lr_schedule : str         ``constant``, ``wsd`` or ``cosine``.
    pieces : int              Batch pieces (>= 4).
    fixed : (float, float)    ``(B, loss)`` of the best fixed batch for this run, if already known.
    candidates : dict         Name -> :class:`BatchSchedule` (examples) run under this LR schedule.

    Returns
    -------
    (BatchSchedule, float)
        The schedule (examples) and its exact loss at the run's end; with
        ``return_info`` a third item, a dict (``fixed``, ``relaxed``, ``start``, ``horizon``).
    """
    from .schedule_eval import best_fixed_batch

    nqm.check_stable(eta)
    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = fixed or best_fixed_batch(nqm, prob.lr, prob.horizon)
    run = _Search(nqm, prob, budget, dict(rule="optimal", lr_schedule=lr_schedule, pieces=int(pieces)))
    best = (fixed[1], constant_batch(fixed[0], "examples"), "best fixed", math.nan)
    for name, x0 in zip(("fixed start", "ramp start"), _starts(prob, fixed[0])):
        best = min(best, run(x0, name), key=lambda c: c[0])
    for name, sched in (candidates or {}).items():
        own = (run.loss(sched), sched, name, math.nan)
        if own[0] < best[0]:
            best = min(own, run(np.log(prob.on_pieces(sched)), f"{name} start"), key=lambda c: c[0])
    info = dict(fixed=fixed, relaxed=best[3], start=best[2], horizon=prob.horizon)
    return (best[1], float(best[0]), info) if return_info else (best[1], float(best[0]))


class _Search:
    """One L-BFGS-B descent from a start, scored exactly: ``(loss, schedule, start name, relaxed loss)``."""

    def __init__(self, nqm, prob, budget, params):
        self.nqm, self.prob, self.params = nqm, prob, params
        self.arrays, self.bounds = _cell_arrays(nqm, prob), _bounds(prob, budget)

    def loss(self, sched) -> float:
        """The exact final loss of ``sched`` (:func:`sim.schedule_eval.loss_at_budget`)."""
        from .schedule_eval import loss_at_budget

        return float(loss_at_budget(self.nqm, self.prob.lr, sched, self.prob.horizon))

    def __call__(self, x0, name):
        x = _minimise(self.nqm, self.prob, x0, self.bounds, self.arrays)
        sched = self.prob.schedule(np.exp(x), **self.params)
        return self.loss(sched), sched, name, relaxed_loss(self.nqm, self.prob, x, arrays=self.arrays)
