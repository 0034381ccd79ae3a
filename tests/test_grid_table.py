"""``dbs fit --grid``: Bopt(D) from a table of final losses, checked where the answer is known."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from dbs_theory.logs.grid_table import grid_fit, read_grid
from sim.frontier import loss_at_steps
from sim.nqm import NQM

NQM_ = NQM.power_law(d=200, alpha=1.5)
ETA = 0.5


def nqm_loss(B, D, eta=ETA):
    return float(loss_at_steps(NQM_, eta, B, D / B))


def exact_bopt(D, eta=ETA):
    """The batch minimising the NQM's exact loss at data D (continuous, by a bounded search in log B)."""
    r = minimize_scalar(
        lambda x: nqm_loss(math.exp(x), D, eta), bounds=(0.0, math.log(D)), method="bounded", options=dict(xatol=1e-8)
    )
    return math.exp(r.x)


def write(path, rows, header=("batch_size", "tokens", "loss")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def nqm_table(grid, data):
    return [(b, d, nqm_loss(b, d)) for d in data for b in grid if d / b >= 1]


def test_an_nqm_table_gives_the_exact_bopt_within_10_percent_and_names_the_grid_edges():
    grid = 2.0 ** np.arange(2, 11)  # 4 .. 1024, 2x apart: what sweeps publish
    data = np.geomspace(300, 3e7, 11)
    B, D, L = (np.array(c) for c in zip(*nqm_table(grid, data)))
    fit = grid_fit(B, D, L, bootstrap=50)
    seen = set()
    for p in fit.points:
        true = exact_bopt(p.data)
        seen.add(p.status)
        if true < grid[0] / math.sqrt(2):
            assert p.status == "below" and p.bopt == grid[0]
        elif true > grid[-1] * math.sqrt(2):
            assert p.status == "above" and p.bopt == grid[-1]
        elif grid[0] * math.sqrt(2) < true < grid[-1] / math.sqrt(2):  # bracketed with room
            assert p.status == "ok"
            assert abs(p.bopt / true - 1) < 0.10, (p.data, p.bopt, true)
            assert p.lo <= p.bopt <= p.hi
    assert {"below", "ok", "above"} <= seen  # the design reaches both edges


def test_the_power_law_recovers_a_known_exponent():
    """loss = 1 + (log B - log(k D^a))^2 / 4 + 0.1 / D: Bopt = k D^a exactly."""
    k, a = 0.05, 0.6
    grid, data = 2.0 ** np.arange(0, 16, 0.5), np.geomspace(1e4, 1e7, 6)
    rows = [(b, d, 1 + (math.log(b) - math.log(k * d**a)) ** 2 / 4 + 0.1 / d) for d in data for b in grid]
    B, D, L = (np.array(c) for c in zip(*rows))
    fit = grid_fit(B, D, L, bootstrap=50)
    assert all(p.status == "ok" for p in fit.points)
    assert fit.alpha == pytest.approx(a, abs=0.01) and fit.k == pytest.approx(k, rel=0.05)
    assert fit.alpha_lo <= a <= fit.alpha_hi


def test_noisy_tables_give_intervals_that_cover_the_truth_most_of_the_time():
    grid, data = 2.0 ** np.arange(2, 11), np.geomspace(3e4, 1e6, 4)
    rng = np.random.default_rng(1)
    base = nqm_table(grid, data)
    truth = {d: exact_bopt(d) for d in data}
    hits = total = 0
    for rep in range(8):
        B, D, L = (np.array(c) for c in zip(*base))
        fit = grid_fit(B, D, L * np.exp(rng.normal(0, 0.003, L.size)), bootstrap=100, seed=rep)
        for p in fit.points:
            if p.status == "ok":
                total += 1
                hits += p.lo <= truth[p.data] <= p.hi
    assert total >= 16 and hits / total >= 0.75


def test_each_cell_keeps_its_best_learning_rate_and_models_fit_apart(tmp_path):
    grid, data = 2.0 ** np.arange(2, 11), [1e5, 1e6]
    rows = []
    for model, scale in (("small", 1.0), ("large", 0.5)):
        for lr in (0.25, 0.5, 1.0):
            rows += [(model, lr, b, d, scale * nqm_loss(b, d, lr)) for d in data for b in grid]
    path = write(tmp_path / "g.csv", rows, ("model", "lr", "batch_size", "tokens", "loss"))
    tables = read_grid(path)
    assert sorted(tables) == ["large", "small"]
    B, D, L, lr = tables["small"]
    fit = grid_fit(B, D, L, lr, "small", bootstrap=0)
    assert any("best of 3 learning rates" in n for n in fit.notes)
    best = {(b, d): min(nqm_loss(b, d, e) for e in (0.25, 0.5, 1.0)) for d in data for b in grid}
    for p in fit.points:
        assert p.best_loss == pytest.approx(min(v for (b, d), v in best.items() if d == p.data))


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([(64, 1e6, 3.0), (64, 1e6, 3.1)], None, "two rows for one run"),
        ([(64, 1e6, 3.0)], ("batch_size", "loss"), "missing column 'tokens'"),
        ([(64, 1e6, 3.0, 2.9)], ("batch_size", "tokens", "loss", "loss"), "appears twice"),
        ([(64, "1e6x", 3.0)], None, "line 2 column 'tokens': not a number"),
        ([(64, 1e6, "nan")], None, "positive finite"),
        ([(64, 1e6, 3.0), (128, 1e6, 2.9), (256, 1e6, 2.95)], None, None),  # the one good table here
    ],
)
def test_the_command_refuses_a_bad_table_in_one_line_and_writes_nothing(tmp_path, rows, header, message):
    path = write(tmp_path / "t.csv", rows, header or ("batch_size", "tokens", "loss"))
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "fit", "--grid", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if message is None:
        assert r.returncode == 0, r.stderr
        rec = json.loads((out / "grid_fit.json").read_text())
        assert rec["fits"][0]["points"][0]["status"] == "ok" and "Bopt" not in r.stderr
        return
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_a_table_where_no_data_amount_has_three_batches_is_refused():
    with pytest.raises(ValueError, match=">= 3 batch sizes"):
        grid_fit(np.array([64.0, 128, 256]), np.array([1e5, 2e5, 3e5]), np.array([3.0, 2.9, 2.8]))


