"""House rules read from the source: small modules, no private name used across modules, no command driven
in-process outside the CLI, no issue numbers in code or docs."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dbs_theory", "sim", "validate", "dbs_report")
#: the most lines a module of the packages may hold
MAX_LINES = 500


def sources():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def long_modules(paths, limit=MAX_LINES):
    return [(str(p.relative_to(ROOT)), n) for p in paths if (n := len(p.read_text().splitlines())) > limit]


def private_imports(path):
    """``from .m import _name`` in ``path``: a private name of another module (a private *module*, ``from .
    import _kernels``, is the package's own and allowed)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level and node.module:
            out += [
                f"{path.relative_to(ROOT)}: from {'.' * node.level}{node.module} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return out


def test_no_module_is_over_the_line_limit():
    assert not long_modules(sources()), long_modules(sources())


def test_the_line_limit_check_catches_a_long_module(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "ok.py").write_text("x = 1\n" * MAX_LINES)
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert long_modules([tmp_path / "m.py", tmp_path / "ok.py"]) == [("m.py", MAX_LINES + 1)]
    finally:
        ROOT = root


def test_no_private_name_is_imported_across_modules():
    found = [line for p in sources() for line in private_imports(p)]
    assert not found, found


def test_the_private_import_check_catches_a_planted_one(tmp_path):
    planted = ROOT / "dbs_theory" / "_planted_check.py"
    try:
        planted.write_text("from .batch_schedules import _whole\nfrom . import _formulas\n")
        assert private_imports(planted) == ["dbs_theory/_planted_check.py: from .batch_schedules import _whole"]
    finally:
        planted.unlink()


def test_commands_are_not_driven_in_process_outside_the_cli():
    """A library function does each decision; ``cli.main`` / ``commands.run`` are for the CLI and tests."""
    pat = re.compile(r"\bcli\.main\(|\bcommands\.run\(|from dbs_theory\.cli import main|from \.+cli import main")
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sources()
        if p.name != "cli.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pat.search(line)
    ]
    assert not found, found


def test_no_issue_numbers_in_code_or_docs():
    """An issue number means nothing in the repository: say what the code does instead."""
    pat = re.compile(r"\bissue\s*#?\d+|\bissue's\b", re.I)
    files = [
        *sources(),
        *(ROOT / "tests").glob("*.py"),
        *(ROOT / "docs").glob("*.md"),
        ROOT / "README.md",
        *(ROOT / "benchmarks").glob("*.py"),
    ]
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        if p.name != "test_house.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pat.search(line)
    ]
    assert not found, found


@__import__("pytest").mark.slow
def test_the_benchmark_summary_runs_and_prints_its_table():
    """``python benchmarks/run_all.py --quick`` runs every benchmark and prints one table (it once crashed
    after the estimator benchmark, so no summary was produced). Only that it completes is checked: no timing."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    assert r.returncode == 0, r.stderr[-2000:]
    table = r.stdout.split("=" * 100)[-1]
    assert "machine:" in table and "Monte Carlo kernel" in table and "calibrated rule" in table
    assert "trainer compiled vs plain loop, micro 16" in table or "skipped: no torch" in table
