"""Errors as a type: a refusal is one line and exit 2, a ValueError from inside another library is a bug
(exit 1 with its traceback), ``--debug`` shows a refusal's traceback, and ``main`` restores what it changes."""

import types
import warnings

import numpy as np

from dbs_theory import cli
from dbs_theory.errors import UserError, raised_by_us


def _caught(fn):
    try:
        fn()
    except ValueError as exc:
        return exc
    raise AssertionError("no ValueError")


def test_who_raised_is_read_off_the_traceback():
    assert raised_by_us(_caught(lambda: np.zeros(3).reshape(2, 2))) is False  # inside numpy
    assert raised_by_us(_caught(lambda: float("abc"))) is False  # a builtin raises in its caller: this test
    from dbs_theory.schedules.batch_schedules import step_batch

    assert raised_by_us(_caught(lambda: step_batch([5, 1], [8, 16, 32])))  # the package's own refusal
    assert raised_by_us(UserError("bad value"))


def _args(run, debug=False):
    return types.SimpleNamespace(command="probe", _run=run, debug=debug)


def test_a_library_valueerror_is_an_internal_error_and_a_refusal_one_line(capsys, monkeypatch):
    monkeypatch.delenv("DBS_DEBUG", raising=False)

    def bug(args):
        np.zeros(3).reshape(2, 2)

    assert cli._dispatch(_args(bug)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err

    def refusal(args):
        raise UserError("--targets must be numbers; got 'x'")

    assert cli._dispatch(_args(refusal)) == 2
    assert capsys.readouterr().err == "dbs probe: error: --targets must be numbers; got 'x'\n"
    assert cli._dispatch(_args(refusal, debug=True)) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("got 'x'")
    monkeypatch.setenv("DBS_DEBUG", "1")
    assert cli._dispatch(_args(refusal)) == 2 and "Traceback" in capsys.readouterr().err


def test_main_restores_the_warning_display_it_replaces(tmp_path):
    def mine(*a, **k):
        pass

    shown = warnings.showwarning
    warnings.showwarning = mine
    try:
        assert cli.main(["fit", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
        assert warnings.showwarning is mine
    finally:
        warnings.showwarning = shown
