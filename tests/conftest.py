"""Hypothesis settings (random exploration locally, a fixed derandomized search when ``CI=true``) and the
one ``dbs validate all --tier tiny`` run that the slow experiment tests share."""
import os
import subprocess
import sys

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    """``(root, stdout)`` of ``dbs validate all --tier tiny`` (every experiment, once per session). Tests read it;
    a test that trains more copies ``root / "runs"`` (the run cache) into its own folder."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("validate")
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "validate", "all", "--tier", "tiny", "--out",
                        str(root), "--quiet"], capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, r.stdout
