"""Sweeps through submitit: the local executor's real subprocesses train the runs, and the cache is the same
one the local launcher uses."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("submitit")

from validate.experiments.launch import parse_sbatch  # noqa: E402


def test_sbatch_flags_become_submitit_parameters():
    assert parse_sbatch("--qos=high --constraint='a100 | h100' --exclusive") == \
        {"qos": "high", "constraint": "a100 | h100", "exclusive": True}
    assert parse_sbatch(None) == {}
    with pytest.raises(ValueError, match="--key=value"):
        parse_sbatch("qos=high")


def dbs(*args):
    return subprocess.run([sys.executable, "-m", "dbs_theory.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


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
