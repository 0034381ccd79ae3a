"""The dbs console script: dispatch, --help/--version, derive, error handling."""

import subprocess
import sys

from dbs_cli import dbs

from dbs_theory import cli


def run_dbs(*args):
    """A real ``python -m dbs_theory.cli`` process: the entry point itself is what is tested."""
    return subprocess.run([sys.executable, "-m", "dbs_theory.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_registered_commands():
    out = dbs("--help")
    assert out.returncode == 0
    assert "derive" in out.stdout


def test_version():
    out = run_dbs("--version")
    assert out.returncode == 0 and out.stdout.startswith("dbs-theory ")


def test_derive_all_checks_pass(capsys):
    assert cli.main(["derive"]) == 0
    text = capsys.readouterr().out
    for name in ("mccandlish", "nqm_mode", "three_phase", "bopt_condition", "multimode", "equivalence"):
        assert f"== {name}:" in text
    assert "(ok)" in text and "FAILED" not in text


def test_derive_latex(capsys):
    assert cli.main(["derive", "mccandlish", "--latex"]) == 0
    assert "\\frac" in capsys.readouterr().out


def test_unknown_derivation_exits_2():
    out = dbs("derive", "nope")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "nope" in out.stderr


def test_user_errors_become_one_line(monkeypatch, capsys):
    from dbs_theory.errors import UserError

    def boom(args):
        raise UserError("batch_size=-3 must be positive\nsecond line")

    monkeypatch.setattr("dbs_theory.commands.derive.run", boom)
    assert cli.main(["derive"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "dbs derive: error: batch_size=-3 must be positive"


def test_a_table_cell_never_reads_nan():
    from dbs_theory.table import fmt, format_table

    assert fmt(float("nan")) == fmt(None) == "-"
    text = format_table([dict(a=float("nan"), b=1.5)], ["a", "b"])
    assert "nan" not in text.lower() and "1.5" in text
