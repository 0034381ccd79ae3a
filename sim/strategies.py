"""Hypothesis strategies for random noisy quadratic models (needs ``hypothesis``, in the ``test`` extra).

For property tests of code built on the theory, e.g. that ``Bmin`` and
``Bopt`` grow as the target falls on every spectrum you care about::

    from hypothesis import given
    from sim.strategies import nqms

    @given(nqms())
    def test_bopt_exceeds_bmin(case):
        nqm, eta = case
        target = 0.2 * nqm.initial_loss()
        assert sim.bopt(nqm, eta, target) > sim.bmin(nqm, eta, target)

The package's own property tests (``tests/test_sim_frontier.py``) use it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .nqm import NQM

__all__ = ["nqms"]


@st.composite
def nqms(draw, max_modes=4, max_eta_h=1.5):
    """``(NQM, eta)``: 1..``max_modes`` modes with curvature ``h`` in [0.005, 1], per-example gradient
    variance ``c`` in [1e-3, 5] and initial second moment ``m0`` in [0.1, 3]; a stable learning rate
    ``eta`` with ``eta * max(h)`` in [0.05, ``max_eta_h``] (SGD on a mode is stable below 2)."""
    if not 1 <= max_modes or not 0.05 < max_eta_h < 2:
        raise ValueError(f"max_modes={max_modes} must be >= 1 and max_eta_h={max_eta_h} in (0.05, 2)")
    d = draw(st.integers(1, max_modes))
    h = np.array(draw(st.lists(st.floats(0.005, 1.0), min_size=d, max_size=d)))
    c = np.array(draw(st.lists(st.floats(1e-3, 5.0), min_size=d, max_size=d)))
    m0 = np.array(draw(st.lists(st.floats(0.1, 3.0), min_size=d, max_size=d)))
    eta = draw(st.floats(0.05, max_eta_h)) / h.max()
    return NQM(h, c, m0), eta
