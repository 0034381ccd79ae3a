"""Hostile inputs (third part): what a new user's probe found, each refused in one line naming the flag or
the value, or warned by name -- never a schedule for a run the sweep never measured, never a traceback."""

import json
import os

import numpy as np
import pytest

from dbs_cli import dbs
from dbs_theory.logs.runs import load_runs
from dbs_theory.logs.schemas import FitFile, SchemaError, parse
from dbs_theory.measure.tabulate import bopt_table
from dbs_theory.rules.envelope import measured_from
from dbs_theory.rules.from_fit import schedule_from_fit

from test_hostile_logs import base_rows, write_csv


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A sweep's logs (every 50 steps, as trainers log) and the fit.json ``dbs fit`` makes of them."""
    d = tmp_path_factory.mktemp("sweep")
    rows = [r for r in base_rows() if r["batch_size"] in (16, 64, 256, 1024) and r["step"] % 50 == 0]
    logs = write_csv(d / "sweep.csv", rows)
    out = d / "fit"
    r = dbs("fit", str(logs), "--bootstrap", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr[-800:]
    return logs, out / "fit.json", json.loads((out / "fit.json").read_text())


def test_a_horizon_before_the_sweeps_first_measurement_is_refused_at_its_boundary(fitted):
    _, path, fit = fitted
    first = measured_from(fit["envelope"])
    assert first == min(d for d, *col in zip(fit["envelope"]["data"], *fit["envelope"]["by_batch"]) if any(col))
    assert schedule_from_fit(fit, first, "fixed").schedule.sizes  # at the first point: measured
    with pytest.raises(ValueError, match=r"^`horizon` .* lies before the sweep's data"):
        schedule_from_fit(fit, first * (1 - 1e-6), "fixed")
    r = dbs("schedule", "--from", str(path), "--horizon", f"{first / 10:g}", "--out", str(path.parent / "s"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"dbs schedule: error: --horizon {first / 10:g} lies before the sweep's data (its first measured point is "
        f"at {first:g}): nothing was measured for a run that short; log the sweep from earlier, or plan a longer run"
    ]
    assert not (path.parent / "s").exists()


@pytest.mark.parametrize("command", ["fit", "plan"])
def test_a_negative_seed_is_one_line_not_a_traceback(fitted, tmp_path, command):
    logs, _, _ = fitted
    extra = ["--budget", "1e5"] if command == "plan" else []
    r = dbs(command, str(logs), *extra, "--seed", "-3", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"dbs {command}: error: --seed=-3 must be >= 0 (numpy seeds are non-negative)"
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--step-time", "a"], "--step-time must be 'a,b'; got 'a'"),
        (["--step-time", "0,0"], "a and b must be finite seconds >= 0, not both 0"),
    ],
)
def test_a_bad_step_time_writes_nothing(fitted, tmp_path, flags, words):
    _, path, fit = fitted
    horizon = f"{fit['envelope']['data'][-1] / 2:g}"
    r = dbs("schedule", "--from", str(path), "--horizon", horizon, *flags, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--steps", "0:64,9e9:128"], "--steps '0:64,9e9:128': its last change, at 9e+09, lies at or past --horizon"),
        (["--steps", "0:-5"], "--steps '0:-5': "),
        (["--curve", "1,nan"], "--curve '1,nan': k must be a positive number and alpha a finite one"),
        (["--curve", "0,0.5"], "--curve '0,0.5': k must be a positive number"),
        (["--steps", "0:64", "--lr", "0"], "--lr=0 must be a positive finite number"),
    ],
)
def test_an_explicit_schedule_that_cannot_run_is_refused_naming_the_flag(tmp_path, flags, words):
    r = dbs("schedule", *flags, "--horizon", "1e6", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_a_schedule_whose_last_change_lies_inside_the_run_is_written(tmp_path):
    r = dbs("schedule", "--steps", "0:64,9e5:128", "--horizon", "1e6", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    segments = json.loads((tmp_path / "o" / "schedule.json").read_text())["segments"]
    assert [(s["from"], s["batch_size"]) for s in segments] == [(0, 64), (9e5, 128)]


def test_a_law_without_bmin_is_refused_under_the_law_flag(fitted, tmp_path):
    logs, _, _ = fitted
    r = dbs("fit", str(logs), "--law", "hyperbolic", "--bootstrap", "0", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "dbs fit: error: --law: the hyperbolic law defines no Bmin or Bopt; use --law three_phase"
    ]
    with pytest.raises(ValueError, match="^law: the hyperbolic law defines no Bmin or Bopt; use `law` three_phase$"):
        bopt_table(load_runs(logs), law="hyperbolic")


def test_repeated_points_are_kept_and_said_and_exact_copies_named(tmp_path):
    head = "batch_size,target,steps\n"
    rows = "".join(
        f"{b},{t},{s}\n" for t, k in ((3.0, 1), (2.8, 3)) for b, s in ((32, 7000 * k), (64, 4000 * k), (128, 2600 * k))
    )
    (tmp_path / "seeds.csv").write_text(head + rows + "32,3.0,7100\n")
    r = dbs("fit", "--points", str(tmp_path / "seeds.csv"), "--out", str(tmp_path / "a"))
    assert "dbs: warning: " in r.stderr and "1 (batch_size, target) pair(s) appear on more than one row" in r.stderr
    assert "repeat another exactly" not in r.stderr  # a seed's repeat, not a copy
    (tmp_path / "copy.csv").write_text(head + rows + "32,3.0,7000\n")
    r = dbs("fit", "--points", str(tmp_path / "copy.csv"), "--out", str(tmp_path / "b"))
    assert "1 row(s) repeat another exactly (first: batch_size 32, target 3, steps 7000)" in r.stderr, r.stderr
    (tmp_path / "clean.csv").write_text(head + rows)
    assert "appear on more than one row" not in dbs("fit", "--points", str(tmp_path / "clean.csv"), "--out",
                                                     str(tmp_path / "c")).stderr  # fmt: skip


def test_a_log_reached_twice_through_a_link_is_read_once_and_said(fitted, tmp_path):
    logs, _, _ = fitted
    (tmp_path / "a.csv").write_bytes(logs.read_bytes())
    os.symlink("a.csv", tmp_path / "b.csv")
    with pytest.warns(UserWarning, match=r"b\.csv is the same file as .*a\.csv: read once"):
        runs = load_runs(tmp_path)
    assert len(runs) == 4


def test_a_run_resumed_into_a_second_file_is_refused_with_the_advice_that_fits(tmp_path):
    rows = [r for r in base_rows() if r["run"] == "b64"]
    write_csv(tmp_path / "a.csv", rows[:80])
    write_csv(tmp_path / "b.csv", rows[75:])
    with pytest.raises(ValueError, match="one run resumed, give its rows as one file in the order they were written"):
        load_runs(tmp_path / "a.csv", tmp_path / "b.csv")


def test_logs_in_a_subfolder_beside_the_folders_own_are_named(tmp_path):
    rows = base_rows()
    write_csv(tmp_path / "b8.csv", [r for r in rows if r["run"] == "b8"])
    (tmp_path / "more").mkdir()
    write_csv(tmp_path / "more" / "b16.csv", [r for r in rows if r["run"] == "b16"])
    with pytest.warns(UserWarning, match=r"read its own 1 log file\(s\); its subfolders hold 1 more .*b16\.csv"):
        runs = load_runs(tmp_path)
    assert [r.name for r in runs] == ["b8"]


def test_a_truncated_last_line_is_named_as_such(tmp_path):
    p = write_csv(tmp_path / "t.csv", [r for r in base_rows() if r["run"] == "b8"])
    p.write_text(p.read_text() + "b8,8,9\n")
    n = len(p.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"t\.csv:{n}: malformed CSV \(the row has 3 fields, the header 5: no "
                                         r"'tokens', 'loss'; a truncated line\?\)"):  # fmt: skip
        load_runs(p)
    p.write_text("run,batch_size,step,tokens,loss,lr\n" + "\n".join(p.read_text().splitlines()[1:-1]) + "\n")
    assert load_runs(p)[0].loss.size == n - 2  # a trailing optional column left out is empty, not refused


def test_missing_columns_name_the_columns_the_file_has_and_a_tag_unused_for_csv_is_said(tmp_path):
    p = tmp_path / "renamed.csv"
    p.write_text("run,batch_size,global_step,tokens,train/loss\nb8,8,1,8,3.0\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) step, loss; it has 'run', 'batch_size', 'global_step'"):
        load_runs(p)
    q = write_csv(tmp_path / "ok.csv", [r for r in base_rows() if r["run"] == "b8"])
    with pytest.warns(UserWarning, match=r"^loss_tag: 'train/loss' is not used for .*ok\.csv: CSV and JSONL"):
        load_runs(q, loss_tag="train/loss")


def _edited(fit, **envelope):
    return json.dumps({**fit, "envelope": {**fit["envelope"], **envelope}})


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda e: dict(batches=[e["batches"][0], *e["batches"][:-1]]), "'batches' must increase strictly"),
        (lambda e: dict(data=e["data"][::-1]), "'data' must increase strictly"),
        (lambda e: dict(batches=[*e["batches"][:-1], 5e15]), "more than the sweep's largest data amount"),
        (lambda e: dict(by_batch=[[-5.0, *e["by_batch"][0][1:]], *e["by_batch"][1:]]), "'by_batch' holds -5.0"),
        (lambda e: dict(by_batch=[[1e308, *e["by_batch"][0][1:]], *e["by_batch"][1:]]), "'by_batch' holds 1e+308"),
        (lambda e: dict(data=["69632.0", *e["data"][1:]]), "envelope.data[0] must be a number; got '69632.0'"),
    ],
)
def test_a_hand_edited_envelope_with_nonsense_is_refused_naming_the_key(fitted, edit, words):
    _, _, fit = fitted
    with pytest.raises(SchemaError) as exc:
        parse(_edited(fit, **edit(fit["envelope"])), FitFile, "fit.json")
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_the_fit_dbs_fit_writes_passes_its_own_schema(fitted):
    _, _, fit = fitted
    env = parse(json.dumps(fit), FitFile, "fit.json").envelope
    assert env is not None and np.all(np.diff(env.data) > 0) and np.all(np.diff(env.batches) > 0)


