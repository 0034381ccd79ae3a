"""Run every benchmark and print one table of same-run ratios (ours vs a baseline), with the machine.

Run: python benchmarks/run_all.py [--quick | --smoke]   (the trainer benchmark needs the torch extra)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402


def _sim_rows(quick):
    import bench_sim

    r = bench_sim.main(["--quick"] if quick else [])
    return [
        ("exact E(S) frontier (1 thread) vs stepping to each target", r["frontier_speedup"], "speed-up"),
        ("Monte Carlo kernel (1 thread) vs numpy reference loop", r["mc_vs_numpy"], "speed-up"),
        ("Monte Carlo kernel (1 thread) vs numpy normal fill alone", r["mc_vs_rng"], "fraction of bound"),
        ("Monte Carlo kernel, 2 threads vs 1", r["mc_threads"], "speed-up"),
    ]


def _rules_rows():
    import bench_rules

    r = bench_rules.main()
    return [
        ("dbs schedule's calibrated rule, 11-batch sweep, WSD (seconds)", r["total"], "seconds"),
        ("modal relaxed loss + adjoint: numba vs numpy", r["kernel_speedup"], "speed-up"),
        ("optimum: adjoint gradient vs finite differences", r["adjoint_speedup"], "speed-up"),
    ]


def _train_rows(argv):
    try:
        import bench_train
    except ImportError:
        return [("trainer vs plain loop", float("nan"), "skipped: no torch")]
    rows = []
    for micro, r in bench_train.main(argv).items():  # one measurement per micro-batch size (sequences)
        rows += [
            (f"trainer eager (schedule, logging, eval off) vs plain loop, micro {micro}", r["off"] / r["plain"],
             "throughput ratio"),
            (f"trainer compiled vs plain loop, micro {micro}", r["fast"] / r["plain"], "throughput ratio"),
            (f"trainer compiled (WSD, logging, eval every 25 steps) vs plain loop, micro {micro}",
             r["on"] / r["plain"], "throughput ratio"),
        ]  # fmt: skip
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (noisier ratios)")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="the summary's whole path at tiny sizes, leaving out the two slowest benchmarks (simulator, "
        "rules): its ratios mean nothing (tests/test_house.py runs it)",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        rows = [("simulator and rules benchmarks", float("nan"), "skipped: --smoke")]
    else:
        rows = _sim_rows(args.quick)
    import bench_fit

    r = bench_fit.main()
    rows.append(("three-phase fit + bootstrap: analytic vs numerical Jacobian", r["fit_speedup"], "speed-up"))
    import bench_runs

    small = ["--runs", "20", "--rows-per-run", "200"] if args.smoke else ["--runs", "300", "--rows-per-run", "1000"]
    r = bench_runs.main(small if args.quick or args.smoke else [])
    rows += [
        ("load_runs + crossovers, 1e6 rows in 1000 runs (seconds; aim < 5)", r["total"], "seconds"),
        ("run grouping: sort once vs a mask per run", r["grouping_speedup"], "speed-up"),
    ]
    import bench_estimators

    r = bench_estimators.main()
    rows += [
        ("envelope + floor + 200 bootstrap, 15 runs x 15,000 steps (aim < 2)", r["small"], "seconds"),
        ("estimators: moving sums vs a direct line per row", r["smoothing_speedup"], "speed-up"),
    ]
    if not args.smoke:
        rows += _rules_rows()
    tokens = "20000" if args.smoke else "150000" if args.quick else "300000"
    rows += _train_rows(["--tokens", tokens] + (["--micro", "4"] if args.smoke else []))
    print("\n" + "=" * 100)
    print("machine:", describe())
    w = max(len(n) for n, _, _ in rows)
    print(f"{'benchmark'.ljust(w)}  {'ratio':>9}  meaning")
    print(f"{'-' * w}  {'-' * 9}  {'-' * 18}")
    for name, value, kind in rows:
        print(f"{name.ljust(w)}  {value:9.3g}  {kind}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
