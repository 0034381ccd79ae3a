"""The growth experiment's design (which batches, which data) and its two claims' decision rules."""
import math

import numpy as np
import pytest

from validate.experiments.growth import choose_batches, claims, data_points
from validate.experiments.tiers import get_tier

CPU_GRID = get_tier("cpu").batches  # 128 .. 16384 tokens


@pytest.mark.parametrize("early, late, want", [
    (400, 3000, (384, 1024, 3072)),     # sqrt(400 * 3000) = 1095 -> 1024; 384 nearest 400 below 512
    (1000, 1000, (512, 1024, 2048)),    # no growth in the sweep: b1 and b3 sit 2x either side
    (50, 3000, (128, 384, 3072)),       # sqrt = 387 -> 384; 50 lies below the grid -> its smallest batch
    (3000, 3000, (1536, 3072, 6144)),
    (20000, 40000, (4096, 8192, 16384)),  # sqrt = 28284, but b3 needs room above b2: b2 = 8192
])
def test_batches_chosen_by_hand(early, late, want):
    b1, b2, b3 = choose_batches(CPU_GRID, early, late)
    assert (b1, b2, b3) == want
    assert b1 <= b2 / 2 and b3 >= 2 * b2


def test_a_grid_narrower_than_4x_or_a_bad_bopt_is_refused():
    with pytest.raises(ValueError, match="less than 4x"):
        choose_batches((128, 192, 256, 384), 200, 300)
    with pytest.raises(ValueError, match="positive"):
        choose_batches(CPU_GRID, math.nan, 300)


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


def test_the_sweeps_leads_choose_b2_and_missing_runs_are_skipped():
    """gaps() is the smaller lead the sweep shows for a candidate; the largest wins, NaN candidates drop out."""
    seen = []

    def gaps(b1, b2, b3):
        seen.append((b1, b2, b3))
        return {768: 0.02, 1536: 0.03, 3072: 0.01}.get(b2, math.nan)

    assert choose_batches(CPU_GRID, 400, 3000, gaps) == (384, 1536, 3072)
    assert (384, 1024, 3072) in seen  # every candidate was scored with its own b1 and b3
    nothing = lambda *b: math.nan
    assert choose_batches(CPU_GRID, 400, 3000, nothing) == choose_batches(CPU_GRID, 400, 3000)


def test_a_sweep_run_that_stops_short_cannot_be_chosen():
    """A capped small-batch run has no loss at D2: its candidate scores NaN (a plain min() would drop the NaN)."""
    from dbs_theory.runs import Run
    from validate.experiments.growth import sweep_gaps

    def run(B, end, level):
        D = np.arange(B, end + 1, B, dtype=float)
        return Run(f"b{B}", float(B), D / B, D, level + 1e4 / D)

    runs = [run(128, 4e5, 1.0), run(256, 3e5, 1.1), run(512, 1e6, 1.2), run(1024, 1e6, 1.0)]
    gaps = sweep_gaps(runs, 2e5, 1e6)
    assert math.isnan(gaps(128, 256, 1024))  # b2 = 256 stops at 3e5 < D2
    assert math.isnan(gaps(64, 512, 1024))   # no run at 64
    want = min((1.2 + 1e4 / 2e5) - (1.0 + 1e4 / 2e5), 0.2)  # early lead 0.2 by the levels; late lead 0.2
    assert gaps(128, 512, 1024) == pytest.approx(want, abs=2e-3)  # the 5% window shifts 1e4/D slightly
