"""The two-batch gradient noise scale lives in :mod:`dbs_theory.measure.gns` (torch-free: the NQM's simulated runs
measure it too); this module keeps the trainer's import path."""

from dbs_theory.measure.gns import BSimple, GNSEstimator, aggregate_b_simple, two_batch_estimates

__all__ = ["GNSEstimator", "two_batch_estimates", "BSimple", "aggregate_b_simple"]
