"""Monte Carlo SGD on the NQM: single noisy runs, as a real training run is.

The kernel (:func:`sim._kernels.mc_kernel`) runs replicas in parallel with
numba; each replica draws Gaussian gradient noise from its own SplitMix64
stream seeded from ``(seed, replica)``, so results do not depend on the
thread count. A binned NQM is expanded mode by mode (``counts`` copies of
each bin), which keeps the noise variance of every mode exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from dbs_theory.deprecation import renamed

from .dynamics import as_schedule, check_batch_schedule
from .nqm import NQM

__all__ = ["monte_carlo", "MonteCarloResult", "per_step_schedule", "replica_seeds", "reference_sgd"]


@dataclass(frozen=True)
class MonteCarloResult:
    """Loss curves of independent SGD replicas.

    Attributes
    ----------
    step : ndarray (n,)              Recorded steps.
    D : ndarray (n,)                 Data consumed at those steps, examples.
    lr, batch_size : ndarray (n,)    Values of the step that ended there.
    loss : ndarray (replicas, n)     Loss of each replica.
    """

    step: np.ndarray
    D: np.ndarray
    lr: np.ndarray
    batch_size: np.ndarray
    loss: np.ndarray

    def mean(self):
        """Mean loss over replicas."""
        return self.loss.mean(axis=0)

    def sem(self):
        """Standard error of that mean."""
        return self.loss.std(axis=0, ddof=1) / np.sqrt(self.loss.shape[0])


@renamed(batch="batch_size")
def per_step_schedule(lr, batch_size, steps):
    """Per-step ``(lrs, batches, D)`` arrays for ``steps`` steps; ``D`` has ``steps + 1`` entries."""
    lr_s, b_s = as_schedule(lr, "lr"), as_schedule(batch_size, "batch_size")
    lrs, bs, D = np.empty(steps), np.empty(steps), np.zeros(steps + 1)
    for t in range(steps):
        lrs[t], bs[t] = lr_s(D[t]), b_s(D[t])
        if not bs[t] > 0:
            raise ValueError(f"batch size must be positive; got {bs[t]!r} at D={D[t]:g}")
        D[t + 1] = D[t] + bs[t]
    return lrs, bs, D


def replica_seeds(seed: int, replicas: int) -> np.ndarray:
    """One 64-bit seed per replica, derived from ``seed`` with numpy's SeedSequence."""
    return np.random.SeedSequence(int(seed)).generate_state(replicas, dtype=np.uint64)


def _initial_theta(nqm: NQM, replicas: int, seed: int) -> np.ndarray:
    """theta0 ~ mean0 + N(0, m0 - mean0^2) per mode, so E[theta0^2] = m0."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])
    mean = np.zeros_like(nqm.h) if nqm.mean0 is None else nqm.mean0
    sd = np.sqrt(np.maximum(nqm.m0 - mean**2, 0.0))
    return mean + sd * rng.standard_normal((replicas, nqm.h.size))


@renamed(batch="batch_size")
def monte_carlo(
    nqm: NQM, lr, batch_size, steps: int, replicas: int = 8, seed: int = 0, record_every: int = 1
) -> MonteCarloResult:
    """Run ``replicas`` independent SGD runs on ``nqm`` for ``steps`` steps.

    Parameters
    ----------
    nqm : NQM
        Binned models are expanded (``counts`` copies of each mode).
    lr, batch_size : schedule
        Learning rate and batch size (examples): a constant, ``(from_D,
        value)`` pairs or a callable of data consumed (see :mod:`sim.dynamics`).
    steps : int
        Optimizer steps.
    replicas : int
        Independent runs.
    seed : int
        Seeds the initial draws and every replica's noise stream.
    record_every : int
        Record the loss every this many steps (step 0 and the last always).

    Returns
    -------
    MonteCarloResult
    """
    if int(steps) < 1 or int(replicas) < 1 or int(record_every) < 1:
        raise ValueError(
            f"steps={steps!r}, replicas={replicas!r} and record_every={record_every!r} must be positive integers"
        )
    check_batch_schedule(lr, batch_size)
    full = nqm.expanded()
    lrs, bs, D = per_step_schedule(lr, batch_size, int(steps))
    for eta in np.unique(lrs[lrs != 0]):
        full.check_stable(eta)
    record = np.zeros(steps + 1, bool)
    record[::record_every] = True
    record[-1] = True
    theta0 = _initial_theta(full, replicas, seed)
    out = np.empty((replicas, int(record.sum())))
    _kernels.mc_kernel(full.h, full.c, theta0, lrs, bs, record, replica_seeds(seed, replicas), out)
    idx = np.nonzero(record)[0]
    lr_at = np.concatenate([[lrs[0]], lrs])[idx]
    b_at = np.concatenate([[bs[0]], bs])[idx]
    return MonteCarloResult(idx, D[idx], lr_at, b_at, nqm.L_irr + out)


def reference_sgd(h, c, theta0, lrs, batches, noise):
    """Plain-numpy SGD, vectorised over replicas: the kernel's reference.

    ``noise`` (R, T, d) holds standard normals; returns the excess loss
    ``1/2 sum h theta^2`` after every step, shape (R, T + 1).
    """
    theta = np.array(theta0, float, copy=True)
    out = [0.5 * (theta**2) @ h]
    for t in range(len(lrs)):
        eta, B = lrs[t], batches[t]
        theta = (1 - eta * h) * theta - (eta / np.sqrt(B)) * np.sqrt(c) * noise[:, t, :]
        out.append(0.5 * (theta**2) @ h)
    return np.stack(out, axis=1)
