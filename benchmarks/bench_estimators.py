"""Benchmark: envelope Bopt(D) + floor Bmin with 200 bootstrap resamples, as users call them.

Two sweeps of 15 runs (2x grid), logged every step as trainers log: 15,000 rows
per run (aim: under 2 s on one core) and 200,000 rows per run, a per-step log
of a long run (aim: under 10 s). Steady state: each job runs once to warm up,
then the best of three timings is printed. The same-run baseline for the
smoothing itself: a direct local line per row (least squares over the rows of
its window, O(rows x window)) against the moving sums of
:func:`dbs_theory.measure.curves.local_line` (O(rows)), on one 15,000-row curve.
Run: python benchmarks/bench_estimators.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the aim says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory.measure.curves import local_line, window_rows  # noqa: E402
from dbs_theory.measure.estimators import envelope_bopt, floor_bmin  # noqa: E402
from dbs_theory.logs.runs import Run  # noqa: E402


def sweep(n_runs=15, steps=15_000, seed=0):
    """Noisy loss curves ``1 + 2/B + 3 exp(-D/2e5)`` at 15 batch sizes (2x grid), a row every step."""
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


def direct_local_line(tokens, loss, window=0.1):
    """The obvious smoother: a least-squares line per row over the rows of its window (O(rows x window))."""
    lo, hi = window_rows(tokens, tokens, window)
    x = np.log(tokens)
    out = loss.copy()
    for i in range(tokens.size):
        if hi[i] - lo[i] >= 5:
            xs, ys = x[lo[i] : hi[i]], loss[lo[i] : hi[i]]
            out[i] = np.polyval(np.polyfit(xs - x[i], ys, 1), 0.0)
    return out


def best_of(fn, *a, repeat=3):
    fn(*a)  # warm-up outside the clock
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*a)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    print(f"machine: {describe()}")
    small, large = sweep(), sweep(steps=200_000)
    t_small = best_of(job, small)
    t_large = best_of(job, large, repeat=1)
    print(f"envelope + floor + 200 bootstrap resamples, 15 runs x 15,000 rows: {t_small:.2f} s (aim < 2 s)")
    print(f"envelope + floor + 200 bootstrap resamples, 15 runs x 200,000 rows: {t_large:.2f} s (aim < 10 s)")
    r = small[5]
    ours = best_of(local_line, r.tokens, r.loss)
    direct = best_of(direct_local_line, r.tokens, r.loss, repeat=1)
    print(
        f"smoothing one 15,000-row curve: moving sums {ours * 1e3:.1f} ms, direct per-row line "
        f"{direct * 1e3:.0f} ms ({direct / ours:.0f}x)"
    )
    return dict(small=t_small, large=t_large, smoothing_speedup=direct / ours)


if __name__ == "__main__":
    main()
