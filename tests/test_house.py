"""House rules read from the source: small modules, no private name used across modules, no command driven
in-process outside the CLI, no issue numbers in code or docs."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dbs_theory", "sim", "validate", "dbs_report")
#: the most lines a module of the packages may hold
MAX_LINES = 500
#: the most lines of code a function may hold (its docstring not counted)
MAX_FUNCTION_LINES = 60


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


def long_functions(path, limit=MAX_FUNCTION_LINES):
    """``path: name (n lines)`` for each function of ``path`` over ``limit`` lines, its docstring not counted."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        n = node.end_lineno - node.lineno + 1
        if ast.get_docstring(node, clean=False) is not None:
            n -= node.body[0].end_lineno - node.body[0].lineno + 1
        if n > limit:
            out.append(f"{path.name}: {node.name} ({n} lines)")
    return out


def test_the_function_check_counts_code_not_docstrings(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    doc = '    """' + "\n" * 30 + '    """\n'
    (tmp_path / "m.py").write_text(f"def short():\n{doc}{body[: body.rindex('    x59')]}\ndef long():\n{body}")
    assert long_functions(tmp_path / "m.py") == ["m.py: long (61 lines)"]


def test_no_function_is_over_the_line_limit():
    found = [f for p in sources() for f in long_functions(p)]
    assert not found, found


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
    pat = re.compile(
        r"\bcli\.main\(|\bcommands\.run\(|from dbs_theory\.cli import main|from \.+cli import main"
        r"|\.run\((\w+\.)?arguments\(|\bimport commands as \w+"
    )
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
    pat = re.compile(r"issue[\s_#]*\d+|\bissue's\b|issue_numbers", re.I)
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


def returned_keys(path):
    """Keys a benchmark module can return: the keywords of its ``dict(...)`` calls, read from the source (a
    result is built from them: ``return dict(...)``, or ``rates = dict(plain=[], ...)`` folded into one)."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            keys |= {k.arg for k in node.keywords if k.arg}
    return keys


def read_keys(source, module):
    """The keys ``run_all.py`` reads (``r["key"]``) from the result of ``<module>.main`` (up to the next
    benchmark's call)."""
    start = source.index(f"{module}.main(")
    nxt = [
        source.find(f"{m}.main(", start + 1)
        for m in ("bench_sim", "bench_fit", "bench_runs", "bench_estimators", "bench_rules", "bench_train")
    ]
    end = min([n for n in nxt if n > start] or [len(source)])
    return set(re.findall(r"""\br\[["'](\w+)["']\]""", source[start:end]))


def test_the_benchmark_summary_reads_only_keys_its_benchmarks_return():
    """``benchmarks/run_all.py`` once crashed with ``KeyError: 'seconds'`` after a benchmark changed what it
    returns, so no summary table was produced. Every key it reads from a benchmark's result is one that
    benchmark returns (the trainer's is per micro-batch size: its rows read the inner dict)."""
    bench = ROOT / "benchmarks"
    source = (bench / "run_all.py").read_text()
    for module in ("bench_sim", "bench_fit", "bench_runs", "bench_estimators", "bench_rules", "bench_train"):
        missing = read_keys(source, module) - returned_keys(bench / f"{module}.py")
        assert not missing, f"run_all.py reads {sorted(missing)} from {module}.main(), which returns no such key"


@pytest.mark.slow
def test_the_benchmark_summary_runs_and_prints_its_table():
    """``python benchmarks/run_all.py --smoke`` goes the summary's whole path (each benchmark's result into the
    table) at tiny sizes; the simulator and rules benchmarks, minutes even at ``--quick``, are left out there
    (their keys are checked above). Only that it completes is checked: no timing."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stderr[-2000:]
    table = r.stdout.split("=" * 100)[-1]
    assert "machine:" in table and "analytic vs numerical Jacobian" in table and "skipped: --smoke" in table
    assert "trainer compiled vs plain loop, micro 4" in table or "skipped: no torch" in table
