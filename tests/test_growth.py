"""The growth experiment's design (which batches, which data) and its two claims' decision rules."""

import math

import numpy as np
import pytest

from validate.experiments.growth import choose_batches, claims, data_points, fresh_seeds, nearest_batch
from validate.experiments.tiers import get_tier, load_tier

CPU_GRID = get_tier("cpu").batches  # 128 .. 16384 tokens


@pytest.mark.parametrize(
    "early, b2, gran, want",
    [
        (196, 768, 256, 256),  # 192 is nearer 196 but not whole micro-batches of 256 tokens
        (196, 768, 64, 192),
        (50, 768, 64, 128),  # Bopt(D1) below the grid: its smallest batch
        (1000, 768, 64, 384),  # Bopt(D1) above b2/2: the largest batch at most b2/2
        (300, 1024, 256, 256),  # |log(256/300)| < |log(512/300)|
    ],
)
def test_b1_and_b3_chosen_by_hand(early, b2, gran, want):
    assert nearest_batch(CPU_GRID, early, gran, hi=b2 / 2) == want


def test_no_room_below_b2_or_a_bad_bopt_is_refused():
    with pytest.raises(ValueError, match="multiple of 256"):
        nearest_batch(CPU_GRID, 100, 256, hi=384 / 2)  # 128 and 192 are not multiples of 256
    with pytest.raises(ValueError, match="positive"):
        nearest_batch(CPU_GRID, math.nan, 64, hi=768 / 2)
    assert nearest_batch(CPU_GRID, 3000, 256, lo=2 * 2048) == 4096  # b3 at least 2 b2
    assert nearest_batch(CPU_GRID, 20000, 256, lo=2 * 2048) == 16384


@pytest.mark.parametrize(
    "bopt, best, grid, gran, want",
    [
        ((196, 2213), 4096, CPU_GRID, 256, (256, 1024, 4096)),  # b2 = sqrt(256 * 4096) exactly
        ((120, 2213), 4096, CPU_GRID, 64, (128, 768, 4096)),  # sqrt(128 * 4096) = 724: 768 is nearest
        ((900, 2213), 4096, CPU_GRID, 256, (1024, 2048, 4096)),  # b1 capped at b3 / 4, b2 at b3 / 2
        ((200, 600), 256, (128, 256, 512, 1024), 64, (128, 256, 512)),  # best fixed 256 < 4 * 128: b3 near 600
        ((200, 600), 1024, (128, 256, 512, 1024), 256, (256, 512, 1024)),  # 128 is not whole micro-batches
    ],
)
def test_three_batches_chosen_by_hand(bopt, best, grid, gran, want):
    assert choose_batches(grid, bopt, best, gran) == want


def test_a_grid_without_room_for_three_batches_2x_apart_is_refused():
    with pytest.raises(ValueError, match="no batch of the grid"):
        choose_batches((128, 256), (150, 250), 256, 64)
    with pytest.raises(ValueError, match="multiple of 512"):
        choose_batches((128, 256), (150, 250), 256, 512)


def test_fresh_seeds_leave_out_the_sweeps_seed(tmp_path):
    assert fresh_seeds(get_tier("tiny")) == [1]  # no growth_seeds: the tier's seeds without 0
    (tmp_path / "g.toml").write_text('base = "tiny"\ngrowth_seeds = [0, 2, 3]\n')
    assert fresh_seeds(load_tier(tmp_path / "g.toml")) == [2, 3]


def test_a_tier_with_only_the_sweeps_seed_is_refused_before_any_training(tmp_path):
    from validate.experiments.growth import run

    with pytest.raises(ValueError, match="seed other than 0"):
        run(get_tier("tiny").with_(seeds=(0,)), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_the_early_point_lies_past_the_warmup():
    for name in ("tiny", "cpu", "gpu"):
        t = get_tier(name)
        D1, D2 = data_points(t)
        assert D1 >= 2 * t.warmup and D1 >= t.budget / 24 and D2 == t.budget and D1 < D2


def _arms(e1, e2, e3, l2, l3, jitter=(-0.001, 0.0, 0.001, 0.0005, -0.0005)):
    """Per-seed losses (5 seeds) at the given mean levels: a jitter shared by the arms of a seed, plus
    each arm's own noise (sd 0.002), so the paired differences vary."""
    j = np.array(jitter)
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.002, j.size)
    return ([e1 + j + noise(), e2 + j + noise(), e3 + j + noise()], [l2 + j + noise(), l3 + j + noise()])


def test_a_real_crossing_and_growth_hold():
    early, late = _arms(3.0, 3.1, 3.2, 2.50, 2.45)  # small batches ahead early, the large one ahead late
    cross, grows = claims(early, late)
    assert cross.verdict == "holds" and grows.verdict == "holds"
    assert cross.interval.lo > 0 and grows.interval.lo > 0


def test_no_crossing_when_the_large_batch_stays_behind():
    early, late = _arms(3.0, 3.1, 3.2, 2.45, 2.50)  # b3 still behind b2 at the budget
    cross, grows = claims(early, late)
    assert cross.verdict == "does not hold" and grows.verdict == "does not hold"


def test_growth_fails_when_the_smallest_batch_is_behind_early():
    early, late = _arms(3.2, 3.1, 3.15, 2.50, 2.45)  # b1 behind b2 at D1: Bopt(D1) is not below b2
    cross, grows = claims(early, late)
    assert grows.verdict == "does not hold" and cross.verdict == "holds"


def test_differences_within_the_noise_are_inconclusive():
    early, late = _arms(3.0, 3.1, 3.2, 2.5, 2.5)  # a tie at the budget, with independent seed noise
    cross, grows = claims(early, late)
    assert cross.verdict == "inconclusive" and grows.verdict == "inconclusive"
    assert cross.interval.lo < 0 < cross.interval.hi
    assert "[" in cross.measured and "5 seeds" in cross.measured
