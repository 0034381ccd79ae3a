"""The noisy-quadratic-model laboratory: exact dynamics, Monte Carlo, frontier."""
from .frontier import bmin, bopt, loss_at_steps, steps_to_target, tuned_steps
from .nqm import DEFAULT_ETA, NQM

__all__ = ["NQM", "DEFAULT_ETA", "steps_to_target", "bmin", "bopt", "tuned_steps", "loss_at_steps"]
from .dynamics import Trajectory, as_schedule, expected_loss  # noqa: E402

__all__ += ["expected_loss", "Trajectory", "as_schedule"]
from .sweep import FrontierResult, es_frontier, phase_labels  # noqa: E402

__all__ += ["es_frontier", "FrontierResult", "phase_labels"]
from .crossover import Crossover, crossover  # noqa: E402

__all__ += ["crossover", "Crossover"]
from .montecarlo import MonteCarloResult, monte_carlo  # noqa: E402

__all__ += ["monte_carlo", "MonteCarloResult"]
from .chain_eval import chain_case  # noqa: E402
from .chain_eval import study as chain_study  # noqa: E402

__all__ += ["chain_case", "chain_study"]
