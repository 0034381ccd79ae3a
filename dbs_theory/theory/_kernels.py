"""numba kernels of the library: the relaxed loss of a batch schedule on a modal (diagonal quadratic) model.

Private: :mod:`dbs_theory.theory.modal` validates inputs and documents units; the
tests hold a plain numpy reference (``tests/test_sim_optimal.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["relaxed_schedule_loss"]


@njit(cache=True)
def relaxed_schedule_loss(loga, q, w, m0, cell_data, cell_piece, log_batch, grad, E, ms):
    """Relaxed final excess loss ``sum w m`` after per-cell jumps of ``n = cell_data / B`` real steps.

    Per cell ``j`` (batch ``B = exp(log_batch[cell_piece[j]])``) and mode ``i``:
    ``m <- E m + (1 - E) q / B`` with ``E = exp(n loga)`` (0 where ``loga = -inf``).
    ``grad`` (pieces,) receives the gradient in ``log_batch`` by the adjoint pass
    (``sim.optimal`` documents the algebra; its numpy ``relaxed_loss`` is the
    reference). ``E`` (J, d) and ``ms`` (J + 1, d) are workspaces.
    """
    J, d = loga.shape
    ms[0, :] = m0
    for j in range(J):
        B = math.exp(log_batch[cell_piece[j]])
        n = cell_data[j] / B
        for i in range(d):
            e = 0.0 if loga[j, i] == -np.inf else math.exp(n * loga[j, i])
            E[j, i] = e
            ms[j + 1, i] = e * ms[j, i] + (1.0 - e) * q[j, i] / B
    loss = 0.0
    lam = np.empty(d)
    for i in range(d):
        loss += w[i] * ms[J, i]
        lam[i] = w[i]
    grad[:] = 0.0
    for j in range(J - 1, -1, -1):
        B = math.exp(log_batch[cell_piece[j]])
        n = cell_data[j] / B
        s = 0.0
        for i in range(d):
            e = E[j, i]
            fl = q[j, i] / B
            sl = 0.0 if loga[j, i] == -np.inf else loga[j, i] * e * n
            s += lam[i] * (-sl * (ms[j, i] - fl) - (1.0 - e) * fl)
            lam[i] *= e
        grad[cell_piece[j]] += s
    return loss
