"""dbs simulate and dbs fit end to end, and their bad-input behaviour."""

import csv
import json

import numpy as np
import pytest
from dbs_cli import dbs

HEADER = "run,batch_size,step,tokens,loss,lr\n"


def hand_made_csv(path, batches=(2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)):
    """Runs written by hand in the documented format: loss = floor(B) + transient(steps)."""
    lines = [HEADER]
    for B in batches:
        for step in range(0, 4001, 10):
            loss = 1.0 + 2.0 / B + 3.0 * np.exp(-step / 400.0)
            lines.append(f"b{B},{B},{step},{step * B},{loss:.10g},0.001\n")
    path.write_text("".join(lines))
    return path


@pytest.mark.slow
def test_simulate_log_then_fit(tmp_path):
    sim_out, fit_out = tmp_path / "sim", tmp_path / "fit"
    r = dbs("simulate", "--d", "2000", "--write-log", "--quiet", "--out", sim_out)
    assert r.returncode == 0, r.stderr
    assert "linear" in r.stdout and "quadratic" in r.stdout and "inverse" in r.stdout
    assert (sim_out / "runs.csv").exists()
    r = dbs("fit", sim_out / "runs.csv", "--bootstrap", "20", "--out", fit_out)
    assert r.returncode == 0, r.stderr
    assert "Bmin grows as the target falls" in r.stdout
    assert {p.name for p in fit_out.iterdir()} == {"bopt_table.csv", "fit.json", "es_points.csv"}


def test_fit_hand_made_csv(tmp_path):
    log = hand_made_csv(tmp_path / "mine.csv")
    r = dbs("fit", log, "--targets", "1.6,1.4", "--bootstrap", "0", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "learning rate 0.001" in r.stdout
    assert (tmp_path / "out" / "bopt_table.csv").read_text().count("\n") == 3
    # targets are row positions: every E(S) point names the row of its target, and laws[i] belongs to rows[i]
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert [r["target"] for r in fit["rows"]] == [1.6, 1.4] and len(fit["laws"]) == 2
    with open(tmp_path / "out" / "es_points.csv") as fh:
        pts = list(csv.DictReader(fh))
    assert pts and {int(p["target_index"]) for p in pts} <= {0, 1}
    assert all(fit["rows"][int(p["target_index"])]["target"] == float(p["target"]) for p in pts)


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing_file", "no such file"),
        ("missing_column", "missing column"),
        ("single_run", "single run"),
        ("two_batches", "3 or more distinct batch sizes"),
        ("negative_batch", "batch_size must be positive"),
        ("nan_loss", "NaN or inf"),
        ("unreached", "no run reaches"),
        ("unknown_law", "unknown law"),
        ("bad_targets", "--targets"),
        ("not_writable", "lies under the file"),
    ],
)
def test_fit_bad_input(tmp_path, case, match):
    log = hand_made_csv(tmp_path / "ok.csv")
    out = tmp_path / "out"
    args = [log, "--bootstrap", "0", "--out", out]
    if case == "missing_file":
        args[0] = tmp_path / "nope.csv"
    elif case == "missing_column":
        (tmp_path / "x.csv").write_text("run,step,loss\na,0,1.0\n")
        args[0] = tmp_path / "x.csv"
    elif case == "single_run":
        (tmp_path / "x.csv").write_text(HEADER + "a,8,0,0,2.0,0.1\na,8,1,8,1.0,0.1\n")
        args[0] = tmp_path / "x.csv"
    elif case == "two_batches":
        hand_made_csv(tmp_path / "x.csv", batches=(8, 16))
        args[0] = tmp_path / "x.csv"
    elif case == "negative_batch":
        (tmp_path / "x.csv").write_text(HEADER + "a,-8,0,0,2.0,0.1\n")
        args[0] = tmp_path / "x.csv"
    elif case == "nan_loss":
        (tmp_path / "x.csv").write_text(HEADER + "".join(f"a,8,{i},{8 * i},nan,0.1\n" for i in range(5)))
        args[0] = tmp_path / "x.csv"
    elif case == "unreached":
        args += ["--targets", "0.5"]
    elif case == "unknown_law":
        args += ["--law", "cubic"]
    elif case == "bad_targets":
        args += ["--targets", "low,high"]
    elif case == "not_writable":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "sub"
        args[-1] = out
    r = dbs("fit", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "args, match",
    [
        (["--eta", "3.0"], "unstable"),
        (["--batch-sizes", "0,4,8"], "--batch-sizes: batch sizes must be positive"),
        (["--spectrum", "power-law", "--alpha", "-1"], "alpha"),
    ],
)
def test_simulate_bad_input(tmp_path, args, match):
    r = dbs("simulate", "--d", "200", "--quiet", "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_plan_on_a_simulated_sweep_writes_json_without_nan(tmp_path):
    """`dbs plan` on an exact sweep: a number with an interval, the runs to add, and plan.json with
    null (not NaN) wherever a value is missing."""
    sim_out = tmp_path / "sim"
    assert dbs("simulate", "--write-log", "--d", "300", "--quiet", "--out", str(sim_out)).returncode == 0
    ok = dbs("plan", str(sim_out / "runs.csv"), "--budget", "2e4", "--bootstrap", "30", "--out", str(tmp_path / "p1"))
    assert ok.returncode == 0, ok.stderr
    assert "Bopt at 2e+04: " in ok.stdout and "[90%: " in ok.stdout and "nan" not in ok.stdout.lower()
    far = dbs("plan", str(sim_out / "runs.csv"), "--budget", "1e9", "--bootstrap", "30", "--out", str(tmp_path / "p2"))
    assert far.returncode == 0, far.stderr
    assert "not identified: " in far.stdout and "nan" not in far.stdout.lower()
    text = (tmp_path / "p2" / "plan.json").read_text()
    assert "NaN" not in text and json.loads(text)["bopt"] is None
