"""AccumulationPlan: each optimizer step consumes the schedule's batch, exactly, and resumes identically."""

import itertools
import json
import math
import warnings
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from dbs_theory.schedules.accumulation import AccumulationPlan
from dbs_theory.schedules.batch_schedules import constant_batch, step_batch
from dbs_theory.schedules.lr_schedules import wsd

# micro 2 x world 2 x seq_len 32 = 128 tokens per granule; batches 256 -> 512 -> 1024 tokens
SCHED = step_batch([2048, 6144], [256, 512, 1024], unit="tokens")


def plan(**kw):
    args = dict(micro_batch_size=2, seq_len=32, world_size=2, lr=wsd(1.0, 512, 8000, 2000))
    args.update(kw)
    return AccumulationPlan(SCHED, **args)


def test_tokens_per_step_equal_the_schedule_through_two_changes():
    p = plan()
    steps = [p.advance() for _ in range(30)]
    assert [s.tokens for s in steps] == [SCHED(s.tokens_before) for s in steps]
    assert {s.tokens for s in steps} == {256, 512, 1024}  # both changes crossed
    assert [s.micro_batches for s in steps[7:10]] == [2, 4, 4]  # the step starting at 2048 tokens takes 512
    assert all(s.samples == s.micro_batches * 2 * 2 and s.tokens == s.samples * 32 for s in steps)
    assert p.tokens == sum(s.tokens for s in steps) and p.samples == p.tokens // 32 and p.steps == 30
    assert steps[1].lr == 0.5 and steps[2].lr == 1.0  # the LR is read in tokens at the step's start
    assert p.total_steps(p.tokens) == 30 and p.total_steps(6144) == 16


def test_resume_continues_identically():
    whole = plan()
    uninterrupted = [whole.advance() for _ in range(25)]
    first = plan()
    head = [first.advance() for _ in range(11)]
    saved = json.loads(json.dumps(first.state_dict()))  # through JSON, as a checkpoint would
    assert {k: saved[k] for k in ("tokens", "samples", "steps")} == dict(
        tokens=first.tokens, samples=first.samples, steps=11
    )
    resumed = plan()
    resumed.load_state_dict(saved)
    assert head + [resumed.advance() for _ in range(14)] == uninterrupted
    assert resumed.state_dict() == whole.state_dict()
    assert resumed.total_steps(20000) == whole.total_steps(20000)  # counted from 0, not from the state


def test_a_state_of_another_schedule_or_sequence_length_is_refused():
    from dbs_theory.schedules.batch_schedules import step_batch

    first = plan()
    [first.advance() for _ in range(6)]
    saved = json.loads(json.dumps(first.state_dict()))
    other = AccumulationPlan(step_batch([1024], [128, 512], unit="tokens"), first.micro_batch_size, first.seq_len)
    with pytest.raises(ValueError, match="saved with another batch schedule .*resume with the plan it was saved"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="tokens .* != samples"):
        plan().load_state_dict(dict(saved, tokens=saved["tokens"] + 1))
    longer = AccumulationPlan(first.schedule, first.micro_batch_size, 2 * first.seq_len)
    with pytest.raises(ValueError, match="saved with seq_len 32"):
        longer.load_state_dict(saved)


def test_a_batch_that_is_not_whole_micro_batches_is_followed_approximately_with_a_warning():
    from dbs_theory.schedules.batch_schedules import step_batch

    with pytest.warns(UserWarning, match=r"batch 512 tokens from D=1024 .* takes 576 \(\+12\.5%\)"):
        AccumulationPlan(step_batch([1024], [192, 512], unit="tokens"), 3, 64)  # granule 192 tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AccumulationPlan(step_batch([1024], [192, 576], unit="tokens"), 3, 64)  # whole: no warning


