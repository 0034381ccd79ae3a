"""The numba Monte Carlo kernel against its numpy reference and the exact mean."""

import numba
import numpy as np
import pytest

import sim
from sim import NQM, _kernels
from sim.montecarlo import per_step_schedule, reference_sgd


def test_kernel_equals_numpy_reference_with_predrawn_noise():
    rng = np.random.default_rng(7)
    nqm = NQM.power_law(40, 1.2)
    lrs, bs, _ = per_step_schedule(0.5, [(0, 4), (200, 16)], 120)
    theta0 = rng.standard_normal((5, 40))
    noise = rng.standard_normal((5, 120, 40))
    record = np.ones(121, bool)
    out = np.empty((5, 121))
    _kernels.mc_kernel_noise(nqm.h, nqm.c, theta0, lrs, bs, record, noise, out)
    ref = reference_sgd(nqm.h, nqm.c, theta0, lrs, bs, noise)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)


def test_generator_draws_standard_normals():
    z = _kernels.splitmix_normals(12345, 400_000)
    assert abs(z.mean()) < 5 * 1 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    assert abs(np.mean(z**4) - 3) < 0.05  # Gaussian kurtosis
    assert not np.array_equal(z[:100], _kernels.splitmix_normals(12346, 100))


def test_monte_carlo_mean_matches_expected_loss():
    nqm = NQM.zhang2019(300)
    mc = sim.monte_carlo(nqm, 0.5, [(0, 4), (2_000, 16)], 600, replicas=400, seed=3, record_every=100)
    ex = sim.expected_loss(nqm, 0.5, [(0, 4), (2_000, 16)], steps=600, record_every=100)
    z = (mc.mean() - ex.loss) / mc.sem()
    assert np.all(np.abs(z) < 4.5), z  # seeded; 4.5 sigma over 7 correlated points


def test_binned_model_is_simulated_mode_by_mode():
    binned = NQM.zhang2019(400, nbins=12)
    mc = sim.monte_carlo(binned, 0.5, 8, 400, replicas=300, seed=5, record_every=400)
    ex = sim.expected_loss(binned, 0.5, 8, steps=400)
    z = (mc.mean()[-1] - ex.loss[-1]) / mc.sem()[-1]
    assert abs(z) < 4.5
    # one draw per bin (weighted by its count) would inflate the spread by about sqrt(count)
    per_mode = sim.monte_carlo(binned.expanded(), 0.5, 8, 400, replicas=300, seed=5, record_every=400)
    np.testing.assert_allclose(mc.loss, per_mode.loss, rtol=1e-12)


def test_results_do_not_depend_on_thread_count():
    nqm = NQM.zhang2019(200)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sim.monte_carlo(nqm, 0.5, 8, 200, replicas=6, seed=11).loss
        numba.set_num_threads(max(2, before))
        many = sim.monte_carlo(nqm, 0.5, 8, 200, replicas=6, seed=11).loss
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_seed_reproducible_and_distinct():
    nqm = NQM.zhang2019(50)
    a = sim.monte_carlo(nqm, 0.5, 8, 50, replicas=2, seed=1).loss
    b = sim.monte_carlo(nqm, 0.5, 8, 50, replicas=2, seed=1).loss
    c = sim.monte_carlo(nqm, 0.5, 8, 50, replicas=2, seed=2).loss
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])  # replicas are independent


def test_single_runs_cross_with_spread():
    """Single noisy runs of a small and a large batch cross, as the exact curves do."""
    nqm = NQM.zhang2019(1000)
    c = sim.crossover(nqm, 0.5, 4, 32)
    assert c is not None
    steps_small = int(2 * c.data / 4)
    small = sim.monte_carlo(nqm, 0.5, 4, steps_small, replicas=16, seed=0, record_every=8)
    large = sim.monte_carlo(nqm, 0.5, 32, steps_small // 8, replicas=16, seed=0, record_every=1)
    early, late = 0.1 * c.data, 1.9 * c.data
    at = lambda r, D: r.loss[:, np.searchsorted(r.D, D)]
    assert np.mean(at(small, early) < at(large, early)) > 0.9  # small batch ahead early
    assert np.mean(at(small, late) > at(large, late)) > 0.9  # large batch ahead late


def test_bad_input():
    with pytest.raises(ValueError, match="positive"):
        sim.monte_carlo(NQM.zhang2019(5), 0.5, 8, 0)
    with pytest.raises(ValueError, match="unstable"):
        sim.monte_carlo(NQM.zhang2019(5), 5.0, 8, 3)
