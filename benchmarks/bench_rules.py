"""Benchmark: dbs schedule's default rule (calibrated) on a fit of an 11-batch sweep, and its hot path.

Times, steady state (after one warm call that compiles the kernel):
- ``schedule_from_fit(..., "calibrated")`` end to end (fit, optimum, 11 leave-one-out refits) and ``calibrate``;
- the relaxed loss with its adjoint gradient (numba, ``dbs_theory.theory.modal.relaxed_loss``) against the same
  loss and gradient in plain numpy (the reference of tests/test_sim_optimal.py), as a ratio;
- one L-BFGS-B optimisation with the adjoint gradient against finite differences, as a ratio.
Run: python benchmarks/bench_rules.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory.theory import modal  # noqa: E402
from dbs_theory.theory.calibrate import calibrate  # noqa: E402
from dbs_theory.schedules.lr_plan import LRPlan  # noqa: E402
from dbs_theory.rules.from_fit import schedule_from_fit  # noqa: E402


def best_of(fn, n=3):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def numpy_relaxed(model, grid, x):
    """The relaxed loss and its adjoint gradient, plain numpy (one row of modes per cell)."""
    loga, q = model.cells(grid.cell_scale)
    B = np.exp(x)[grid.cell_piece]
    n = grid.cell_data / B
    E = np.exp(n[:, None] * loga)
    floor = q / B[:, None]
    ms = [model.initial]
    for j in range(n.size):
        ms.append(E[j] * ms[-1] + (1 - E[j]) * floor[j])
    g, lam = np.zeros(x.size), np.ones(model.rate.size)
    for j in range(n.size - 1, -1, -1):
        g[grid.cell_piece[j]] += lam @ (-loga[j] * E[j] * n[j] * (ms[j] - floor[j]) - (1 - E[j]) * floor[j])
        lam = lam * E[j]
    return model.L_irr + ms[-1].sum(), g


def main():
    import sim
    from dbs_theory.measure.tabulate import bopt_table
    from sim.chain_eval import sweep_logs

    print("machine:", describe())
    nqm, budget, plan = sim.NQM.zhang2019(1000), 1e5, LRPlan(decay=1 / 6)
    runs = sweep_logs(nqm, 0.5, 2.0 ** np.arange(11), budget, "mc", 1, 1, 0)[0]
    fit = bopt_table(runs, bootstrap=0).to_dict()
    schedule_from_fit(fit, budget, "calibrated", plan, unit="examples")  # warm
    total = best_of(lambda: schedule_from_fit(fit, budget, "calibrated", plan, unit="examples"))
    cal_s = best_of(lambda: calibrate(fit["envelope"]))
    model, grid = nqm.modal(), sim.optimal.problem(0.5, budget, "wsd").grid
    x = np.log(np.geomspace(2, 200, grid.starts.size))
    arrays = model.cells(grid.cell_scale)
    k = best_of(lambda: [modal.relaxed_loss(model, grid, x, True, arrays) for _ in range(20)]) / 20
    ref = best_of(lambda: numpy_relaxed(model, grid, x), 2)
    adj = best_of(lambda: modal.optimise(model, grid, [np.full(grid.starts.size, 30.0)], 1.0, arrays=arrays), 2)
    from scipy import optimize

    lo = modal.bounds(grid, 1.0)
    fd = lambda: optimize.minimize(
        lambda v: modal.relaxed_loss(model, grid, v, False, arrays),
        np.log(np.full(grid.starts.size, 30.0)),
        method="L-BFGS-B",
        bounds=lo,
        options=dict(maxiter=2000, ftol=1e-13, gtol=1e-9),
    )
    fd_s = best_of(fd, 1)
    print(f"schedule_from_fit calibrated (11-batch sweep, WSD plan): {total:.2f} s, of which calibrate {cal_s:.2f} s")
    print(
        f"relaxed loss + adjoint gradient, {model.rate.size} modes x {grid.cell_data.size} cells: {k * 1e3:.2f} ms "
        f"(numba) vs {ref * 1e3:.1f} ms (numpy reference): {ref / k:.1f}x"
    )
    print(
        f"one L-BFGS-B optimum: {adj:.2f} s with the adjoint gradient vs {fd_s:.2f} s with finite differences: "
        f"{fd_s / adj:.1f}x"
    )
    return dict(total=total, calibrate=cal_s, kernel_speedup=ref / k, adjoint_speedup=fd_s / adj)


if __name__ == "__main__":
    main()
