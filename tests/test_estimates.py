"""Typed Bmin/Bopt estimates: one reader of a table row's cells, one rule for which estimator to use."""

import math
import re
from pathlib import Path

import pytest

from dbs_theory.measure.tabulate import SOURCES, Estimate, chosen, chosen_column, estimate

ROOT = Path(__file__).resolve().parent.parent
#: the table module is the only one that names an estimator's row columns
COLUMN_NAMES = re.compile(r"""["'](bopt_envelope|bmin_floor|data_envelope)(_lo|_hi|_status)?["']""")


def test_no_estimate_column_is_read_outside_the_table_module():
    found = []
    for pkg in ("dbs_theory", "sim", "validate", "dbs_report"):
        for p in (ROOT / pkg).rglob("*.py"):
            if p in (ROOT / "dbs_theory" / "measure" / "tabulate.py", ROOT / "dbs_theory" / "measure" / "fit_table.py"):
                continue  # the table's builder writes the columns, its type (fit_table) reads them
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if COLUMN_NAMES.search(line):
                    found.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "read estimates through dbs_theory.measure.tabulate (estimate/chosen):\n" + "\n".join(found)


def _row(target, env=None, fit=None, env_status=None):
    """A row as bopt_table writes it: identified values present with status ok, others only a status."""
    row = dict(target=target, emin=1000.0 * target, status="ok")
    if env is not None:
        row.update(
            bopt_envelope=env,
            bopt_envelope_lo=env / 2,
            bopt_envelope_hi=env * 2,
            bopt_envelope_status="ok",
            data_envelope=500.0 * target,
        )
    else:
        row["bopt_envelope_status"] = env_status or "not identified: too few batch sizes"
    if fit is not None:
        row["bopt"] = fit
    return row


def test_an_estimate_reads_value_interval_status_source_and_data():
    e = estimate(_row(2.0, env=64.0), "bopt_envelope")
    assert e == Estimate(64.0, 32.0, 128.0, "ok", "envelope", "bopt_envelope", 2.0, 1000.0)
    assert e.identified and e.has_interval
    gone = estimate(_row(2.0, env_status="not identified: at the grid's edge"), "bopt_envelope")
    assert not gone.identified and math.isnan(gone.value) and gone.status.endswith("grid's edge")
    fit = estimate(_row(2.0, fit=50.0), "bopt")
    assert fit.identified and not fit.has_interval and fit.source == "three-phase fit" and fit.data == 2000.0


def test_an_unknown_column_or_quantity_is_refused():
    with pytest.raises(ValueError, match="unknown estimate column 'bopt_env'"):
        estimate({}, "bopt_env")
    with pytest.raises(ValueError, match="unknown quantity 'b'"):
        chosen_column([], "b")


@pytest.mark.parametrize(
    "envelopes, want",
    [
        ((64.0, 80.0, None), "bopt_envelope"),  # law-free identified at exactly 2 targets: it is used
        ((64.0, None, None), "bopt"),  # at 1 target only: the fit, identified at 3
    ],
)
def test_the_law_free_estimator_wins_when_identified_at_two_targets(envelopes, want):
    rows = [_row(t, env=e, fit=50.0 + t) for t, e in zip((3.0, 2.0, 1.0), envelopes)]
    assert chosen_column(rows, "bopt") == want
    est = chosen(rows, "bopt")
    assert [e.column for e in est] == [want] * 3
    assert all(e.source == dict(SOURCES["bopt"])[want] for e in est)


def test_with_neither_identified_twice_the_law_free_one_is_reported_with_its_reason():
    rows = [_row(3.0, env_status="not identified: one-sided"), _row(2.0, fit=10.0)]
    est = chosen(rows, "bopt")
    assert chosen_column(rows, "bopt") == "bopt_envelope"
    assert est[0].status == "not identified: one-sided" and not any(e.identified for e in est)


