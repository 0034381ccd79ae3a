"""The one schedule type: evaluation, next_change, join, the one string grammar, and its users."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dbs_theory.schedules.batch_schedules import BatchSchedule, step_batch
from dbs_theory.schedules.lr_schedules import cosine, wsd
from dbs_theory.schedules.piecewise import Piecewise, join


def test_a_varying_piece_is_a_function_of_the_offset_into_it():
    s = Piecewise((0.0, 10.0), (2.0, lambda x: 2.0 + x))
    assert s(0.0) == 2.0 and s(10.0) == 2.0 and s(13.0) == 5.0
    np.testing.assert_array_equal(s(np.array([5.0, 12.0, 20.0])), [2.0, 4.0, 12.0])
    assert s.next_change(3.0) == 10.0 and s.next_change(12.0) == 12.0
    with pytest.raises(TypeError, match="varying"):
        s.segments


def test_join_restarts_each_schedule_at_its_boundary_and_drops_empty_stretches():
    ramp = Piecewise((0.0,), (lambda x: x,))
    s = join([ramp, 7.0, ramp], [5.0, 5.0 + 0.0 + 3.0])
    assert [s(1.0), s(5.0), s(7.9), s(8.0), s(9.5)] == [1.0, 7.0, 7.0, 0.0, 1.5]
    assert join([3.0, 4.0], [0.0]).segments == [(0.0, 4.0)]  # a stretch of length 0 leaves no piece
    with pytest.raises(ValueError, match="non-decreasing"):
        join([1.0, 2.0, 3.0], [5.0, 4.0])


def test_wsd_and_cosine_are_joined_phases_with_their_hand_values():
    f = wsd(2.0, warmup=100, stable=800, decay=100, final_ratio=0.1)
    assert f.starts == (0.0, 100.0, 900.0, 1000.0)
    D = np.array([0, 50, 100, 899, 950, 1000, 5000], float)
    np.testing.assert_allclose(f(D), [0.0, 1.0, 2.0, 2.0, 2.0 * (1 - 0.9 * 0.5), 0.2, 0.2])
    assert [f.next_change(d) for d in (50, 300, 950, 2000)] == [50, 900, 950, math.inf]
    g = cosine(1.0, total=200, warmup=20, final_ratio=0.0)
    assert g(10) == pytest.approx(0.5) and g(110) == pytest.approx(0.5) and g(300) == 0.0


@pytest.mark.parametrize(
    "text, first, want",
    [
        ("0:2e6,125e9:4e6", None, [(0.0, 2e6), (125e9, 4e6)]),
        ("2e6:128,3e6:32", 64, [(0.0, 64), (2e6, 128), (3e6, 32)]),
        ("", 64, [(0.0, 64)]),
    ],
)
def test_the_one_grammar(text, first, want):
    assert Piecewise.parse(text, first=first, cast=int if first else float).segments == want


@pytest.mark.parametrize(
    "text, first, match",
    [
        ("5:2e6", None, "start at D = 0"),  # without a value from 0 the pairs must start there
        ("0:64", 64, "switch points must be > 0"),  # with one they start after it
        ("0:abc", None, "data:value pairs"),
        ("2e6", 64, "data:value pairs"),
        ("0:1,3:2,2:3", None, "increase strictly"),
        ("0:1,inf:2", None, "finite"),
    ],
)
def test_the_grammar_names_what_is_wrong(text, first, match):
    with pytest.raises(ValueError, match=match):
        Piecewise.parse(text, first=first, what="--steps")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1.0, 1e6), st.floats(1.0, 1e4)), min_size=1, max_size=6, unique_by=lambda p: p[0]),
    st.floats(1.0, 1e4),
    st.floats(0.0, 2e6),
)
def test_a_parsed_step_schedule_is_the_step_batch_it_writes(pairs, b0, D):
    pairs = sorted(pairs)
    s = Piecewise.parse(",".join(f"{d!r}:{b!r}" for d, b in [(0.0, b0), *pairs]))
    ref = step_batch([d for d, _ in pairs], [b0] + [b for _, b in pairs])
    assert s(D) == ref(D) and s.next_change(D) == ref.next_change(D)
    assert Piecewise.parse(s.text()).segments == s.segments


def test_a_batch_schedule_is_a_piecewise_with_positive_sizes():
    s = step_batch([10.0], [4.0, 8.0], unit="samples")
    assert isinstance(s, Piecewise) and s.sizes == s.values == (4.0, 8.0)
    assert s.in_tokens(16).segments == [(0.0, 64.0), (160.0, 128.0)]
    with pytest.raises(ValueError, match="positive"):
        BatchSchedule((0.0,), (0.0,))


def test_the_nqm_refuses_a_batch_schedule_in_tokens():
    import sim

    nqm = sim.NQM.zhang2019(50)
    with pytest.raises(ValueError, match="counts examples"):
        sim.expected_loss(nqm, 0.5, step_batch([100.0], [4.0, 8.0], unit="tokens"), data=1000)
    tr = sim.expected_loss(nqm, 0.5, step_batch([100.0], [4.0, 8.0], unit="examples"), data=1000)
    assert tr.batch_size[-1] == 8.0
