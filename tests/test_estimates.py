"""Typed Bmin/Bopt estimates: one reader of a table row's cells, one rule for which estimator to use."""

import math
import re
from pathlib import Path

import pytest

from dbs_theory.bopt_table import SOURCES, Estimate, chosen, chosen_column, estimate

ROOT = Path(__file__).resolve().parent.parent
#: the table module is the only one that names an estimator's row columns
COLUMN_NAMES = re.compile(r"""["'](bopt_envelope|bmin_floor|data_envelope)(_lo|_hi|_status)?["']""")


def test_no_estimate_column_is_read_outside_the_table_module():
    found = []
    for pkg in ("dbs_theory", "sim", "validate", "dbs_report"):
        for p in (ROOT / pkg).rglob("*.py"):
            if p in (ROOT / "dbs_theory" / "bopt_table.py", ROOT / "dbs_theory" / "fit_table.py"):
                continue  # the table's builder writes the columns, its type (fit_table) reads them
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if COLUMN_NAMES.search(line):
                    found.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "read estimates through dbs_theory.bopt_table (estimate/chosen):\n" + "\n".join(found)


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

    from dbs_theory.bopt_table import bopt_table
    from dbs_theory.runs import Run

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
