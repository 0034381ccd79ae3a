"""The loss-optimal batch schedule on the NQM, by gradients of the exact expected loss.

The run is cut into ``pieces`` intervals of data (examples), log-spaced from
``FIRST_PIECE budget`` to half the budget, linear over the second half and over
a WSD decay (:func:`dbs_theory.theory.modal.discretise`); the batch is constant on each.
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
from dbs_theory.theory import modal
from dbs_theory.schedules.batch_schedules import BatchSchedule, constant_batch
from dbs_theory.schedules.lr_plan import LRPlan
from dbs_theory.theory.modal import Grid

from .nqm import NQM

__all__ = [
    "LR_SCHEDULES",
    "lr_plan",
    "lr_setup",
    "Problem",
    "problem",
    "relaxed_loss",
    "optimal_schedule",
    "FIRST_PIECE",
    "WSD_DECAY",
    "WSD_FINAL",
    "BASE_PIECES",
    "MIN_BATCH",
]

LR_SCHEDULES = ("constant", "wsd", "cosine")
#: the first piece ends at this fraction of the budget; later pieces are log-spaced up to the budget
FIRST_PIECE = modal.FIRST_PIECE
#: WSD as ``sim.schedule_eval.ablations`` runs it: decay over this fraction of the budget, to this ratio
WSD_DECAY, WSD_FINAL = 0.2, 0.1
#: the fewest pieces solved directly; more pieces start from the optimum at half as many (so doubling the pieces
#: never makes the optimum worse)
BASE_PIECES = 32


def lr_plan(lr_schedule) -> LRPlan:
    """The :class:`~dbs_theory.schedules.lr_plan.LRPlan` of an LR schedule name (or the plan itself)."""
    if isinstance(lr_schedule, LRPlan):
        return lr_schedule
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)} or an LRPlan")
    if lr_schedule == "wsd":
        return LRPlan(decay=WSD_DECAY / (1 + WSD_DECAY), final=WSD_FINAL)
    return LRPlan(shape="cosine", final=0.0) if lr_schedule == "cosine" else LRPlan()


def lr_setup(eta: float, budget: float, lr_schedule="constant"):
    """``(lr, horizon)``: the LR schedule (a number or a Piecewise of data) and where the run ends (examples).

    A name's ``budget`` is the stable phase (WSD then decays over ``WSD_DECAY budget`` more); an
    :class:`LRPlan`'s is the whole run."""
    plan = lr_plan(lr_schedule)
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget={budget!r} must be a positive number of examples")
    horizon = (1 + WSD_DECAY) * float(budget) if lr_schedule == "wsd" else float(budget)
    return plan.schedule(float(eta), horizon), horizon


@dataclass(frozen=True)
class Problem:
    """The optimiser's discretisation of one run (:class:`dbs_theory.theory.modal.Grid` with absolute rates).

    Attributes
    ----------
    starts : ndarray (K,)      Data (examples) where each batch piece begins; ``starts[0] = 0``.
    horizon : float            Data at the end of the run (examples).
    lr, lr_schedule            The LR schedule and its name (or plan).
    cell_data : ndarray (J,)   Examples in each cell.
    cell_piece : ndarray (J,)  The piece each cell belongs to.
    cell_eta : ndarray (J,)    The rate on each cell (the schedule at the cell's data midpoint).
    """

    starts: np.ndarray
    horizon: float
    lr: object
    lr_schedule: object
    cell_data: np.ndarray
    cell_piece: np.ndarray
    cell_eta: np.ndarray

    @property
    def ends(self) -> np.ndarray:
        """Data (examples) where each piece ends."""
        return self.grid.ends

    @property
    def grid(self) -> Grid:
        """The discretisation for :mod:`dbs_theory.theory.modal`, rates as multiples of 1 (:meth:`NQM.modal`)."""
        return Grid(self.starts, self.horizon, self.cell_data, self.cell_piece, self.cell_eta)

    def schedule(self, batch_size, **params) -> BatchSchedule:
        """The :class:`BatchSchedule` (examples) holding ``batch_size[k]`` (examples) on piece ``k``."""
        return BatchSchedule(
            tuple(float(s) for s in self.starts),
            tuple(float(b) for b in batch_size),
            "examples",
            kind="step",
            params=dict(params),
        )

    def on_pieces(self, schedule: BatchSchedule) -> np.ndarray:
        """The batch (examples) per piece that takes as many steps on it as ``schedule`` (examples) does:
        the harmonic mean of ``schedule`` over the piece's data."""
        return self.grid.on_pieces(schedule.starts, schedule.sizes)


def problem(
    eta: float, budget: float, lr_schedule="constant", pieces: int = 32, lr_cells: int = modal.LR_CELLS
) -> Problem:
    """The pieces and cells of a run of ``budget`` examples under ``lr_schedule`` (module doc)."""
    lr, horizon = lr_setup(eta, budget, lr_schedule)
    g = modal.discretise(horizon, lr_plan(lr_schedule), pieces, lr_cells)
    return Problem(g.starts, g.horizon, lr, lr_schedule, g.cell_data, g.cell_piece, float(eta) * g.cell_scale)


