"""The main path end to end: dbs fit + dbs schedule on NQM sweeps, scored exactly.

The quick tests check the bookkeeping of the scores on a tiny exact case; the
slow one runs a reduced benchmark and holds the package to the main path's bars (sim.chain_eval.BARS).
"""

import math

import numpy as np
import pytest

import sim
from dbs_theory.schedules.batch_schedules import constant_batch
from sim.chain_eval import BARS, grid_losses, markdown_table, references, score_schedule, study, summarize, sweep_logs

ETA, BUDGET = 0.5, 3e3  # the best fixed batch (13.5) lies inside the grid 1..32
BATCHES = 2.0 ** np.arange(6)


@pytest.fixture(scope="module")
def tiny():
    nqm = sim.NQM.zhang2019(100)
    return nqm, references(nqm, ETA, BUDGET, K=3), grid_losses(nqm, ETA, BATCHES, BUDGET)


def test_the_best_fixed_batch_scores_zero_and_the_references_score_one(tiny):
    nqm, ref, losses = tiny
    B_a = min(losses, key=losses.get)
    a = score_schedule(nqm, ETA, constant_batch(B_a, "examples"), BUDGET, ref, losses)
    assert a["B_a"] == B_a and a["L_pkg"] == pytest.approx(a["L_a"], rel=1e-12)
    assert a["gain"] == pytest.approx(0, abs=1e-12) and not a["worse"]
    assert a["of_paper"] == pytest.approx(0, abs=1e-10) and a["gap_closed"] == pytest.approx(0, abs=1e-10)
    b = score_schedule(nqm, ETA, ref["paper"], BUDGET, ref, losses)
    assert b["gain"] == pytest.approx(b["gain_b"]) and b["of_paper"] == pytest.approx(1)
    c = score_schedule(nqm, ETA, ref["k_piece"], BUDGET, ref, losses)
    assert c["gap_closed"] == pytest.approx(1) and c["gain_c"] > c["gain_b"] > 0  # (c) is the best found


def test_a_worse_schedule_and_a_refusal_are_counted_against_the_package(tiny):
    nqm, ref, losses = tiny
    small = score_schedule(nqm, ETA, constant_batch(1.0, "examples"), BUDGET, ref, losses)
    assert small["worse"] and small["excess"] > 0
    assert small["excess"] == pytest.approx(losses[1.0] / small["L_a"] - 1)
    assert small["gain"] == pytest.approx(-small["excess"])
    refused = score_schedule(nqm, ETA, None, BUDGET, ref, losses, fallback=1.0)  # left with the logs' pick
    assert refused["L_pkg"] == losses[1.0] and refused["worse"]


def test_monte_carlo_sweeps_hold_one_distinct_run_per_seed_and_batch():
    nqm = sim.NQM.zhang2019(20)
    sweeps = sweep_logs(nqm, ETA, [1.0, 4.0], 200, "mc", seeds_per_batch=3, sweeps=2, seed=1)
    assert len(sweeps) == 2 and all(len(s) == 6 for s in sweeps)
    assert sorted({r.batch_size for r in sweeps[0]}) == [1.0, 4.0]
    finals = {float(r.loss[-1]) for s in sweeps for r in s}
    assert len(finals) == 12  # every replica its own stream
    assert all(r.tokens[-1] >= 200 and r.step.size <= 2002 for s in sweeps for r in s)


def _row(logs, excess, of_paper=1.0, over_pick=None):
    """A scored sweep: ``excess`` over the oracle grid batch, ``over_pick`` over the logs' own pick (default:
    the logs picked the oracle's batch)."""
    L = 1 + excess
    return dict(
        spectrum="s",
        grid="2x",
        logs=logs,
        budget=1e5,
        gain=-excess,
        excess=excess,
        worse=excess > 0,
        of_paper=of_paper,
        gap_closed=0.2,
        gain_b=0.1,
        gain_c=0.5,
        recommendation="dynamic",
        refused=False,
        L_pkg=L,
        L_a=1.0,
        L_noisy=L / (1 + (excess if over_pick is None else over_pick)),
    )


