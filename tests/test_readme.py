"""The README and docs stay true: the Quickstart, the CI command, the own-loop example and every Python block run."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: docs whose Python blocks run in order after README's, in one namespace (they build on README's ``table``)
DOCS = ["commands.md"]
#: docs whose blocks another test runs (they need an optional library): file -> that test
OWN_TESTS = {"integrations.md": "test_integrations_docs.py", "optimal_schedules.md": "test_optimal.py"}


def docs_text():
    return "\n".join((ROOT / "docs" / d).read_text() for d in DOCS)


def test_every_doc_with_python_blocks_is_run_by_a_test():
    for p in sorted((ROOT / "docs").glob("*.md")):
        if "```python" not in p.read_text() or p.name in DOCS:
            continue
        assert p.name in OWN_TESTS, f"docs/{p.name} has Python blocks no test runs: add it to DOCS or OWN_TESTS"
        test = ROOT / "tests" / OWN_TESTS[p.name]
        assert test.exists() and p.name in test.read_text(), f"{test.name} does not run docs/{p.name}"


def test_quickstart_is_two_commands_and_ci_runs_the_second():
    block = re.search(r"## Quickstart\n\n```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2 and block[0].endswith("dbs demo")
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci.splitlines()  # CI calls the README's test command verbatim


def test_own_loop_example_runs(tmp_path):
    pytest.importorskip("torch")
    from dbs_theory.schedules.batch_schedules import step_batch

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


#: ``<!-- excerpt: SECTION -->`` before a README block: lines of docs/integrations.md's SECTION example
EXCERPT = re.compile(r"<!-- excerpt: (.+?) -->\n```python\n(.*?)```", re.S)


def python_blocks(text):
    """Every ```python block of ``text`` but the own-loop one (it has its own test) and the excerpts (checked
    against the examples they come from): ``(line, code)``."""
    loop = re.search(r"<!-- loop-begin -->\n```python\n(.*?)```", text, re.S).group(1)
    skip = {loop} | {m.group(2) for m in EXCERPT.finditer(text)}
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
        if m.group(1) not in skip
    ]


def excerpt_mismatches(text):
    """README excerpts whose lines do not appear, in order, in their docs/integrations.md example (which
    tests/test_integrations_docs.py runs): ``[(section, first line not found)]``."""
    from test_integrations_docs import blocks

    examples = blocks((ROOT / "docs" / "integrations.md").read_text(encoding="utf-8"))
    bad = []
    for m in EXCERPT.finditer(text):
        source = [line.strip() for code in examples.get(m.group(1), []) for line in code.splitlines()]
        at = 0
        for line in (x.strip() for x in m.group(2).splitlines() if x.strip()):
            found = line in source[at:]
            at = source.index(line, at) + 1 if found else at
            if not found:
                bad.append((m.group(1), line))
                break
    return bad


def test_readme_excerpts_come_from_the_integration_examples_the_tests_run():
    assert len(EXCERPT.findall(README)) >= 3
    assert excerpt_mismatches(README) == []


def test_a_planted_change_in_an_excerpt_is_caught():
    broken = README.replace("total_tokens=total)\ntrainer.train()", "total_tokens=2 * total)\ntrainer.train()", 1)
    assert broken != README
    assert excerpt_mismatches(broken) == [
        (
            "Hugging Face Trainer",
            "trainer = ScheduleTrainer(model=model, args=args, train_dataset=data, plan=plan, total_tokens=2 * total)",
        )
    ]


#: README value -> what the test runs instead: the examples are written at a pretraining run's scale (tokens),
#: the test's sweep is an NQM one to 2e4 examples (and draws fewer bootstrap samples). Each must apply.
SMALLER = {
    "horizon = 6e6": "horizon = 2e4",
    "bootstrap=200": "bootstrap=20",
    "curve = fit_bopt_curve(table) ": "curve = fit_bopt_curve(table, extrapolate=True) ",
    "interval=125e9, momentum=0.5, initial=2e6, granularity=65536,": (
        "interval=2e3, momentum=0.5, initial=4, granularity=1,"
    ),
    "min_batch=1e6, max_batch=8e6, horizon=500e9)": "min_batch=1, max_batch=1e3, horizon=2e4)",
    "sched(300e9)": "sched(1e4)",
    "seq_len=4096, micro_batch_size=1, data_parallel_size=16": "seq_len=1, micro_batch_size=1, data_parallel_size=1",
}


def run_blocks(text, folder):
    """Run ``text``'s python blocks in order in one namespace, in ``folder`` with ``logs/`` holding an exact
    NQM sweep (examples); the namespace."""
    import sim
    from dbs_theory.logs.runs import write_runs
    from sim.identify import exact_runs

    (folder / "logs").mkdir(exist_ok=True)
    write_runs(
        exact_runs(sim.NQM.zhang2019(300), 0.5, 2.0 ** np.arange(0, 10, 0.5), 2e4, points=300),
        folder / "logs" / "runs.csv",
    )
    blocks = python_blocks(text)
    assert len(blocks) >= 5
    stale = [old for old in SMALLER if not any(old in code for _, code in blocks)]
    assert not stale, f"README no longer holds {stale}: update SMALLER"
    scope, cwd = {}, os.getcwd()
    os.chdir(folder)
    try:
        for line, code in blocks:
            for old, new in SMALLER.items():
                code = code.replace(old, new)
            exec(compile(code, f"README.md:{line}", "exec"), scope)
    finally:
        os.chdir(cwd)
    return scope


def test_every_python_block_of_the_readme_and_docs_runs(tmp_path):
    """The API examples run as written (a planted error in any block fails here)."""
    scope = run_blocks(README + "\n" + docs_text(), tmp_path)
    assert scope["plan"].recommendation in ("dynamic", "fixed") and (tmp_path / "schedule.json").exists()
    assert scope["fit"].bopt > 0


def test_a_planted_error_in_a_readme_block_fails_the_run(tmp_path):
    broken = README.replace("plan.recommendation, plan.reason", "plan.recommendation, plan.reasons", 1)
    assert broken != README
    with pytest.raises(AttributeError, match="reasons"):
        run_blocks(broken + "\n" + docs_text(), tmp_path)


def test_a_planted_error_in_a_docs_block_fails_the_run(tmp_path):
    text = README + "\n" + docs_text()
    broken = text.replace("fit.bmin, fit.bopt, fit.r2_log", "fit.bmin, fit.bopt, fit.r2_logs", 1)
    assert broken != text
    with pytest.raises(AttributeError, match="r2_logs"):
        run_blocks(broken, tmp_path)


def test_readme_stays_short():
    """Pitch, quickstart, theory, API, loop, integrations, a findings table: the rest lives in docs/."""
    assert README.count("\n") <= 250
