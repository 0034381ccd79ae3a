"""Hand-edited JSON: the schedule parser dbs train uses is the one dbs report uses; edits no figure can
draw are refused in one line naming the file, with nothing written."""

import json
import shutil
import subprocess
import sys

import pytest

from dbs_theory.schedules.batch_schedules import BatchSchedule, step_batch

GOOD = json.loads(step_batch([1000], [64, 128], unit="tokens", lr=3e-3).to_json())


@pytest.mark.parametrize(
    "edit, words",
    [
        (dict(lr="3e-3"), "lr must be a number; got '3e-3'"),
        (dict(lr=[0.003]), r"lr must be a number; got \[0.003\]"),
        (dict(lr=-3e-3), "lr must be > 0"),
        (dict(params="monotone"), "params must be an object; got 'monotone'"),
        (dict(unit=5), "unit must be 'tokens', 'samples' or 'examples'; got 5"),
        (dict(segments={"from": 0}), "not a batch-schedule JSON"),
    ],
)
def test_a_schedule_with_a_mistyped_field_is_refused(edit, words):
    with pytest.raises(ValueError, match=words):
        BatchSchedule.from_json(json.dumps({**GOOD, **edit}))


def test_a_good_schedule_still_round_trips():
    s = BatchSchedule.from_json(json.dumps(GOOD))
    assert s.sizes == (64.0, 128.0) and s.lr == 3e-3


@pytest.fixture(scope="module")
def schedule_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sched")
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", *a], capture_output=True, text=True, timeout=600, cwd=root
    )
    assert run("simulate", "--write-log", "--out", "sim", "--quiet").returncode == 0
    assert run("fit", "sim/runs.csv", "--out", "fit", "--bootstrap", "0").returncode == 0
    # the paper's rule: these tests edit the folder, not the rule (the calibrated rule takes minutes on the
    # simulator's 80-batch sweep)
    r = run(
        "schedule", "--from", "fit/fit.json", "--horizon", "1e5", "--out", "sched", "--extrapolate", "--rule", "paper"
    )
    assert r.returncode == 0, r.stderr
    return root / "sched"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, content, words",
    [
        ("schedule.json", [1, 2], "schedule.json: expected a JSON object; got a list"),
        ("schedule.json", {"unit": "tokens", "segments": [{"batch_size": 8}]}, "segments[0].from is missing"),
        ("schedule.json", {"segments": [{"from": 0, "batch_size": 8}]}, "unit is missing"),
        ("schedule.json", {"unit": "tokens", "segments": []}, "segments must not be empty"),
        (
            "schedule.json",
            {"unit": "tokens", "segments": [{"from": -5, "batch_size": 8}]},
            "segments[0].from must be >= 0; got -5",
        ),
        (
            "schedule.json",
            {"unit": "tokens", "segments": [{"from": 0, "batch_size": 8}, {"from": 0, "batch_size": 9}]},
            "increasing order",
        ),
        (
            "schedule.json",
            {"unit": "tokens", "segments": [{"from": float("nan"), "batch_size": 8}]},
            "must be a finite number",
        ),
        ("exports.json", [1], "expected a JSON object; got a list"),
        ("exports.json", "band:wide", "band must be an object; got 'wide'"),
        ("exports.json", "band:no-measured_to", "band.measured_to is missing"),
        ("exports.json", "reason:none", "a recommendation needs its 'reason'"),
    ],
)
def test_dbs_report_refuses_an_edited_schedule_folder_in_one_line(schedule_folder, tmp_path, name, content, words):
    d = tmp_path / "s"
    shutil.copytree(schedule_folder, d)
    if isinstance(content, str):
        ex = json.loads((d / "exports.json").read_text())
        if content == "reason:none":
            ex.update(recommendation="dynamic", reason=None)
        else:
            ex["band"] = "wide" if content == "band:wide" else {"D": [1.0], "lo": [1.0], "hi": [1.0]}
        content = ex
    (d / name).write_text(json.dumps(content))
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "report", str(d)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (d / "report.md").exists() and not (d / "report.html").exists()
