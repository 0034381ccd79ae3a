"""Sweeps through submitit: the local executor's real subprocesses train the runs, and the cache is the same
one the local launcher uses."""

import json
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("submitit")

from validate.experiments.launch import parse_sbatch  # noqa: E402


def test_sbatch_flags_become_submitit_parameters():
    assert parse_sbatch("--qos=high --constraint='a100 | h100' --exclusive") == {
        "qos": "high",
        "constraint": "a100 | h100",
        "exclusive": True,
    }
    assert parse_sbatch(None) == {}
    with pytest.raises(ValueError, match="--key=value"):
        parse_sbatch("qos=high")


def dbs(*args):
    return subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", *map(str, args)], capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_a_tiny_sweep_through_submitit_reuses_the_cache_like_the_local_launcher(tmp_path):
    out = tmp_path / "res"
    r = dbs("validate", "sweep", "--tier", "tiny", "--launcher", "submitit", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    jobs = list((out / "submitit").rglob("*_result.pkl"))
    assert len(jobs) == 4  # one submitit job per run of the tiny grid, each a real subprocess
    done = sorted((out / "runs").glob("*/done.json"))
    stamp = {p: p.read_text() for p in done}
    first = json.loads((out / "sweep" / "summary.json").read_text())["claims"]
    r = dbs("validate", "sweep", "--tier", "tiny", "--out", out, "--quiet")  # the local launcher: all cached
    assert r.returncode == 0, r.stderr
    assert {p: p.read_text() for p in done} == stamp  # nothing was trained again
    assert json.loads((out / "sweep" / "summary.json").read_text())["claims"] == first


def test_a_bad_cluster_option_is_one_line(tmp_path):
    r = dbs("validate", "sweep", "--tier", "tiny", "--launcher", "submitit", "--time-limit", "0", "--out", tmp_path)
    assert r.returncode == 2 and "--time-limit=0" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigterm_stops_submitit_jobs_one_at_a_time_checkpointed_and_says_what_happened(tmp_path):
    """With submitit's local executor (real job processes): the tiny tier's jobs = 1 holds
    (never two runs training at once); SIGTERM to dbs stops the running job once, it checkpoints, dbs exits
    130 with one line naming each run's state, no job process is left, and a rerun resumes and finishes."""
    out = tmp_path / "res"
    cmd = [
        sys.executable,
        "-m",
        "dbs_theory.cli",
        "validate",
        "sweep",
        "--tier",
        "tiny",
        "--launcher",
        "submitit",
        "--out",
        str(out),
        "--quiet",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = lambda: (
        [d for d in (out / "runs").glob("*") if (d / "log.csv").exists() and not (d / "done.json").exists()]
        if (out / "runs").exists()
        else []
    )
    deadline, most = time.monotonic() + 300, 0
    while time.monotonic() < deadline:  # until the second run has logged a few steps; count runs in flight
        now = running()
        most = max(most, len(now))
        if list((out / "runs").glob("*/done.json")) and now and (now[0] / "log.csv").read_text().count("\n") > 3:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "1 checkpointed" in lines[0], err
    assert most == 1  # jobs = 1: one run at a time
    (cut,) = [d for d in (out / "runs").glob("*") if not (d / "done.json").exists() and (d / "ckpt.pt").exists()]
    assert cut.name.split("-")[1] in lines[0]
    left = subprocess.run(["pgrep", "-f", str(out / "submitit")], capture_output=True, text=True).stdout.split()
    assert not left, f"job processes left running: {left}"
    r = dbs("validate", "sweep", "--tier", "tiny", "--out", out, "--quiet")  # resumes the cut run, trains the rest
    assert r.returncode == 0, r.stderr
    assert len(list((out / "runs").glob("*/done.json"))) == 4