def cell_arrays(nqm: NQM, prob: Problem):
    """Per cell and mode: ``log a = 2 log|1 - eta h|`` and ``q = B m_inf``; the loss weights."""
    eh = prob.cell_eta[:, None] * nqm.h[None, :]
    with np.errstate(divide="ignore"):
        loga = 2.0 * np.log(np.abs(1.0 - eh))
    q = prob.cell_eta[:, None] * nqm.c[None, :] / (nqm.h[None, :] * (2.0 - eh))
    return loga, q, 0.5 * nqm.weights * nqm.h


def relaxed_loss(nqm: NQM, prob: Problem, log_batch, grad: bool = False, arrays=None):
    """The relaxed final loss (module doc) at ``B_k = exp(log_batch[k])`` (examples); with ``grad``, also
    its gradient in ``log_batch`` (adjoint pass; :func:`dbs_theory.theory.modal.relaxed_loss` on :meth:`NQM.modal`)."""
    return modal.relaxed_loss(nqm.modal(), prob.grid, log_batch, grad, arrays)


#: the smallest batch (examples) the optimum may use unless told otherwise: one example per step
MIN_BATCH = 1.0


def optimal_schedule(
    nqm: NQM,
    eta: float,
    budget: float,
    lr_schedule="constant",
    pieces: int = 32,
    fixed=None,
    return_info=False,
    candidates=None,
    min_batch: float = MIN_BATCH,
):
    """The best ``pieces``-piece batch schedule for a run of ``budget`` examples (module doc).

    L-BFGS-B on the relaxed loss in ``log B`` per piece (:func:`dbs_theory.theory.modal.optimise`; bounds:
    ``min_batch`` to the piece's data), from two starts: the best fixed batch and a
    ramp ``B ~ D`` through it. With more than :data:`BASE_PIECES` pieces the
    optimum at half as many pieces is a candidate too, so doubling the pieces
    never makes the result worse. Every candidate schedule (``candidates``; e.g.
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
    budget : float            Examples in the stable phase (the whole run for constant, cosine or an LRPlan).
    lr_schedule : str         ``constant``, ``wsd`` or ``cosine``, or a :class:`~dbs_theory.schedules.lr_plan.LRPlan`.
    pieces : int              Batch pieces (>= 4).
    fixed : (float, float)    ``(B, loss)`` of the best fixed batch for this run, if already known.
    candidates : dict         Name -> :class:`BatchSchedule` (examples) run under this LR schedule.
    min_batch : float         The smallest batch (examples) any piece may use (default one example).

    Returns
    -------
    (BatchSchedule, float)
        The schedule (examples) and its exact loss at the run's end; with
        ``return_info`` a third item, a dict (``fixed``, ``relaxed``, ``start``, ``horizon``).
    """
    from .schedule_eval import nqm_best_fixed_batch

    nqm.check_stable(eta)
    if not (math.isfinite(min_batch) and min_batch > 0):
        raise ValueError(f"min_batch={min_batch!r} must be a positive number of examples")
    prob = problem(eta, budget, lr_schedule, pieces)
    fixed = fixed or nqm_best_fixed_batch(nqm, prob.lr, prob.horizon, min_batch=min_batch)
    candidates = dict(candidates or {})
    if pieces > BASE_PIECES:
        candidates["coarser optimum"] = optimal_schedule(
            nqm, eta, budget, lr_schedule, pieces // 2, fixed, min_batch=min_batch
        )[0]
    name = lr_schedule if isinstance(lr_schedule, str) else lr_schedule.describe()
    run = _Search(nqm, prob, min_batch, dict(rule="optimal", lr_schedule=name, pieces=int(pieces)))
    best = (fixed[1], constant_batch(fixed[0], "examples"), "best fixed", math.nan)
    for label, x0 in zip(("fixed start", "ramp start"), modal.warm_starts(prob.grid, fixed[0])):
        best = min(best, run(x0, label), key=lambda c: c[0])
    for label, sched in candidates.items():
        own = (run.loss(sched), sched, label, math.nan)
        if own[0] < best[0]:
            best = min(own, run(prob.on_pieces(sched), f"{label} start"), key=lambda c: c[0])
    info = dict(fixed=fixed, relaxed=best[3], start=best[2], horizon=prob.horizon)
    return (best[1], float(best[0]), info) if return_info else (best[1], float(best[0]))


class _Search:
    """One L-BFGS-B descent from a start, scored exactly: ``(loss, schedule, start name, relaxed loss)``."""

    def __init__(self, nqm, prob, min_batch, params):
        self.nqm, self.prob, self.params, self.min_batch = nqm, prob, params, float(min_batch)
        self.model = nqm.modal()
        self.arrays = self.model.cells(prob.cell_eta)

    def loss(self, sched) -> float:
        """The exact final loss of ``sched`` (:func:`sim.schedule_eval.loss_at_budget`)."""
        from .schedule_eval import loss_at_budget

        return float(loss_at_budget(self.nqm, self.prob.lr, sched, self.prob.horizon))

    def __call__(self, batches, name):
        B = modal.optimise(self.model, self.prob.grid, [batches], self.min_batch, arrays=self.arrays)
        sched = self.prob.schedule(B, **self.params)
        return (
            self.loss(sched),
            sched,
            name,
            modal.relaxed_loss(self.model, self.prob.grid, np.log(B), arrays=self.arrays),
        )
