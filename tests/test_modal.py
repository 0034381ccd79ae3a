"""The modal loss model and the run's LR plan (dbs_theory.theory.modal, dbs_theory.schedules.lr_plan), against the
simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sim
from dbs_theory.theory import modal
from dbs_theory.schedules.lr_plan import LRPlan
from dbs_theory.schedules.lr_schedules import wsd
from sim.nqm import NQM
from sim.schedule_eval import loss_at_budget


def test_lr_plan_wsd_by_hand():
    """Stable to 80% of the run, then linear to 10%: values worked out by hand."""
    plan = LRPlan(decay=0.2, final=0.1)
    assert plan.scale([0.0, 79.0, 80.0, 90.0, 100.0, 150.0], 100.0).tolist() == pytest.approx([1, 1, 1, 0.55, 0.1, 0.1])
    assert plan.stable_end(100.0) == pytest.approx(80.0)
    f = plan.schedule(2.0, 100.0)
    g = wsd(2.0, 0.0, 80.0, 20.0, 0.1)
    assert [f(x) for x in (10.0, 85.0, 99.0)] == pytest.approx([g(x) for x in (10.0, 85.0, 99.0)])
    assert LRPlan().constant and LRPlan().schedule(0.3, 10.0) == 0.3
    assert LRPlan(shape="cosine", final=0.0).scale([0.0, 50.0, 100.0], 100.0).tolist() == pytest.approx([1, 0.5, 0])


@pytest.mark.parametrize(
    "kw",
    [
        dict(decay=1.0),
        dict(decay=-0.1),
        dict(final=1.5),
        dict(decay=math.nan),
        dict(shape="linear"),
        dict(shape="cosine", decay=0.2),
    ],
)
def test_lr_plan_refuses(kw):
    with pytest.raises(ValueError):
        LRPlan(**kw)


def test_fixed_loss_is_the_nqm_closed_form():
    """At whole steps and a constant rate the model's loss is the NQM's exact expected loss."""
    nqm, eta = NQM.power_law(200, 1.4, noise_exponent=0.7, L_irr=0.3), 0.6
    model = nqm.modal()
    scaled = modal.ModalModel(eta * model.rate, eta * model.floor, model.initial, model.L_irr)  # peak rate eta
    B, D = np.array([2.0, 16.0]), np.array([64.0, 512.0, 4096.0])
    want = [[loss_at_budget(nqm, eta, b, d) for d in D] for b in B]
    np.testing.assert_allclose(scaled.fixed_loss(B, D), want, rtol=1e-10)
    floor = nqm.L_irr + 0.5 * np.sum(nqm.h * eta * nqm.c / (8.0 * nqm.h * (2 - eta * nqm.h)))
    assert scaled.floor_loss(8.0) == pytest.approx(floor, rel=1e-12)


def test_grid_pieces_cover_the_run_and_the_decay():
    g = modal.discretise(1.2e5, LRPlan(decay=1 / 6), pieces=32)
    assert g.starts.size == 32 and g.cell_data.sum() == pytest.approx(1.2e5)
    assert np.sum(g.starts >= 1e5 * (1 - 1e-12)) == 4  # pieces // 8 in the decay
    assert g.cell_scale.max() == 1.0 and g.cell_scale.min() == pytest.approx(0.1, abs=0.01)
    assert np.all(np.diff(g.cell_piece) >= 0)
    with pytest.raises(ValueError, match="pieces"):
        modal.discretise(1e4, pieces=3)


def test_optimise_respects_the_batch_bounds():
    nqm = NQM.zhang2019(200)
    grid = sim.optimal.problem(0.5, 2e4, "constant", pieces=16).grid
    B = modal.optimise(nqm.modal(), grid, [np.full(16, 8.0)], 2.0, 500.0)
    ends = grid.ends - grid.starts
    assert np.all(B >= 2.0 * (1 - 1e-12)) and np.all(B <= np.minimum(500.0, np.maximum(ends, 2.0)) * (1 + 1e-12))


# --- loss_at_budget at the step that crosses the budget (a schedule switching inside the last step) ---


def _repro_nqm():
    i = np.arange(1, 1201, dtype=float)
    h = i**-1.2
    return NQM(h=h, c=h**0.8)


def test_loss_at_budget_reads_the_crossing_step():
    """A batch change that the crossing step never uses changes nothing; one inside the last step is read at the
    step that crosses (values from stepping the schedule by hand: 0.193593 and 0.115700)."""
    from dbs_theory.schedules.batch_schedules import BatchSchedule

    nqm = _repro_nqm()
    fixed = loss_at_budget(nqm, 0.5, 300.0, 2e5)
    assert fixed == pytest.approx(0.193593, abs=2e-6)
    unused = BatchSchedule((0.0, 199950.0), (300.0, 10.0), "examples")
    assert loss_at_budget(nqm, 0.5, unused, 2e5) == pytest.approx(fixed, rel=1e-12)
    late = BatchSchedule((0.0, 199990.0), (10.0, 1000.0), "examples")
    assert loss_at_budget(nqm, 0.5, late, 2e5) == pytest.approx(0.115700, abs=2e-6)


def test_crossing_step_by_hand():
    from dbs_theory.schedules.batch_schedules import BatchSchedule
    from sim.schedule_eval import crossing_step

    assert crossing_step(300.0, 2e5) == 666 * 300.0  # 667 steps of 300 reach 200100
    assert crossing_step(BatchSchedule((0.0, 199950.0), (300.0, 10.0), "examples"), 2e5) == 666 * 300.0
    assert crossing_step(BatchSchedule((0.0, 199990.0), (10.0, 1000.0), "examples"), 2e5) == 199990.0
    assert crossing_step(BatchSchedule((0.0, 5.0), (4.0, 1.0), "examples"), 9.0) == 8.0  # 0, 4 (< 5: a 4), 8 (a 1)


@settings(max_examples=25, deadline=None)
@given(b1=st.floats(1.0, 50.0), b2=st.floats(1.0, 50.0), at=st.floats(10.0, 990.0), decay=st.sampled_from([0, 0.3]))
def test_loss_at_budget_is_linear_over_the_crossing_step(b1, b2, at, decay):
    """Against stepping the exact recursion one step at a time, whatever the two batches and the switch, at a
    constant rate and through a decay (where the simulator sums the steps one by one)."""
    from dbs_theory.schedules.batch_schedules import BatchSchedule

    nqm, eta, budget = NQM.zhang2019(30), 0.5, 1000.0
    lr = LRPlan(decay=decay).schedule(eta, budget)
    rate = (lambda D: float(lr(D))) if callable(lr) else (lambda D: eta)
    sched = BatchSchedule((0.0, at), (b1, b2), "examples")
    m, D, prev = nqm.m0.astype(float).copy(), 0.0, None
    w = 0.5 * nqm.h
    # the data after k steps is counted, not summed: 25 steps of 2.4 end at 60 (a float sum says 59.99999999999998
    # and would take a 26th step at the old batch); a step is at b1 while its start lies before the switch
    n1 = max(1, math.ceil(at / b1 - 1e-12))
    k = 0
    while D < budget:
        B, e = (b1 if k < n1 else b2), rate(D)
        prev = (D, float(w @ m))
        m = (1 - e * nqm.h) ** 2 * m + e**2 * nqm.c / B
        k += 1
        D = k * b1 if k <= n1 else n1 * b1 + (k - n1) * b2
    f = (budget - prev[0]) / (D - prev[0])
    want = prev[1] + f * (float(w @ m) - prev[1])
    assert loss_at_budget(nqm, lr, sched, budget) == pytest.approx(want, rel=1e-9)


def test_loss_at_budget_through_a_decay_reads_the_step_before_the_end():
    """The paper's schedule on Zhang under WSD (33 examples per step at the end): stepping by hand gives 0.011398;
    a record placed by the closed-form step start, a few ulps above the simulator's summed one, read 0.011763."""
    from sim import rules as R

    nqm = NQM.zhang2019(1000)
    inp = R.rule_inputs(nqm, 0.5, 1e5, "wsd")
    sched, lr = R.paper(inp)
    assert loss_at_budget(nqm, lr, sched, inp.prob.horizon) == pytest.approx(0.0113978, abs=2e-7)


def test_more_pieces_never_make_the_optimum_worse():
    """A steep spectrum (smaller than the documented case): 32 -> 64 -> 128 pieces, each at least as good as the
    one before."""
    nqm = NQM.power_law(200, 2.2, noise_exponent=0.5)
    losses = [sim.optimal_schedule(nqm, 0.8, 2e4, "constant", pieces=p)[1] for p in (32, 64, 128)]
    assert losses[1] <= losses[0] * (1 + 1e-12) and losses[2] <= losses[1] * (1 + 1e-12)


def test_optimum_runs_no_batch_below_one_example():
    nqm = NQM.power_law(200, 1.8, noise_exponent=1.2)
    sched = sim.optimal_schedule(nqm, 0.4, 3e4, "wsd")[0]
    assert min(sched.sizes) >= 1.0 * (1 - 1e-12)
    assert min(sim.optimal_schedule(nqm, 0.4, 3e4, "wsd", min_batch=4.0)[0].sizes) >= 4.0 * (1 - 1e-12)