@pytest.mark.slow
def test_on_the_committed_cpu_sweep_the_grid_reading_agrees_with_the_envelope(tmp_path):
    """The CPU tier's 15 sweep logs (docs/data/runs) read at six data amounts and written as a published table
    would be: --grid's Bopt(D) and dbs fit's envelope, measured on the same runs, have overlapping intervals."""
    import gzip
    from pathlib import Path

    from dbs_theory.measure.tabulate import bopt_table
    from dbs_theory.measure.estimators import loss_at
    from dbs_theory.logs.runs import load_runs

    logs = sorted(Path(__file__).parents[1].glob("docs/data/runs/sweep-b*.csv.gz"))
    assert len(logs) == 15, "the CPU tier's 15 sweep logs are committed in docs/data/runs"
    for f in logs:
        (tmp_path / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    runs = load_runs(tmp_path)
    data = [2.5e5, 5e5, 1e6, 2e6]
    rows = [(r.batch_size, d, float(loss_at(r, d))) for r in runs for d in data if r.tokens[-1] >= d]
    B, D, L = (np.array(c) for c in zip(*rows))
    grid = grid_fit(B, D, L, bootstrap=200)
    env = bopt_table(runs, bootstrap=100).envelope
    for p in grid.points:
        j = int(np.argmin(np.abs(np.log(np.asarray(env.data) / p.data))))
        assert p.status == "ok" and env.lo[j] <= p.hi and p.lo <= env.hi[j], (p, env.lo[j], env.hi[j])


def test_what_a_new_user_met_is_said_plainly(tmp_path):
    """Probe cases: no interval without resamples, strict JSON, the best lr shown and an edge lr warned,
    spaced model names refused, a FIFO never opened, --out '' refused."""
    import os

    grid, data = 2.0 ** np.arange(2, 11), [1e5, 1e6]
    rows = [(lr, b, d, nqm_loss(b, d, lr)) for lr in (0.05, 0.1, 0.2) for d in data for b in grid]
    path = write(tmp_path / "g.csv", rows, ("lr", "batch_size", "tokens", "loss"))
    B, D, L, lr = read_grid(path)[""]
    fit = grid_fit(B, D, L, lr, bootstrap=0)
    ok = [p for p in fit.points if p.status == "ok"]
    assert ok and all(math.isnan(p.lo) and "no interval" in p.text() for p in ok)
    assert all(p.best_lr in (0.05, 0.1, 0.2) for p in fit.points)  # the rate each Bopt cell ran at
    assert any("largest learning rate" in n for n in fit.notes)
    out = tmp_path / "o"
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "fit", "--grid", str(path), "--out", str(out), "--bootstrap", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "its lr" in r.stdout, r.stderr
    json.loads((out / "grid_fit.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    spaced = write(
        tmp_path / "m.csv", [("m1", 64, 1e6, 3.0), (" m1", 128, 1e6, 2.9)], ("model", "batch_size", "tokens", "loss")
    )
    with pytest.raises(ValueError, match="surrounding spaces"):
        read_grid(spaced)
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "fit", "--grid", str(path), "--out", ""],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "--out ''" in r.stderr
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.csv")
        with pytest.raises(ValueError, match="not a regular file"):
            read_grid(tmp_path / "pipe.csv")
