"""Hostile logs: each case a user met, read right, refused in one line, or warned by name.

The base sweep: 9 runs, batch 8..2048, 150 log-spaced rows each,
``loss = 2 + 4/B + 3 (1 + D/(B+64)/10)^-0.5`` plus N(0, 0.002) noise.
"""

import json
import os
import warnings

import numpy as np
import pytest

from dbs_theory.logs.runs import load_runs

BATCHES = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def base_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for B in BATCHES:
        steps = np.unique(np.geomspace(1, 20_000, 150).astype(int))
        D = steps * B
        loss = 2 + 4 / B + 3 * (1 + D / (B + 64) / 10) ** -0.5 + rng.normal(0, 0.002, steps.size)
        rows += [
            dict(run=f"b{B}", batch_size=B, step=int(s), tokens=int(d), loss=float(v))
            for s, d, v in zip(steps, D, loss)
        ]
    return rows


def write_csv(path, rows, header=None):
    header = header or list(rows[0])
    lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def read(*paths):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        runs = load_runs(*paths)
    return runs, [str(x.message) for x in w]


def test_the_base_sweep_reads_silently(tmp_path):
    runs, said = read(write_csv(tmp_path / "s.csv", base_rows()))
    assert len(runs) == 9 and not said


@pytest.mark.parametrize(
    "column, shift, words", [("step", 2000, "step x batch_size -128000"), ("tokens", 30000, "step x batch_size +30000")]
)
def test_steps_or_tokens_shifted_by_a_constant_are_named(tmp_path, column, shift, words):
    rows = base_rows()
    for r in rows:
        if r["run"] == "b64":
            r[column] += shift
    runs, said = read(write_csv(tmp_path / "s.csv", rows))
    assert len(runs) == 9
    assert any("'b64'" in m and words in m for m in said), said


def test_one_batch_of_offset_is_a_logging_convention_not_a_shift(tmp_path):
    rows = base_rows()
    for r in rows:
        r["tokens"] -= r["batch_size"]  # tokens counted before the step
    _, said = read(write_csv(tmp_path / "s.csv", rows))
    assert not said


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_row_without_a_run_name_is_refused_in_one_line(tmp_path, fmt):
    rows = base_rows()
    if fmt == "csv":
        rows[5]["run"] = ""
        path = write_csv(tmp_path / "s.csv", rows)
    else:
        del rows[5]["run"]
        path = write_jsonl(tmp_path / "s.jsonl", rows)
    line = 7 if fmt == "csv" else 6  # the CSV's header is line 1
    with pytest.raises(ValueError, match=rf":{line}: the row has no run name"):
        load_runs(path)


def test_an_unknown_column_is_named_in_a_warning(tmp_path):
    rows = base_rows()
    for i, r in enumerate(rows):
        r["phase"] = "eval" if i % 10 == 0 else "train"
    _, said = read(write_csv(tmp_path / "s.csv", rows))
    assert any("'phase'" in m and "ignored" in m for m in said), said


def test_a_column_or_key_given_twice_is_refused(tmp_path):
    rows = base_rows()
    path = write_csv(tmp_path / "s.csv", rows, ["run", "batch_size", "step", "tokens", "loss", "loss"])
    with pytest.raises(ValueError, match="column 'loss' appears twice"):
        load_runs(path)
    text = "\n".join(json.dumps(r)[:-1] + ', "loss": 9.0}' for r in rows[:3])
    (tmp_path / "d.jsonl").write_text(text + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:1: key 'loss' appears twice"):
        load_runs(tmp_path / "d.jsonl")


def test_an_identical_copy_under_another_name_is_warned(tmp_path):
    rows = base_rows()
    rows += [dict(r, run="copy") for r in rows if r["run"] == "b128"]
    _, said = read(write_csv(tmp_path / "s.csv", rows))
    assert any("'b128' and 'copy' hold identical rows" in m for m in said), said


def test_unclear_headers_and_names_are_read_or_refused_clearly(tmp_path):
    (tmp_path / "h.csv").write_text("run,batch_size,step,tokens,loss\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_runs(tmp_path / "h.csv")
    rows = base_rows()
    text = "run, batch_size, step, tokens, loss\n" + "\n".join(
        f"{r['run']}, {r['batch_size']}, {r['step']}, {r['tokens']}, {r['loss']}" for r in rows
    )
    (tmp_path / "spaces.csv").write_text(text + "\n")
    runs, _ = read(tmp_path / "spaces.csv")
    assert len(runs) == 9
    rows = base_rows()
    rows[3]["run"] = "b8 "
    with pytest.raises(ValueError, match="differ only by surrounding spaces"):
        load_runs(write_csv(tmp_path / "t.csv", rows))


def test_jsonl_keys_are_read_from_every_line_not_the_first_only(tmp_path):
    rows = base_rows()
    for r in rows[1:]:
        r["val_loss"] = r["loss"] + 0.1
    runs, _ = read(write_jsonl(tmp_path / "s.jsonl", rows))
    assert "val_loss" in runs[0].extra and np.isfinite(runs[0].extra["val_loss"][1:]).all()


def test_a_batch_written_as_a_float32_is_one_batch_not_a_dynamic_run(tmp_path):
    rows = base_rows()
    for r in rows[::2]:
        if r["run"] == "b64":
            r["batch_size"] = 63.999999
    runs, said = read(write_csv(tmp_path / "s.csv", rows))
    run = next(r for r in runs if r.name == "b64")
    assert not run.dynamic and run.batch_size == 64 and not said


def test_an_eval_only_log_is_read_from_val_loss_with_a_warning(tmp_path):
    rows = [{("val_loss" if k == "loss" else k): v for k, v in r.items()} for r in base_rows()]
    runs, said = read(write_csv(tmp_path / "s.csv", rows))
    assert len(runs) == 9 and any("reading 'val_loss' as each row's loss" in m for m in said)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(ValueError, match="not a regular file"):
        load_runs(tmp_path / "pipe.csv")
    write_csv(tmp_path / "s.csv", base_rows())
    runs, said = read(tmp_path)
    assert len(runs) == 9 and any("pipe.csv" in m and "not regular files" in m for m in said)
