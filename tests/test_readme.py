"""The README stays true: its Quickstart, the CI command, and its own-loop example runs."""
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_quickstart_is_two_commands_and_ci_runs_the_second():
    block = re.search(r"## Quickstart\n\n```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2 and block[0].endswith("dbs demo")
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci.splitlines()  # CI calls the README's test command verbatim


def test_own_loop_example_runs(tmp_path):
    pytest.importorskip("torch")
    from dbs_theory.batch_schedules import step_batch

    code = re.search(r"<!-- loop-begin -->\n```python\n(.*?)```", README, re.S).group(1)
    assert len(code.splitlines()) <= 25
    (tmp_path / "schedule.json").write_text(step_batch([2048], [256, 512], unit="tokens").to_json())
    small = code.replace("total, micro, T = 2e6, 8, 64", "total, micro, T = 6144, 4, 32")
    assert small != code, "the example's sizes changed: update this test"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope = {}
        exec(compile(small, "README-loop", "exec"), scope)
    finally:
        os.chdir(cwd)
    assert scope["D"] >= 6144 and scope["accum"] == 4  # the batch grew to 512 tokens = 4 x (4 x 32)
