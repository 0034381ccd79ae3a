"""Benchmarks for sim: the exact frontier, ``es_frontier`` as users call it, and the Monte Carlo kernel.

Prints ratios measured in the same run (ours vs a baseline) and the machine.
``es_frontier`` on the Zhang NQM (d = 1e4, 64 batches x 16 targets, eta = 0.5)
is timed warm (after JIT compilation), repeated, against the same call with
the old ``Bopt`` search (one batch per kernel call, ``sim.frontier._bopt_scan``).
Aim: ``es_frontier`` under 0.5 s warm.
Run: python benchmarks/bench_sim.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from unittest import mock

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

import sim  # noqa: E402
from sim import _kernels, frontier, sweep  # noqa: E402
from sim.montecarlo import per_step_schedule  # noqa: E402


def timings(fn, repeat=3):
    """Wall and process CPU times (seconds, arrays) of ``repeat`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return np.array(wall), np.array(cpu)


def best_of(fn, repeat=3):
    return float(timings(fn, repeat)[0].min())


def scan_bopt(nqm, eta, target):
    """The old ``sim.bopt``: ``E = B S(B)`` minimised one batch per kernel call (~70 calls per target)."""
    b0 = float(sim.bmin(nqm, eta, target))
    return frontier._bopt_scan(nqm, eta, target, b0 * (1 + 1e-6), b0 * 1e5)


def stepping_baseline(nqm, eta, B, targets, max_steps=10**7):
    """Evaluate the expected loss step by step (vectorised over modes) until every target is hit."""
    m = nqm.m0.copy()
    a = (1 - eta * nqm.h) ** 2
    b = eta**2 * nqm.c / B
    w = 0.5 * nqm.h
    remaining = np.sort(targets)[::-1]
    hit = 0
    for t in range(max_steps):
        m = a * m + b
        L = w @ m
        while hit < remaining.size and L <= remaining[hit]:
            hit += 1
        if hit == remaining.size:
            return t


def bench_frontier(quick):
    nqm = sim.NQM.zhang2019(10_000)
    eta = 0.5
    Bs = np.geomspace(2, 4096, 64)
    targets = np.geomspace(0.15, 1.5, 16)
    numba.set_num_threads(1)
    sim.steps_to_target(nqm, eta, Bs[:2, None], targets[None, :2])  # compile
    ours = best_of(lambda: sim.steps_to_target(nqm, eta, Bs[:, None], targets[None, :]))
    sub = Bs[:: 16 if not quick else 32]  # the baseline is slow: time a subset of batches
    t = time.perf_counter()
    for B in sub:
        stepping_baseline(nqm, eta, B, targets)
    base = (time.perf_counter() - t) * Bs.size / sub.size
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print(
        f"frontier d=1e4 x 64 B x 16 targets, 1 thread: ours {ours:.3f} s; "
        f"step-by-step baseline {base:.1f} s (timed on {sub.size} of 64 batches, scaled); "
        f"speed-up {base / ours:.0f}x"
    )
    return dict(frontier_s=ours, frontier_speedup=base / ours)


def bench_es_frontier(quick):
    """``es_frontier`` warm, as users call it (all threads, then one), vs the old ``Bopt`` search.

    Wall times are the measure; the CPU time of the one-thread runs is printed
    beside them, as it moves less when other processes share the cores.
    """
    nqm = sim.NQM.zhang2019(10_000)
    eta, Bs, targets = 0.5, np.geomspace(2, 4096, 64), np.geomspace(0.15, 1.5, 16)
    call = lambda: sweep.es_frontier(nqm, eta, Bs, targets)
    threads = numba.config.NUMBA_NUM_THREADS
    with mock.patch.object(sweep, "bopt", scan_bopt):
        old_fr = call()  # compiles; and the old path's numbers
        old, _ = timings(call, 1 if quick else 3)
    fr = call()
    n = 3 if quick else 7
    ours, _ = timings(call, n)
    numba.set_num_threads(1)
    one, one_cpu = timings(call, n)
    numba.set_num_threads(threads)
    rel = max(float(np.nanmax(np.abs(getattr(fr, k) / getattr(old_fr, k) - 1))) for k in ("bopt", "bmin", "sopt"))
    print("es_frontier d=1e4 x 64 B x 16 targets, eta=0.5, warm (aim 0.5 s):")
    print(f"  ours, {threads} threads: median {np.median(ours):.3f} s, min {ours.min():.3f} s ({n} runs)")
    print(
        f"  ours, 1 thread:  median {np.median(one):.3f} s, min {one.min():.3f} s "
        f"(CPU median {np.median(one_cpu):.3f} s)"
    )
    print(
        f"  old Bopt search (one batch per kernel call), {threads} threads: median {np.median(old):.3f} s, "
        f"min {old.min():.3f} s ({old.size} runs)"
    )
    print(
        f"  speed-up (medians, {threads} threads) {np.median(old) / np.median(ours):.1f}x; "
        f"max relative difference of bopt/bmin/sopt vs old {rel:.1e}"
    )
    return dict(
        es_frontier_s=float(np.median(ours)),
        es_frontier_speedup=float(np.median(old) / np.median(ours)),
        es_frontier_rel_diff=rel,
    )


def bench_monte_carlo(quick):
    nqm = sim.NQM.zhang2019(10_000)
    R, T = 16, (50 if quick else 200)
    lrs, bs, _ = per_step_schedule(0.5, 16, T)
    record = np.zeros(T + 1, bool)
    record[-1] = True
    theta0 = np.ones((R, nqm.h.size))
    seeds = np.arange(R, dtype=np.uint64)
    out = np.empty((R, 1))
    updates = R * T * nqm.h.size
    run = lambda: _kernels.mc_kernel(nqm.h, nqm.c, theta0, lrs, bs, record, seeds, out)
    run()
    numba.set_num_threads(1)
    t1 = best_of(run)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    t2 = best_of(run)
    rng = np.random.default_rng(0)
    buf = np.empty(updates)
    t_rng = best_of(lambda: rng.standard_normal(out=buf))

    def numpy_plain():
        theta = theta0.copy()
        z = np.empty_like(theta)
        for t in range(T):
            rng.standard_normal(out=z)
            theta = (1 - lrs[t] * nqm.h) * theta - (lrs[t] / np.sqrt(bs[t])) * np.sqrt(nqm.c) * z

    t_np = best_of(numpy_plain)
    rate = lambda s: updates / s / 1e6
    print(f"Monte Carlo, {R} replicas x {T} steps x 1e4 modes ({updates:.1e} coordinate updates):")
    print(f"  kernel 1 thread  {rate(t1):7.1f} M updates/s")
    print(f"  kernel 2 threads {rate(t2):7.1f} M updates/s   (c) 2-vs-1 thread speed-up {t1 / t2:.2f}x")
    print(f"  numpy reference  {rate(t_np):7.1f} M updates/s   (a) kernel(1 thread)/numpy {t_np / t1:.2f}x")
    print(
        f"  numpy Generator normals {rate(t_rng):7.1f} M/s       (b) kernel(1 thread)/normal-fill bound "
        f"{t_rng / t1:.2f}"
    )
    return dict(mc_vs_numpy=t_np / t1, mc_vs_rng=t_rng / t1, mc_threads=t1 / t2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args(argv)
    print("machine:", describe() + f"; {platform.platform()}")
    res = bench_frontier(args.quick)
    res.update(bench_es_frontier(args.quick))
    res.update(bench_monte_carlo(args.quick))
    return res


if __name__ == "__main__":
    main()