def test_a_table_hands_out_the_estimates_its_verdict_used(tmp_path):
    import numpy as np

    from dbs_theory.measure.tabulate import bopt_table
    from dbs_theory.logs.runs import Run

    runs = []
    for B in (4.0, 8.0, 16.0, 32.0, 64.0):
        steps = np.arange(1, 4001, dtype=float)
        D = steps * B
        runs.append(
            Run(f"b{B:g}", B, steps, D, 1.0 + 30.0 / (D / B) ** 0.5 + 3e3 / D * (B / 16) ** 0.2 + 0.001 * B / 64)
        )
    table = bopt_table(runs, n_targets=4)
    est = table.estimates("bopt")
    assert [e.column for e in est] == [table.verdict["bopt_column"]] * len(table.rows)
    assert [e.target for e in est] == [r["target"] for r in table.rows]


def test_put_estimate_writes_a_cell_and_withdraws_what_cannot_be_pinned_down():
    """The row format's one writer: a finite value with a finite interval is kept with status ok; one open end
    keeps no interval; a NaN value, or a reason, withdraws the cell (value and interval go, the reason stays)."""
    from dbs_theory.measure.fit_table import put_estimate, withdraw

    row = {}
    put_estimate(row, "bopt", 64.0, 32.0, 128.0)
    assert row == dict(bopt=64.0, bopt_lo=32.0, bopt_hi=128.0, bopt_status="ok")
    half = {}
    put_estimate(half, "bmin", 8.0, 4.0, math.inf)
    assert half == dict(bmin=8.0, bmin_status="ok")
    put_estimate(half, "bmin", math.nan)
    assert half == dict(bmin_status="not identified: no value")
    withdraw(row, "bopt", "off the grid")
    assert row == dict(bopt_status="not identified: off the grid")
    assert estimate(row, "bopt").status == "not identified: off the grid" and not estimate(row, "bopt").identified


def test_target_rows_read_a_table_and_its_fit_json_alike(tmp_path):
    """Each typed row holds the table's estimates (all four columns), and fit.json read back gives the same
    typed rows: one owner of the row format on both sides of the file."""
    import numpy as np

    from dbs_theory.measure.tabulate import bopt_table
    from dbs_theory.measure.fit_table import BoptTable, TargetRow
    from dbs_theory.logs.runs import Run

    runs = []
    for B in (4.0, 8.0, 16.0, 32.0, 64.0):
        D = np.arange(1, 4001, dtype=float) * B
        runs.append(Run(f"b{B:g}", B, D / B, D, 1.0 + 30.0 / (D / B) ** 0.5 + 3e3 / D * (B / 16) ** 0.2))
    table = bopt_table(runs, n_targets=4, bootstrap=10)
    typed = table.target_rows
    assert [t.target for t in typed] == [r["target"] for r in table.rows]
    for q in ("bmin", "bopt"):
        for c, _ in SOURCES[q]:
            assert [t.estimate(c) for t in typed] == [estimate(r, c) for r in table.rows] or all(
                math.isnan(a.value) and math.isnan(b.value) and a.status == b.status
                for a, b in zip((t.estimate(c) for t in typed), (estimate(r, c) for r in table.rows))
            )
    assert all(t.fits["three_phase"][1] == r["dof_three_phase"] for t, r in zip(typed, table.rows))
    table.write(tmp_path)
    back = BoptTable.load(tmp_path).target_rows
    same = lambda a, b: a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
    for t, u in zip(typed, back):
        assert isinstance(u, TargetRow) and same(t.target, u.target) and t.status == u.status
        for c in ("bmin", "bmin_floor", "bopt", "bopt_envelope"):
            a, b = t.estimate(c), u.estimate(c)
            assert a.status == b.status and same(a.value, b.value) and same(a.lo, b.lo), c
    with pytest.raises(ValueError, match="unknown estimate column 'b_crit'"):
        typed[0].estimate("b_crit")
