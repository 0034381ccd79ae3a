"""Benchmark: envelope Bopt(D) + floor Bmin with 200 bootstrap resamples on 15 runs x 15,000 logged steps.

Aim (issue 13): under 2 s on one core. The same-run baseline is the
smoothing the previous code used (a direct convolution, O(n x window), one
curve at a time) in place of the moving sum over a stack of all resamples,
which the bootstrap applies to 200 x 15 curves.
Run: python benchmarks/bench_estimators.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the aim says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory import runs as runs_mod  # noqa: E402
from dbs_theory.estimators import envelope_bopt, floor_bmin  # noqa: E402
from dbs_theory.runs import Run  # noqa: E402


def sweep(n_runs=15, steps=15_000, seed=0):
    """Noisy loss curves ``1 + 2/B + 3 exp(-D/2e5)`` at 15 batch sizes (2x grid), 15,000 steps each."""
    rng = np.random.default_rng(seed)
    out = []
    for B in 2.0 ** np.arange(n_runs):
        s = np.arange(1, steps + 1, dtype=float)
        D = s * B
        out.append(Run(f"b{B:g}", B, s, D, 1 + 2 / B + 3 * np.exp(-D / 2e5) + 0.02 * rng.standard_normal(steps)))
    return out


def job(runs):
    D = np.geomspace(1e3, 1e7, 30)
    envelope_bopt(runs, D, bootstrap=200)
    floor_bmin(runs, np.geomspace(2.5, 1.05, 8), bootstrap=200)


def convolve_average(loss, window=0.02):
    """The previous moving average: a direct convolution per curve (O(n x window)), row by row."""
    loss = np.asarray(loss, float)
    if loss.ndim > 1:
        return np.array([convolve_average(row, window) for row in loss])
    k = int(window if window >= 1 else max(1, round(window * loss.size)))
    if k <= 1:
        return loss
    pad = k // 2
    return np.convolve(np.pad(loss, pad, mode="edge"), np.ones(2 * pad + 1) / (2 * pad + 1), mode="valid")


def convolve_smooth(loss, method="centered", window=0.02):
    """The previous smoother: the convolution average, then the running minimum."""
    return np.minimum.accumulate(convolve_average(loss, window) if method == "centered" else loss, axis=-1)


def timed(fn, *a):
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def main(argv=None):
    runs = sweep()
    job(runs[:3] + runs[-1:])  # warm-up: imports and first calls outside the clock
    ours = timed(job, runs)
    with mock.patch.object(runs_mod, "smooth", convolve_smooth), \
            mock.patch("dbs_theory.estimators.smooth", convolve_smooth), \
            mock.patch("dbs_theory.estimators.moving_average", convolve_average):
        base = timed(job, runs)
    print(f"machine: {describe()}")
    print(f"envelope + floor + 200 bootstrap resamples, 15 runs x 15,000 steps: {ours:.2f} s (aim < 2 s on one "
          f"core); with convolution smoothing {base:.2f} s ({base / ours:.1f}x)")
    return dict(seconds=ours, speedup=base / ours)


if __name__ == "__main__":
    main()