@pytest.mark.parametrize(
    "excesses, ok", [([-0.05] * 9 + [0.019], True), ([-0.05] * 9 + [0.021], False), ([-0.05] * 8 + [0.01, 0.01], False)]
)
def test_the_monte_carlo_bar_is_at_most_one_sweep_in_ten_and_two_percent(excesses, ok):
    case = summarize([_row("MC 1 seed", e) for e in excesses])[0]
    assert case["ok"] is ok and case["worse_pick"] == sum(e > 0 for e in excesses)


def test_the_monte_carlo_bar_is_against_the_logs_own_pick_and_the_oracle_is_reported():
    """Noisy logs: a user without the package runs the batch whose logged loss is lowest;
    losing 4% to the oracle grid batch while beating that pick passes, and both are in the table."""
    rows = [_row("MC 1 seed", -0.1)] * 9 + [_row("MC 1 seed", 0.04, over_pick=-0.5)]
    case = summarize(rows)[0]
    assert case["ok"] and case["worse"] == 1 and case["worst"] == pytest.approx(0.04)
    assert case["worse_pick"] == 0 and case["beats_pick"] == 10
    assert not summarize([_row("MC 1 seed", -0.1)] * 9 + [_row("MC 1 seed", -0.1, over_pick=0.03)])[0]["ok"]
    line = markdown_table([case]).splitlines()[-1]
    assert "1/10 (+4.0%)" in line and "| 0/10 | pass |" in line


def test_the_exact_bar_is_never_worse_and_eighty_percent_of_the_paper_rule():
    assert summarize([_row("exact", -0.05, 0.81)])[0]["ok"]
    assert not summarize([_row("exact", -0.05, 0.79)])[0]["ok"]
    assert not summarize([_row("exact", 0.001, 0.0)])[0]["ok"]
    assert "| s | 2x | exact |" in markdown_table(summarize([_row("exact", -0.05, 0.81)]))


@pytest.mark.slow
def test_the_main_path_meets_its_bars_on_a_reduced_benchmark():
    rows, cases = study(d=300, eta=ETA, budgets=[1e5], spectra=["zhang2019"], grids=["2x"], logs=["exact", "MC 1 seed"])
    exact = [r for r in rows if r["logs"] == "exact"]
    mc = [r for r in rows if r["logs"] != "exact"]
    assert exact and mc and not any(r["refused"] for r in rows)
    assert not any(r["worse"] for r in exact)
    assert min(r["of_paper"] for r in exact) >= BARS["exact_of_paper"]
    assert sum(r["worse"] for r in mc) <= BARS["mc_worse_share"] * len(mc)
    assert max(r["excess"] for r in mc) <= BARS["mc_worst_loss"]
    assert all(math.isfinite(c["gain_median"]) for c in cases)


def test_an_interrupted_study_reuses_its_finished_cases_and_reruns_nothing_else():
    old = dict(_row("exact", -0.1), spectrum="zhang2019", budget=1e3)
    seen = []
    rows, cases = study(
        d=10, budgets=[1e3], spectra=["zhang2019"], grids=["2x"], logs=["exact"], done=[old], on_row=seen.append
    )
    assert rows == seen == [old] and cases[0]["sweeps"] == 1


def test_resume_takes_a_shorter_run_whose_budgets_come_first(tmp_path):
    """--resume reuses a run with budgets (1e5) when asked for (1e5, 3e5): the earlier cases and their seeds
    are the same; any other difference of options is refused."""
    import json

    from sim.modes.chain import _chain_partial

    meta = dict(d=1000, eta=0.5, budgets=[1e5], seed=0)
    path = tmp_path / "chain_rows.jsonl"
    path.write_text(json.dumps(dict(meta=meta, seconds=5.0)) + "\n" + json.dumps(dict(spectrum="x")) + "\n")
    rows, seconds = _chain_partial(path, dict(meta, budgets=[1e5, 3e5]))
    assert rows == [dict(spectrum="x")] and seconds == 5.0
    for other in (dict(meta, budgets=[3e5, 1e5]), dict(meta, budgets=[3e5]), dict(meta, budgets=[1e5], seed=1)):
        with pytest.raises(ValueError, match="other options"):
            _chain_partial(path, other)
