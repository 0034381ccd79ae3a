"""Hypothesis settings (random exploration locally, a fixed derandomized search when ``CI=true``) and the
one ``dbs validate all --tier tiny`` run that the slow experiment tests share."""

import os
import subprocess
import sys

import pytest
from hypothesis import settings

# Under pytest-xdist each worker keeps to its own core (and the runs it starts, which size their threads by
# the CPUs they may use): two workers with two threads each on two cores mostly wait for each other.
_worker, _count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _worker.startswith("gw") and _count > 1 and hasattr(os, "sched_getaffinity"):
    _cpus = sorted(os.sched_getaffinity(0))
    if len(_cpus) >= _count:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(len(_cpus)))  # numba's pool still allows every core's
        os.sched_setaffinity(0, {_cpus[int(_worker[2:]) % len(_cpus)]})  # thread (thread-count tests)
        os.environ.setdefault("OMP_NUM_THREADS", "1")

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    """``(root, stdout)`` of ``dbs validate all --tier tiny`` (every experiment, once per session). Tests read it;
    a test that trains more copies ``root / "runs"`` (the run cache) into its own folder."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("validate")
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "validate", "all", "--tier", "tiny", "--out", str(root), "--quiet"],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return root, r.stdout
