"""B_simple from the two-batch estimator, aggregated over steps, against a synthetic gradient stream with a
known |G|^2 and tr(Sigma)."""

import math

import numpy as np
import pytest

from validate.gns import aggregate_b_simple, two_batch_estimates


def stream(G2, trS, b, B, steps, d=64, seed=0):
    """Per-step (|G|^2, tr Sigma) estimates from gradients g_b, g_B = G + noise with covariance Sigma / batch."""
    rng = np.random.default_rng(seed)
    G = np.full(d, math.sqrt(G2 / d))
    sd = math.sqrt(trS / d)  # isotropic per-example noise: tr Sigma = d sd^2
    out = []
    for _ in range(steps):
        g_small = G + rng.normal(0, sd / math.sqrt(b), d)
        g_big = G + rng.normal(0, sd / math.sqrt(B), d)
        out.append(two_batch_estimates(float(g_small @ g_small), b, float(g_big @ g_big), B))
    return np.array(out).T


def test_the_ratio_of_means_recovers_b_simple_with_an_interval_that_covers_it():
    truth = 50.0 / 0.25  # tr Sigma / |G|^2 = 200 examples
    hits = 0
    for seed in range(40):
        g2, tr = stream(0.25, 50.0, b=16, B=256, steps=200, seed=seed)
        est = aggregate_b_simple(g2, tr, seed=seed)
        assert est.resolved and est.n == 200
        hits += est.lo <= truth <= est.hi
    assert hits >= 32  # 90% intervals: at least 80% of 40 (binomial 5th percentile is 32)
    g2, tr = stream(0.25, 50.0, b=16, B=256, steps=4000, seed=99)
    assert aggregate_b_simple(g2, tr).value == pytest.approx(truth, rel=0.1)


def test_the_mean_of_per_step_ratios_is_the_biased_estimate_it_replaces():
    g2, tr = stream(0.1, 50.0, b=16, B=64, steps=2000, seed=1)  # B_simple = 500, far above B: noisy steps
    per_step = tr / g2  # |G|^2 estimates near 0 or below make single ratios explode or turn negative
    est = aggregate_b_simple(g2, tr)
    assert (per_step < 0).mean() > 0.2 and np.mean(per_step) < 0  # what averaging ratios reported (e.g. -121)
    assert abs(np.median(per_step) / 500 - 1) > 0.5 and est.lo <= 500 <= est.hi
    assert est.value == pytest.approx(500, rel=0.15)


def test_an_unresolved_noise_scale_says_why():
    g2, tr = stream(0.25, 50.0, b=16, B=256, steps=5)
    assert "only 5 measured steps" in aggregate_b_simple(g2, tr).reason
    est = aggregate_b_simple(np.full(50, -1.0) + np.linspace(0, 0.5, 50), np.full(50, 10.0))
    assert not est.resolved and "<= 0" in est.reason and "nan" not in est.text()
    g2, tr = stream(1e-4, 50.0, b=16, B=32, steps=20, seed=3)  # signal far below the noise
    est = aggregate_b_simple(g2, tr)
    assert not est.resolved and ("reaches 0" in est.reason or "<= 0" in est.reason)
