"""The noisy-quadratic-model laboratory: exact dynamics, Monte Carlo, frontier, schedules scored exactly.

Map (units: data and batch sizes in examples, steps are optimizer steps, ``eta`` the learning rate):

- :class:`NQM` (:mod:`sim.nqm`): a spectrum of modes (curvature ``h``, per-example gradient variance ``c``,
  initial second moment ``m0``); ``NQM.zhang2019``, ``NQM.power_law``.
- :func:`expected_loss` (:mod:`sim.dynamics`): the exact expected loss under a batch/LR schedule.
- :func:`steps_to_target`, :func:`bmin`, :func:`bopt`, :func:`tuned_steps`, :func:`loss_at_steps`
  (:mod:`sim.frontier`): first hitting steps, the smallest and the data-optimal batch per target.
- :func:`es_frontier` (:mod:`sim.sweep`): the E(S) frontier over batches x targets.
- :func:`crossover` (:mod:`sim.crossover`): where two batches' loss-vs-data curves cross.
- :func:`monte_carlo` (:mod:`sim.montecarlo`): SGD replicas of the model, for noisy logs.
- :func:`chain_case`, :func:`chain_study` (:mod:`sim.chain_eval`): ``dbs fit`` + ``dbs schedule`` end to
  end on NQM sweeps, scored by the exact loss.
- :func:`optimal_schedule` (:mod:`sim.optimal`), :func:`compare_rules` (:mod:`sim.rule_scores`): the loss-optimal
  batch schedule and the oracle batch-size rules of :mod:`sim.rules` scored against it (:class:`RuleScore`;
  docs/optimal_schedules.md).
- :mod:`sim.strategies`: hypothesis strategies for random NQMs (needs hypothesis).
"""

from .chain_eval import chain_case, study as chain_study
from .crossover import Crossover, crossover
from .dynamics import Trajectory, as_schedule, expected_loss
from .frontier import bmin, bopt, loss_at_steps, steps_to_target, tuned_steps
from .montecarlo import MonteCarloResult, monte_carlo
from .nqm import DEFAULT_ETA, NQM
from .optimal import optimal_schedule
from .rule_scores import RuleScore, compare_rules
from .sweep import FrontierResult, es_frontier, phase_labels

__all__ = [
    "NQM",
    "DEFAULT_ETA",
    "steps_to_target",
    "bmin",
    "bopt",
    "tuned_steps",
    "loss_at_steps",
    "expected_loss",
    "Trajectory",
    "as_schedule",
    "es_frontier",
    "FrontierResult",
    "phase_labels",
    "crossover",
    "Crossover",
    "monte_carlo",
    "MonteCarloResult",
    "chain_case",
    "chain_study",
]
__all__ += ["optimal_schedule", "compare_rules", "RuleScore"]
