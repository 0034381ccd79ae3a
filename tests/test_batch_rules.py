"""The rules users run beside the paper's (dbs_theory.rules.online): values worked by hand, decision boundaries,
the state a checkpoint keeps."""

import math

import pytest
from hypothesis import given, strategies as st

from dbs_theory.rules.online import ANNEAL, GAMMA, OnlineRule, bmin_table, late_switch

ROWS = [dict(target=t, bmin_floor=b, bmin_floor_status="ok") for t, b in ((4.0, 64.0), (3.0, 128.0), (2.5, 512.0))]


def _floor(**kw):
    base = dict(name="floor-ratio", initial=64.0, every=1000.0, min_batch=1.0, max_batch=1e6, bmin=bmin_table(ROWS))
    return OnlineRule(**{**base, **kw})


def test_late_switch_halves_the_fixed_batch_then_switches_once():
    s = late_switch(256.0, 7500.0, unit="examples")
    assert s.segments == [(0.0, 128.0), (7500.0, 512.0)]
    assert late_switch(100.0, 10.0, ratio=2.0, granularity=64).sizes == (64.0, 128.0)  # 50 -> 64, then 2 x 64
    assert late_switch(22.65, 10.0, granularity=1).sizes == (11.0, 44.0)  # ratio x the small batch as run
    for bad in (dict(fixed_batch=0.0, switch_at=1.0), dict(fixed_batch=1.0, switch_at=1.0, ratio=0.5)):
        with pytest.raises(ValueError):
            late_switch(**bad)


def test_bmin_table_is_ascending_in_the_target_and_needs_two_identified_targets():
    assert bmin_table(ROWS) == ((2.5, 3.0, 4.0), (512.0, 128.0, 64.0))
    one = ROWS[:1] + [dict(target=2.0, bmin_floor_status="not identified: below the grid")]
    with pytest.raises(ValueError, match="at 1 target"):
        bmin_table(one)


def test_floor_ratio_asks_gamma_bmin_at_the_loss_interpolated_in_log_log_and_held_at_the_edges():
    r = _floor()
    r.observe(3.0)
    assert r.proposal() == pytest.approx(GAMMA * 128.0)
    r.observe(3.0)  # a mean of readings
    assert r.proposal() == pytest.approx(GAMMA * 128.0)
    mid = _floor()
    mid.observe(math.sqrt(12.0))  # halfway between targets 3 and 4 in log: Bmin halfway in log too
    assert mid.proposal() == pytest.approx(GAMMA * math.sqrt(128.0 * 64.0))
    for loss, edge in ((9.0, 64.0), (1.0, 512.0)):
        e = _floor()
        e.observe(loss)
        assert e.proposal() == pytest.approx(GAMMA * edge)
    late = _floor(anneal_from=5000.0)
    late.observe(3.0)
    assert late.decide(5000.0) == math.floor(ANNEAL * 128.0)


def test_decisions_are_due_every_interval_and_never_fall():
    r = OnlineRule("noise-scale", initial=256.0, every=1000.0, min_batch=64.0, max_batch=4096.0, granularity=64.0)
    assert not r.due(999.0) and r.due(1000.0)
    r.observe(2.0, b_simple=1000.0)
    assert r.decide(1000.0) == 960.0  # 1000 down to a whole number of granules
    assert r.batch_for(999.9) == 256.0 and r.batch_for(1000.0) == 960.0
    assert not r.due(1999.0) and r.due(2000.0)
    r.observe(2.0, b_simple=300.0)
    assert r.decide(2000.0) == 960.0  # a smaller reading does not lower the batch
    r.observe(2.0, b_simple=1e9)
    assert r.decide(3000.0) == 4096.0  # held to max_batch
    nothing = OnlineRule("noise-scale", initial=256.0, every=1000.0, min_batch=64.0, max_batch=4096.0)
    assert nothing.decide(1000.0) == 256.0  # no reading yet: the batch stays
    assert nothing.schedule().segments == [(0.0, 256.0)]


@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=30))
def test_an_online_rule_never_lowers_its_batch(losses):
    r = _floor()
    for i, L in enumerate(losses):
        r.observe(L)
        r.decide(1000.0 * (i + 1))
    sizes = [b for _, b in r.decisions]
    assert sizes == sorted(sizes)


def test_state_round_trips_and_refuses_another_rule_or_sweep():
    r = _floor()
    r.observe(3.0)
    r.decide(1000.0)
    r.observe(2.7)
    again = _floor()
    again.load_state_dict(r.state_dict())
    assert again.decisions == r.decisions and again.proposal() == r.proposal()
    other = _floor(bmin=((2.0, 3.0), (10.0, 5.0)))
    with pytest.raises(ValueError, match="another sweep"):
        other.load_state_dict(r.state_dict())
    with pytest.raises(ValueError, match="unknown online rule"):
        OnlineRule("paper", 1.0, 1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="needs the sweep's Bmin"):
        OnlineRule("floor-ratio", 1.0, 1.0, 1.0, 2.0)
