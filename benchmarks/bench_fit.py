"""Benchmark: a three-phase fit of 40 points with 200 bootstrap resamples.

Prints the wall time, and the same job with a numerical Jacobian (the
baseline the analytic, sympy-derived one replaces), as a ratio.
Run: python benchmarks/bench_fit.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory.measure import fit  # noqa: E402
from dbs_theory.theory.es_laws import ThreePhaseES  # noqa: E402


def job():
    law = ThreePhaseES.c1(10.0, 30.0, 80.0, 100.0, 5000.0, 0.5)
    S = np.geomspace(11, 3000, 40)
    E = law(S) * np.exp(0.02 * np.random.default_rng(0).standard_normal(S.size))
    return fit.fit_es(S, E, bootstrap=200, seed=0)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def numeric_jacobian_job():
    """The same job with the analytic Jacobian switched off (2-point differences)."""
    real = fit.optimize.least_squares

    def two_point(*args, **kwargs):
        kwargs["jac"] = "2-point"
        return real(*args, **kwargs)

    with mock.patch.object(fit.optimize, "least_squares", two_point):
        return job()


def main():
    print("machine:", describe())
    job()  # warm: sympy derivation of the Jacobian, lambdify
    ours = min(timed(job) for _ in range(3))
    base = min(timed(numeric_jacobian_job) for _ in range(2))
    print(
        f"three-phase fit, 40 points + 200 bootstrap resamples: {ours:.2f} s "
        f"(aim 2 s); with a numerical Jacobian {base:.2f} s; speed-up {base / ours:.1f}x"
    )
    return dict(fit_s=ours, fit_speedup=base / ours)


if __name__ == "__main__":
    main()
