"""The main path, dbs fit then dbs schedule, on a sweep with the truth known.

The exact answers come from the simulator: the loss at the budget of any batch
schedule (``sim.schedule_eval.loss_at_budget``); the user's alternative is the
sweep's own best grid batch at the budget.
"""

import json

import numpy as np
import pytest

import sim
from dbs_theory.schedules.batch_schedules import BatchSchedule
from dbs_theory.measure.tabulate import bopt_table
from dbs_theory.cli import main
from dbs_theory.rules.envelope import growth_resolved, schedule_from_envelope
from sim.schedule_eval import loss_at_budget
from sim.trainer_logs import exact_log

ETA, BUDGET = 0.5, 2e4
BATCHES = 2.0 ** np.arange(10)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """An exact 2x sweep, every run to the budget, a row every S/1000 steps; dbs fit's table written."""
    nqm = sim.NQM.zhang2019(300)
    runs = [exact_log(nqm, ETA, B, data=BUDGET, every=max(1, int(BUDGET / B) // 1000)) for B in BATCHES]
    table = bopt_table(runs, bootstrap=0)
    out = tmp_path_factory.mktemp("fit")
    table.write(out)
    return nqm, runs, table, out / "fit.json"


def test_fit_json_holds_bopt_over_the_data_the_sweep_covers_not_only_at_targets(sweep):
    nqm, runs, table, path = sweep
    env = json.loads(path.read_text())["envelope"]
    ident = [d for d, ok in zip(env["data"], env["identified"]) if ok]
    assert max(ident) >= 0.9 * BUDGET  # the three-phase targets stop far short of the budget
    assert max(r.get("data_envelope") or 0 for r in table.rows) < 0.5 * BUDGET
    assert len(env["by_batch"]) == BATCHES.size


def test_dbs_schedule_within_the_swept_range_needs_no_extrapolate_and_beats_the_best_fixed_batch(
    sweep, tmp_path, capsys
):
    nqm, runs, _, path = sweep
    assert (
        main(
            [
                "schedule",
                "--from",
                str(path),
                "--rule",
                "paper",
                "--horizon",
                f"{BUDGET:g}",
                "--unit",
                "examples",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    sched = BatchSchedule.from_json((tmp_path / "schedule.json").read_text())
    grid_best = min(loss_at_budget(nqm, ETA, B, BUDGET) for B in BATCHES)
    assert sched.kind != "constant" and sched.sizes[-1] > 4 * sched.sizes[0]
    assert loss_at_budget(nqm, ETA, sched, BUDGET) < grid_best
    assert "resolves that Bopt grows" in capsys.readouterr().out


def test_past_the_swept_range_extrapolate_is_asked_for_and_holds_the_curve(sweep, tmp_path, capsys):
    _, _, _, path = sweep
    argv = [
        "schedule",
        "--from",
        str(path),
        "--rule",
        "paper",
        "--horizon",
        f"{3 * BUDGET:g}",
        "--unit",
        "examples",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "past the sweep's data" in capsys.readouterr().err and not (tmp_path / "schedule.json").exists()
    assert main(argv + ["--extrapolate"]) == 0
    assert "held at" in capsys.readouterr().out
    ex = json.loads((tmp_path / "exports.json").read_text())
    sched = BatchSchedule.from_json((tmp_path / "schedule.json").read_text())
    assert sched(3 * BUDGET) >= ex["best_fixed"]  # never below the best fixed batch at the last measured data


def _env(lo0, hi0, lo1, hi1, b0=4.0, b1=32.0, mid=(np.nan, np.nan, np.nan), mid_at=2000.0):
    """An envelope with Bopt b0 [lo0, hi0] at D = 100, a reading ``mid`` (Bopt, lo, hi) at D = ``mid_at`` and
    b1 [lo1, hi1] at D = 1e4; batches 2..64."""
    batches = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    by = [[3.0, 2.0, 1.0 + 0.01 * abs(np.log(b / 32))] for b in batches]
    return dict(
        data=[100.0, mid_at, 1e4],
        bopt=[b0, mid[0], b1],
        lo=[lo0, mid[1], lo1],
        hi=[hi0, mid[2], hi1],
        identified=[True, bool(np.isfinite(mid[0])), True],
        batches=batches,
        by_batch=by,
        reason=["", "", ""],
    )


def test_growth_counts_as_resolved_only_when_the_intervals_separate():
    assert growth_resolved(_env(3, 5, 5.01, 40), 100, 1e4)[0]
    assert not growth_resolved(_env(3, 5, 5.0, 40), 100, 1e4)[0]  # touching: not resolved
    assert not growth_resolved(_env(3, 20, 10, 40), 100, 1e4)[0]  # overlapping
    assert growth_resolved(_env(np.nan, np.nan, np.nan, np.nan), 100, 1e4)[0]  # exact values: a rise is real
    assert not growth_resolved(_env(np.nan, np.nan, np.nan, np.nan, 32.0, 32.0), 100, 1e4)[0]


def test_a_later_early_reading_can_resolve_growth_but_not_one_past_the_first_quarter():
    """D = 2000 lies in the first quarter of a 1e4 run (up to 2500): its narrower interval counts."""
    wide = (3, 20, 10, 40)
    assert growth_resolved(_env(*wide, mid=(6.0, 5.0, 9.99)), 100, 1e4)[0]
    assert not growth_resolved(_env(*wide, mid=(6.0, 5.0, 10.0)), 100, 1e4)[0]
    assert not growth_resolved(_env(*wide, mid=(6.0, 5.0, 9.0)), 100, 1e4, early_to=0.19)[0]


def test_a_late_reading_in_the_last_half_of_the_run_can_resolve_growth_but_not_one_before_it():
    """The last reading sits where every log ends (one-sided local line, the widest interval); Bopt does not
    fall as D grows, so a narrower reading in [D1/2, D1] bounds Bopt(D1) from below: D = 5000 counts for a
    1e4 run, D = 4999 does not."""
    wide = (3, 5, 4, 40)  # early [3, 5]; the last reading [4, 40] overlaps it
    assert not growth_resolved(_env(*wide), 100, 1e4)[0]
    assert growth_resolved(_env(*wide, mid=(20.0, 5.01, 30.0), mid_at=5000.0), 100, 1e4)[0]
    assert not growth_resolved(_env(*wide, mid=(20.0, 5.0, 30.0), mid_at=5000.0), 100, 1e4)[0]  # touching
    assert not growth_resolved(_env(*wide, mid=(20.0, 5.01, 30.0), mid_at=4999.0), 100, 1e4)[0]
    assert growth_resolved(_env(*wide, mid=(20.0, 5.01, 30.0), mid_at=4999.0), 100, 1e4, late_from=0.4)[0]


@pytest.mark.parametrize("b1, dynamic", [(1.49 * 4.0, False), (1.51 * 4.0, True)])
def test_a_resolved_rise_under_min_growth_hands_out_the_best_fixed_batch(b1, dynamic):
    """Separated intervals but a followed curve that rises less than MIN_GROWTH (1.5x) over the run: a
    near-constant schedule gains nothing worth handing out."""
    from dbs_theory.rules.envelope import MIN_GROWTH

    assert MIN_GROWTH == 1.5
    env = _env(3.9, 4.1, b1 * 0.99, b1 * 1.01, b0=4.0, b1=b1)
    env["data"][0] = 1e4 / 50  # the first reading at the first interval of a 1e4 run
    got = schedule_from_envelope(env, 1e4, unit="examples")
    assert got.recommendation == ("dynamic" if dynamic else "fixed"), got.reason
    assert ("rises only" in got.reason) != dynamic


def test_an_unresolved_growth_hands_out_the_best_fixed_batch_not_a_dynamic_schedule():
    got = schedule_from_envelope(_env(3, 20, 10, 40), 1e4, unit="examples", interval=100)
    assert got.recommendation == "fixed" and got.schedule.kind == "constant"
    assert got.schedule(5e3) == got.best_fixed == 32.0 and "not expected to beat" in got.reason
    got = schedule_from_envelope(_env(3, 5, 6, 40), 1e4, unit="examples", interval=100)
    assert got.recommendation == "dynamic" and got.schedule.sizes[0] < got.schedule.sizes[-1]


def test_a_dynamic_batch_run_is_left_out_of_fixed_batch_estimates_and_named(sweep, tmp_path, capsys):
    """A run whose batch changes has no one batch size: never placed at its last (or most common) batch."""
    from dbs_theory.logs.runs import Run, write_runs

    _, runs, _, _ = sweep
    step = np.arange(0, 2001.0)
    batch = np.where(step < 1000, 4.0, 16.0)
    tokens = np.cumsum(np.r_[0.0, batch[1:]])
    dyn = Run("grown", 16.0, step, tokens, np.linspace(3.0, 0.01, step.size), {"batch_size": batch})
    assert dyn.dynamic
    table = bopt_table(runs + [dyn], bootstrap=0)
    assert ("grown", "dynamic") in {(r, "dynamic" if "dynamic" in why else "") for r, _, why in table.excluded}
    assert "grown" not in set(table.points.run)
    write_runs(runs + [dyn], tmp_path / "runs.csv")
    assert main(["plan", str(tmp_path / "runs.csv"), "--budget", f"{BUDGET:g}", "--out", str(tmp_path / "p")]) == 0
    assert "'grown': its batch size changes during the run" in capsys.readouterr().out
    table.write(tmp_path / "fit")  # dbs report draws it with its batch steps
    (drawn,) = json.loads((tmp_path / "fit" / "fit.json").read_text())["dynamic_runs"]
    assert drawn["name"] == "grown" and sorted(set(drawn["batch"])) == [4.0, 16.0]
    k = drawn["batch"].index(16.0)  # the change is kept exactly, however the rows are thinned
    assert drawn["tokens"][k - 1] == tokens[999] and drawn["tokens"][k] == tokens[1000]
    assert main(["report", str(tmp_path / "fit")]) == 0
    md = (tmp_path / "fit" / "report.md").read_text()
    assert "whose batch changes (grown)" in md and "dynamic-runs" in md


@pytest.mark.slow
def test_a_run_trained_with_a_batch_schedule_is_read_back_as_dynamic_by_fit_and_drawn_by_report(tmp_path, capsys):
    """dbs train --batch-schedule's own log, read back by dbs fit (left out of the
    fixed-batch estimates, named) and dbs report (drawn with its batch steps)."""
    pytest.importorskip("torch")
    common = [
        "train",
        "--preset",
        "tiny",
        "--seq-len",
        "32",
        "--tokens",
        "12000",
        "--lr",
        "3e-3",
        "--eval-tokens",
        "2048",
        "--quiet",
    ]
    for b in (128, 256, 512):
        assert main([*common, "--batch-size", str(b), "--out", str(tmp_path / f"b{b}")]) == 0
    from dbs_theory.schedules.batch_schedules import step_batch

    (tmp_path / "grow.json").write_text(step_batch([6000.0], [128.0, 512.0], "tokens", 3e-3).to_json())
    assert main([*common, "--batch-schedule", str(tmp_path / "grow.json"), "--out", str(tmp_path / "grow")]) == 0
    logs = [str(tmp_path / n / "log.csv") for n in ("b128", "b256", "b512", "grow")]
    capsys.readouterr()
    assert main(["fit", *logs, "--bootstrap", "0", "--out", str(tmp_path / "fit")]) == 0
    out = capsys.readouterr().out
    assert "'grow'" in out and "dynamic" in out
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    (drawn,) = fit["dynamic_runs"]
    assert drawn["name"] == "grow" and sorted(set(drawn["batch"])) == [128.0, 512.0]
    assert main(["report", str(tmp_path / "fit")]) == 0
    assert "whose batch changes (grow)" in (tmp_path / "fit" / "report.md").read_text()


@pytest.mark.parametrize("short, competes", [(1.049, True), (1.051, False)])
def test_a_run_ending_a_few_steps_short_of_the_data_still_competes_for_best_fixed(short, competes):
    """A sweep cut at a budget ends each run at the step that crosses it; the best batch (4) ended 0.007%
    short and lost to 16 (a new user's flat sweep). Within NEAR_END (5%) below, a run competes at its last
    smoothed loss; further short, it does not."""
    from dbs_theory.rules.envelope import NEAR_END, best_fixed_batch

    assert NEAR_END == 1.05
    env = dict(data=[1e3, 1e4 / short, 1e4], batches=[4.0, 16.0], by_batch=[[3.0, 2.10, None], [3.0, 2.2, 2.12]])
    assert best_fixed_batch(env, 1e4)[0] == (4.0 if competes else 16.0)


def test_no_identified_reading_in_the_last_half_is_not_growth_even_against_itself():
    """Bopt identified only early (it lies past the grid later): the early reading is not compared with itself."""
    env = _env(3, 5, np.nan, np.nan, b1=np.nan)
    env["identified"] = [True, False, False]
    ok, why = growth_resolved(env, 100, 1e4)
    assert not ok and "between 5000 and 1e+04" in why


def test_a_fixed_recommendation_at_the_grid_edge_says_a_batch_past_it_may_be_better():
    got = schedule_from_envelope(_env(3, 20, 10, 40), 1e4, unit="examples", interval=100)
    assert got.recommendation == "fixed" and got.best_fixed == 32.0 and "largest" not in got.reason
    env = _env(3, 20, 10, 40)
    env["by_batch"] = [[3.0, 2.0, 1.0 + 0.01 * np.log(b)] for b in env["batches"]]  # the smallest batch wins
    got = schedule_from_envelope(env, 1e4, unit="examples", interval=100)
    assert got.best_fixed == 2.0 and "the sweep's smallest batch" in got.reason


def test_the_schedule_folder_reports_its_recommendation_and_one_measured_range(sweep, tmp_path):
    """exports.json's measured_to is the band's too (the horizon refusal and the report agreed on none), and
    dbs report states the recommendation and its reason."""
    bopt_table(sweep[1], bootstrap=20).write(tmp_path / "fit")  # intervals: the band needs them
    out = tmp_path / "sched"
    assert (
        main(
            [
                "schedule",
                "--from",
                str(tmp_path / "fit" / "fit.json"),
                "--rule",
                "paper",
                "--horizon",
                f"{BUDGET:g}",
                "--unit",
                "examples",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ex = json.loads((out / "exports.json").read_text())
    assert ex["band"]["measured_to"] == ex["measured_to"] and not ex["band"]["beyond"]
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Recommended:" in md and ex["reason"][:40] in md and f"{ex['measured_to']:.4g}" in md


def test_the_band_ends_its_measured_range_where_the_schedule_does_not_at_the_last_identified_reading(tmp_path):
    """Bopt identified up to D = 2000 only (past it the smallest batch wins: below the grid); the sweep covers
    D up to 1e4. A horizon of 1e4 needs no --extrapolate, so the band must not call it extrapolated."""
    env = _env(3, 5, np.nan, np.nan, b1=np.nan, mid=(6.0, 5.0, 9.0))
    env["identified"] = [True, True, False]
    (tmp_path / "fit.json").write_text(json.dumps(dict(envelope=env, rows=[], laws=[], lr=None)))
    assert (
        main(
            [
                "schedule",
                "--from",
                str(tmp_path / "fit.json"),
                "--rule",
                "paper",
                "--horizon",
                "1e4",
                "--unit",
                "examples",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    ex = json.loads((tmp_path / "s" / "exports.json").read_text())
    assert ex["measured_to"] == 1e4 and ex["band"]["measured_to"] == 1e4 and not ex["band"]["beyond"]


@pytest.mark.parametrize("rule", ["late-switch", "fixed"])
def test_dbs_schedule_by_rule_starts_from_the_sweeps_best_fixed_batch_and_the_late_switch_beats_it(
    rule, sweep, tmp_path, capsys
):
    """--rule late-switch: half the best grid batch until 75% of the horizon, then twice it; on the exact NQM
    it reaches a lower loss than the best grid batch (the user's alternative), as the rules study says
    (docs/optimal_schedules.md: late switching never loses with exact inputs at constant LR)."""
    nqm, _, _, path = sweep
    assert (
        main(
            [
                "schedule",
                "--from",
                str(path),
                "--rule",
                rule,
                "--horizon",
                f"{BUDGET:g}",
                "--unit",
                "examples",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    losses = {float(B): loss_at_budget(nqm, ETA, float(B), BUDGET) for B in BATCHES}
    best = min(losses, key=losses.get)
    sched = BatchSchedule.from_json((tmp_path / "schedule.json").read_text())
    ex = json.loads((tmp_path / "exports.json").read_text())
    assert ex["rule"] == rule and ex["olmo_core"]["batch_sizes"]
    assert f"best fixed batch {best:.4g}" in capsys.readouterr().out
    if rule == "fixed":
        assert sched.segments == [(0.0, best)]
    else:
        assert sched.segments == [(0.0, best / 2), (0.75 * BUDGET, 2 * best)]
        assert loss_at_budget(nqm, ETA, sched, BUDGET) < losses[best]
        assert main(["report", str(tmp_path)]) == 0
        assert "**Rule late-switch**" in (tmp_path / "report.md").read_text()


def test_dbs_schedule_refuses_an_online_rule_and_a_rule_without_a_sweep(sweep, tmp_path, capsys):
    _, _, _, path = sweep
    for argv, words in (
        (["--from", str(path), "--rule", "floor-ratio"], "dbs train --batch-rule floor-ratio"),
        (["--curve", "1,0.5", "--rule", "late-switch"], "needs --from fit.json"),
        (["--from", str(path), "--rule", "fixed", "--switch-at", "10"], "late-switch only"),
        (["--from", str(path), "--rule", "late-switch", "--switch-at", f"{BUDGET:g}"], "inside the run"),
        (["--from", str(path), "--rule", "late-switch", "--momentum", "0.5"], "paper's rule only"),
        (["--from", str(path), "--rule", "fixed", "--min-batch", "30", "--max-batch", "20"], "exceeds --max-batch"),
    ):
        assert main(["schedule", *argv, "--horizon", f"{BUDGET:g}", "--out", str(tmp_path / "s")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
