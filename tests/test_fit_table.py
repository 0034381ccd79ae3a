"""fit.json has one owner: ``BoptTable.write`` writes it, ``BoptTable.load`` reads it back as a typed record that
prints the same table and gives the same estimates; its format is versioned."""

import json

import pytest

from dbs_theory.measure.tabulate import bopt_table
from dbs_theory.measure.fit_table import FIT_VERSION, BoptTable
from dbs_theory.logs.runs import load_runs

from test_hostile_logs import base_rows, write_csv


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    table = bopt_table(load_runs(write_csv(d / "log.csv", base_rows())), bootstrap=0)
    table.write(d)
    return table, d


def test_the_record_read_back_prints_the_same_table_and_estimates(written):
    table, d = written
    record = BoptTable.load(d)  # the folder dbs fit wrote, or the file itself
    assert record.summary() == table.summary() == BoptTable.load(d / "fit.json").summary()
    for q in ("bopt", "bmin"):
        assert [(e.value, e.lo, e.hi, e.identified) for e in record.estimates(q)] == [
            (e.value, e.lo, e.hi, e.identified) for e in table.estimates(q)
        ]
    assert "Bopt (envelope)" in record.summary() and "Bmin grows as the target falls" in record.summary()


def test_fit_json_states_its_format_and_another_is_refused_in_one_line(written, tmp_path):
    _, d = written
    data = json.loads((d / "fit.json").read_text())
    assert data["version"] == FIT_VERSION == 1
    del data["version"]  # a file written before the format was stated reads as format 1
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert BoptTable.load(tmp_path / "old.json").version == 1
    (tmp_path / "new.json").write_text(json.dumps(dict(data, version=2)))
    with pytest.raises(ValueError, match=r"new.json: version .*1") as exc:
        BoptTable.load(tmp_path / "new.json")
    assert "\n" not in str(exc.value)