def test_a_written_schedule_with_segments_shorter_than_a_step_is_said(tmp_path):
    r = dbs("schedule", "--steps", "0:64,100:512,300:64", "--horizon", "1e5", "--out", str(tmp_path / "o"))
    assert (
        r.returncode == 0
        and ("dbs: warning: 1 segment(s) are shorter than one step of their batch (first: from 100, 200 of batch 512)")
        in r.stderr
    ), r.stderr
    r = dbs("schedule", "--steps", "0:64,100:128", "--horizon", "1e5", "--out", str(tmp_path / "p"))
    assert r.returncode == 0 and "shorter than one step" not in r.stderr  # 100 of batch 64: more than a step


def test_a_missing_batch_is_said_missing_and_a_link_to_nothing_named(tmp_path):
    rows = [r for r in base_rows() if r["run"] == "b8"]
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(json.dumps({k: v for k, v in r.items() if i != 3 or k != "batch_size"})
                           for i, r in enumerate(rows)) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"m\.jsonl:4: batch_size must be positive; got nothing \(an empty cell"):
        load_runs(p)
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "b8.csv", rows)
    os.symlink("nowhere.csv", d / "gone.csv")
    with pytest.warns(UserWarning, match=r"gone\.csv link\(s\) to nothing"):
        load_runs(d)
