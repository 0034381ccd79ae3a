"""dbs fit --points: a published steps-to-target table (batch_size, target, steps) instead of loss curves."""

import json

import numpy as np
import pytest

from dbs_theory.cli import main

# (Smin steps, Emin examples) per target; B_crit = Emin/Smin = 5000, 10000, 25000
HYPERBOLAS = {3.0: (200.0, 1e6), 2.8: (400.0, 4e6), 2.6: (800.0, 2e7)}


def write_table(path, rows, header="batch_size,target,steps"):
    path.write_text(header + "\n" + "".join(f"{b:.17g},{t:g},{s:.17g}\n" for b, t, s in rows))
    return path


def hyperbolic_rows():
    """Exact McCandlish points: (S/Smin - 1)(E/Emin - 1) = 1 with E = B S, i.e. S = Smin + Emin/B."""
    rows = []
    for t, (smin, emin) in HYPERBOLAS.items():
        for B in np.geomspace(emin / smin / 8, emin / smin * 16, 9):
            S = smin + emin / B
            assert (S / smin - 1) * (B * S / emin - 1) == pytest.approx(1)
            rows.append((B, t, S))
    return rows


def test_hyperbolic_table_recovers_smin_emin_and_b_crit(tmp_path, capsys):
    table = write_table(tmp_path / "paper.csv", hyperbolic_rows())
    out = tmp_path / "out"
    assert main(["fit", "--points", str(table), "--law", "hyperbolic", "--bootstrap", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "B_crit" in text and "no envelope, no loss floors and no crossovers" in text
    assert {p.name for p in out.iterdir()} == {"bopt_table.csv", "fit.json", "es_points.csv"}
    fit = json.loads((out / "fit.json").read_text())
    assert fit["law"] == "hyperbolic" and fit["envelope"] is None and fit["crossovers"] == []
    assert [r["target"] for r in fit["rows"]] == [3.0, 2.8, 2.6]
    for row in fit["rows"]:
        smin, emin = HYPERBOLAS[row["target"]]
        assert row["status"] == "ok" and row["n_batches"] == 9
        assert row["smin"] == pytest.approx(smin, rel=0.01) and row["emin"] == pytest.approx(emin, rel=0.01)
        assert row["b_crit"] == pytest.approx(emin / smin, rel=0.01)
        assert row["b_crit_lo"] <= row["b_crit"] * (1 + 1e-9) and row["b_crit"] <= row["b_crit_hi"] * (1 + 1e-9)
        assert row["b_crit_hi"] == pytest.approx(emin / smin, rel=0.01)  # exact points: a tight interval
    assert fit["verdict"]["b_crit"] == "holds"
    assert "b_crit" in (out / "bopt_table.csv").read_text().splitlines()[0]


def test_targets_pick_rows_of_the_table(tmp_path):
    table = write_table(tmp_path / "paper.csv", hyperbolic_rows())
    out = tmp_path / "out"
    args = ["fit", "--points", str(table), "--law", "hyperbolic", "--bootstrap", "0", "--out", str(out)]
    assert main(args + ["--targets", "2.8"]) == 0
    assert [r["target"] for r in json.loads((out / "fit.json").read_text())["rows"]] == [2.8]


GOOD = "batch_size,target,steps\n" + "".join(f"{b},3.0,{200 + 1e6 / b}\n" for b in (625, 1250, 2500, 5000, 1e4))
BAD = [
    ("batch_size,target\n64,3.0\n", "missing column 'steps'"),
    ("batch_size,loss,steps\n64,3.0,10\n", "missing column 'target'"),
    (GOOD + "128,3.0,abc\n", "line 7 column 'steps': 'abc' is not a number"),
    (GOOD + "0,3.0,100\n", "line 7 column 'batch_size': 0 must be positive"),
    (GOOD + "128,-1,100\n", "line 7 column 'target': -1 must be positive"),
    (GOOD + "128,3.0,nan\n", "line 7 column 'steps': nan must be positive and finite"),
    (GOOD + "128,3.0\n", "line 7 column 'steps': empty"),
    (GOOD + "128,3.0,100,7\n", "line 7: more fields than the header"),
    ("batch_size,target,steps\n", "no rows under the header"),
    ("batch_size,target,steps\n64,3.0,10\n128,3.0,6\n", "at least 3 distinct batch sizes"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_tables_refused_in_one_line_and_nothing_written(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["fit", "--points", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    if "line" in message:
        assert str(path) in err
    assert not out.exists()


def test_points_and_logs_are_exclusive_and_one_is_needed(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    out = tmp_path / "out"
    assert main(["fit", str(good), "--points", str(good), "--out", str(out)]) == 2
    assert "either LOG files or --points FILE, not both" in capsys.readouterr().err
    assert main(["fit", "--out", str(out)]) == 2
    assert "--points FILE" in capsys.readouterr().err
    (tmp_path / "latin1.csv").write_bytes(b"batch_size,target,steps\n64,3.0,1\xe9\n")
    assert main(["fit", "--points", str(tmp_path / "latin1.csv"), "--out", str(out)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["fit", "--points", str(tmp_path / "absent.csv"), "--out", str(out)]) == 2
    assert "cannot read --points file" in capsys.readouterr().err
    assert not out.exists()


def test_three_phase_on_nqm_points_finds_the_frontier_bopt(tmp_path):
    sim = pytest.importorskip("sim")
    fr = sim.es_frontier(sim.NQM.zhang2019(500), 0.5, np.geomspace(1, 128, 30), [0.6, 0.4, 0.3])
    rows = [
        (B, t, fr.S[i, k])
        for i, B in enumerate(fr.batch_sizes)
        for k, t in enumerate(fr.targets)
        if np.isfinite(fr.S[i, k])
    ]  # a batch that never reaches a target has no row, as in a paper
    table = write_table(tmp_path / "nqm.csv", rows)
    out = tmp_path / "out"
    assert main(["fit", "--points", str(table), "--bootstrap", "0", "--out", str(out)]) == 0
    fit = json.loads((out / "fit.json").read_text())
    for row, bopt in zip(fit["rows"], fr.bopt):
        assert row["status"] == "ok"
        assert row["bopt"] == pytest.approx(bopt, rel=0.10)
