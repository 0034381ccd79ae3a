"""Benchmark: reading a large sweep log (1e6 rows in 1000 runs) and finding its crossovers.

Times ``load_runs`` (parse + group) and ``crossovers`` on one CSV written
before the clock starts, and, as the same-run baseline, the grouping the
reader used before (one boolean mask per run: O(runs x rows)). Aim: load +
crossovers under 5 s on 2 cores.
Run: python benchmarks/bench_runs.py [--runs 1000 --rows-per-run 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory.logs.runs import load_runs  # noqa: E402
from dbs_theory.measure.curves import crossovers  # noqa: E402


def write_log(path, n_runs, per_run, seed=0):
    """Loss curves ``a + b / B + c exp(-D / tau)`` with noise, one run per batch size."""
    rng = np.random.default_rng(seed)
    B = np.repeat(np.geomspace(16, 16 * 2**10, n_runs), per_run)
    step = np.tile(np.arange(1, per_run + 1, dtype=float), n_runs)
    D = step * B
    loss = 2 + 50 / B + 3 * np.exp(-D / 2e5) + 0.01 * rng.standard_normal(D.size)
    run = np.repeat(np.arange(n_runs), per_run)
    with open(path, "w") as fh:
        fh.write("run,batch_size,step,tokens,loss\n")
        fh.writelines(f"r{r},{b:.6g},{int(s)},{d:.8g},{v:.6f}\n" for r, b, s, d, v in zip(run, B, step, D, loss))


def old_grouping(names):
    """The previous reader's grouping: one pass over all rows per run."""
    return [np.array([i for i, n in enumerate(names) if n == name]) for name in dict.fromkeys(names)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rows-per-run", type=int, default=1000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "sweep.csv"
        write_log(path, args.runs, args.rows_per_run)
        t = time.perf_counter()
        runs = load_runs(path)
        t_load = time.perf_counter() - t
    t = time.perf_counter()
    cross = crossovers(runs)
    t_cross = time.perf_counter() - t
    names = np.repeat([r.name for r in runs], args.rows_per_run).tolist()
    sub = names[: len(names) // 10]  # a tenth of the rows (and runs): the old way is quadratic
    t = time.perf_counter()
    old_grouping(sub)
    t_old = time.perf_counter() - t
    t = time.perf_counter()
    np.unique(np.asarray(sub), return_inverse=True)
    t_new = time.perf_counter() - t
    print(f"machine: {describe()}")
    print(
        f"{args.runs} runs x {args.rows_per_run} rows: load_runs {t_load:.2f} s, crossovers {t_cross:.2f} s "
        f"({len(cross)} crossings), total {t_load + t_cross:.2f} s (aim < 5 s)"
    )
    print(
        f"grouping a tenth of the rows: sort-once {t_new * 1e3:.1f} ms vs mask-per-run {t_old * 1e3:.0f} ms "
        f"({t_old / t_new:.0f}x; the gap grows with runs x rows)"
    )
    return dict(load=t_load, cross=t_cross, total=t_load + t_cross, grouping_speedup=t_old / t_new)


if __name__ == "__main__":
    main()
