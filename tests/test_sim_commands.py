"""dbs simulate: one mode per run, and an option the mode would ignore is refused instead of dropped."""

import pytest

from sim.commands import MODE_OPTIONS, _check_mode_options, arguments, run
from dbs_cli import dbs


@pytest.mark.parametrize(
    "what, option, value",
    [("sweep", "pieces", 64), ("optimal", "tol", 0.2), ("chain", "write_log", True), ("sweep", "budgets", "1e5")],
)
def test_an_option_the_mode_ignores_is_refused(what, option, value):
    with pytest.raises(ValueError, match=f"--{option.replace('_', '-')} applies to dbs simulate"):
        _check_mode_options(arguments(what=what, **{option: value}))


def test_a_log_option_without_write_log_is_refused():
    with pytest.raises(ValueError, match="--log-every shapes the log --write-log writes"):
        _check_mode_options(arguments(what="sweep", log_every=10))
    _check_mode_options(arguments(what="sweep", log_every=10, write_log=True))


def test_every_mode_accepts_its_own_options_and_the_defaults():
    for option, modes in MODE_OPTIONS.items():
        for what in modes:
            extra = dict(write_log=True) if what == "sweep" else {}
            _check_mode_options(arguments(what=what, **{**extra, option: arguments().__dict__[option] or 1}))
    for what in ("sweep", "schedule", "identify", "plan", "chain", "optimal"):
        _check_mode_options(arguments(what=what))


def test_the_refusal_is_one_line_and_exit_2(tmp_path):
    r = dbs("simulate", "--pieces", "64", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--pieces" in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("what, d", [("sweep", 10_000), ("schedule", 10_000), ("chain", 1000), ("optimal", 1000)])
def test_run_chooses_the_modes_default_size_without_changing_its_arguments(what, d, monkeypatch):
    import importlib

    seen = {}
    monkeypatch.setattr(importlib.import_module(f"sim.modes.{what}"), "run", lambda a: seen.setdefault("d", a.d) and 0)
    args = arguments(what=what)
    before = dict(vars(args))
    run(args)
    assert seen["d"] == d and vars(args) == before and args.d is None


def test_the_crossing_table_prints_the_data_at_each_crossing(capsys):
    """The rows dbs simulate builds (key ``data``) print their numbers, not '-' (a renamed key did)."""
    from types import SimpleNamespace

    from dbs_theory.table import format_table
    from sim.modes.sweep import _print_summary

    fr = SimpleNamespace(meta=dict(d=10, initial_loss=1.0, eta=0.5), target_rows=lambda: [])
    _print_summary(fr, [dict(target=0.2, b_small=4.0, b_large=16.0, data=2921.5, loss=0.19)], format_table)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "2922" in line or "2921" in line, line