def test_bad_state_refused_in_one_line():
    p = plan()
    for bad, word in (
        ({"tokens": 1, "samples": 1}, "steps"),
        ({"tokens": -1, "samples": 0, "steps": 0}, "tokens"),
        ({"tokens": 1.5, "samples": 0, "steps": 0}, "tokens"),
        ([1, 2, 3], "dict"),
    ):
        with pytest.raises(ValueError, match=word) as exc:
            p.load_state_dict(bad)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("unit, per", [("tokens", 32), ("samples", 1), ("examples", 1)])
def test_refusal_at_the_boundary(unit, per):
    g = 3 * 4  # micro 3 x world 4 samples
    p = AccumulationPlan(constant_batch(g * per, unit), 3, 32, 4)  # exactly one granule: accepted
    assert p.advance().micro_batches == 1 and p.tokens == g * 32
    with pytest.raises(ValueError, match="below one micro_batch_size 3 x world_size 4 = 12 samples") as exc:
        AccumulationPlan(step_batch([10 * g * per], [2 * g * per, (g - 1) * per], unit), 3, 32, 4)
    assert "\n" not in str(exc.value)
    for bad in (dict(micro_batch_size=0), dict(seq_len=2.5), dict(world_size=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AccumulationPlan(constant_batch(1e6, unit), **{**dict(micro_batch_size=1, seq_len=32), **bad})


def test_tokens_and_samples_schedules_agree():
    L = 64
    in_samples = step_batch([100, 300], [8, 16, 32], unit="samples")
    a = AccumulationPlan(in_samples, 2, L, 2)
    b = AccumulationPlan(in_samples.in_tokens(L), 2, L, 2)
    sa, sb = list(itertools.islice(a, 40)), list(itertools.islice(b, 40))
    assert sa == sb and {s.samples for s in sa} == {8, 16, 32}
    assert all(s.tokens == s.samples * L for s in sa)
    assert a.total_steps(500, unit="samples") == b.total_steps(500 * L) == 13 + 13 + 6  # 104 samples, 312, 504


def test_rounding_is_nearest_ties_up():
    # granule 4 samples: 6 -> 2 granules (tie, up), 5 -> 1, 7 -> 2, 4.1 -> 1
    for batch, n in ((6, 2), (5, 1), (7, 2), (4.1, 1), (9.9, 2), (10, 3)):
        assert AccumulationPlan(constant_batch(batch, "samples"), 2, 16, 2).peek().micro_batches == n


@st.composite
def configs(draw):
    micro, world, L = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.sampled_from([1, 7, 32]))
    unit = draw(st.sampled_from(["tokens", "samples"]))
    per = L if unit == "tokens" else 1
    g = micro * world * per  # one granule in the schedule's unit
    sizes = draw(st.lists(st.floats(1.0, 20.0), min_size=1, max_size=5))
    gaps = draw(st.lists(st.floats(0.1, 40.0), min_size=len(sizes) - 1, max_size=len(sizes) - 1))
    bounds = list(itertools.accumulate(gp * g for gp in gaps))
    sched = step_batch(bounds, [s * g for s in sizes], unit=unit)
    return sched, micro, L, world, draw(st.integers(1, 80))


@settings(max_examples=60, deadline=None)
@given(configs())
def test_steps_follow_the_rounded_schedule(cfg):
    sched, micro, L, world, k = cfg
    p = AccumulationPlan(sched, micro, L, world)
    g = micro * world
    steps = [p.advance() for _ in range(k)]
    tokens = 0
    for s in steps:
        assert s.tokens_before == tokens
        D = s.tokens_before if sched.unit == "tokens" else s.samples_before
        b = Fraction(sched(D)) / (L if sched.unit == "tokens" else 1)  # the schedule's batch in samples
        assert s.micro_batches == math.floor(b / g + Fraction(1, 2)) >= 1
        assert s.samples == s.micro_batches * g and s.tokens == s.samples * L
        tokens += s.tokens
    assert p.tokens == tokens == sum(s.tokens for s in steps) and p.samples * L == tokens
    fresh = AccumulationPlan(sched, micro, L, world)
    assert fresh.total_steps(p.tokens) == k  # closed form == iteration
