"""Fuzzed readers: mutate valid logs and valid JSON files (truncate, drop or duplicate columns and keys, flip
types, blank names, shift steps or tokens, reorder, inject NaN/inf/strings) and require, of every reader and
of ``dbs fit``, ``dbs report``'s schedule section and ``dbs train --batch-schedule``'s parser: no traceback,
no hang, and either the unmutated answer, a refusal in one line (``ValueError``), or a warning that names
what changed. Derandomized in CI (tests/conftest.py's ``ci`` profile); ``HYPOTHESIS_PROFILE=long`` runs
more examples locally."""

import contextlib
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbs_theory.schedules.batch_schedules import BatchSchedule, step_batch
from dbs_theory.logs.runs import load_runs
from dbs_theory.logs.schemas import FitFile, parse

settings.register_profile("long", max_examples=2000, deadline=None)
EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

COLUMNS = ["run", "batch_size", "step", "tokens", "loss"]


def _rows():
    """Four runs, batch 8..512, 60 rows each logged every N steps to 2e5 tokens (as a trainer logs), of
    ``loss = 2 + 4/B + 3 (1 + D/(B+64)/10)^-0.5``."""
    out = []
    for B in (8, 32, 128, 512):
        every = int(2e5 / B / 60)
        for s in range(every, 61 * every, every):
            D = s * B
            out.append([f"b{B}", str(B), str(s), str(D), f"{2 + 4 / B + 3 * (1 + D / (B + 64) / 10) ** -0.5:.6f}"])
    return out


ROWS = _rows()


def _csv(header, rows):
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _answer(runs):
    """What a reader says: per run, its batch and its (step, tokens, loss) rows."""
    return sorted((r.name, r.batch_size, tuple(r.step), tuple(r.tokens), tuple(np.round(r.loss, 12))) for r in runs)


def _outcome(text, suffix):
    """``("refused", message)`` or ``("read", answer, warnings)``; any other exception fails the test."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"log{suffix}"
        p.write_text(text, encoding="utf-8")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                runs = load_runs(p)
            except ValueError as exc:
                return ("refused", str(exc))
    return ("read", _answer(runs), [str(w.message) for w in caught])


BASE = _outcome(_csv(COLUMNS, ROWS), ".csv")


def _check(got):
    """The fuzz contract: a one-line refusal, the unmutated answer, or a named warning."""
    if got[0] == "refused":
        assert got[1].strip() and "\n" not in got[1].strip(), got[1]
    else:
        assert got[1] == BASE[1] or got[2], "a changed answer without a warning"


@st.composite
def mutated_csv(draw):
    header, rows = list(COLUMNS), [list(r) for r in ROWS]
    kind = draw(
        st.sampled_from(
            [
                "dup_col",
                "drop_col",
                "blank_name",
                "flip",
                "inject",
                "shift_tokens",
                "shift_steps",
                "reorder_rows",
                "reorder_cols",
                "unknown_col",
                "dup_row",
                "space_name",
                "truncate_header",
            ]
        )
    )
    i = draw(st.integers(0, len(rows) - 1))
    j = draw(st.integers(0, len(header) - 1))
    run = draw(st.sampled_from(["b8", "b32", "b128", "b512"]))
    if kind == "dup_col":
        header.append(header[j])
        rows = [r + [r[j]] for r in rows]
    elif kind == "drop_col":
        header.pop(j)
        rows = [r[:j] + r[j + 1 :] for r in rows]
    elif kind == "blank_name":
        rows[i][0] = ""
    elif kind == "flip":
        rows[i][max(j, 1)] = draw(st.sampled_from(["abc", "true", "[1]", "", "1e", "--"]))
    elif kind == "inject":
        rows[i][draw(st.integers(1, 4))] = draw(st.sampled_from(["nan", "inf", "-inf", "-1", "1e400", "0"]))
    elif kind in ("shift_tokens", "shift_steps"):
        # beyond one batch: one batch either way is a logging convention (tokens counted before or after a step)
        k = draw(st.integers(2, 500)) * draw(st.sampled_from([1, -1]))
        col, by = (3, k * int(run[1:]) + draw(st.integers(0, 7))) if kind == "shift_tokens" else (2, k)
        rows = [r[:col] + [str(int(r[col]) + by)] + r[col + 1 :] if r[0] == run else r for r in rows]
    elif kind == "reorder_rows":
        rows = draw(st.permutations(rows))
    elif kind == "reorder_cols":
        order = draw(st.permutations(range(len(header))))
        header, rows = [header[k] for k in order], [[r[k] for k in order] for r in rows]
    elif kind == "unknown_col":
        header.append(draw(st.sampled_from(["split", "optimizer", "note"])))
        rows = [r + ["eval" if k == i else "train"] for k, r in enumerate(rows)]
    elif kind == "dup_row":
        rows.insert(i, list(rows[i]))
    elif kind == "space_name":
        rows[i][0] += " "
    elif kind == "truncate_header":
        return _csv(header, rows)[: draw(st.integers(0, len(",".join(header))))]
    return _csv(header, rows)


@FUZZ
@given(mutated_csv())
def test_a_mutated_csv_log_is_read_right_warned_or_refused(text):
    _check(_outcome(text, ".csv"))


@st.composite
def mutated_jsonl(draw):
    records = [dict(zip(COLUMNS, [r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4])])) for r in ROWS]
    kind = draw(st.sampled_from(["truncate", "drop_key", "flip", "dup_key", "shift_tokens", "blank_name"]))
    i = draw(st.integers(0, len(records) - 1))
    key = draw(st.sampled_from(COLUMNS))
    lines = [json.dumps(r) for r in records]
    if kind == "truncate":
        text = "\n".join(lines)
        return text[: draw(st.integers(0, len(text) - 2))]
    if kind == "drop_key":
        del records[i][key]
    elif kind == "flip":
        records[i][key] = draw(st.sampled_from(["3", [1.0], {"v": 1}, True, None]))
    elif kind == "dup_key":
        lines[i] = lines[i][:-1] + f', "{key}": {json.dumps(records[i][key])}}}'
        return "\n".join(lines) + "\n"
    elif kind == "shift_tokens":
        run = records[i]["run"]
        for r in records:
            r["tokens"] += 10000.0 if r["run"] == run else 0.0
    elif kind == "blank_name":
        del records[i]["run"]
    return "\n".join(json.dumps(r) for r in records) + "\n"


@FUZZ
@given(mutated_jsonl())
def test_a_mutated_jsonl_log_is_read_right_warned_or_refused(text):
    got = _outcome(text, ".jsonl")
    if got[0] == "read" and got[1] != BASE[1] and not got[2]:
        # a cut at a line's end drops whole rows: the answer of the rows that remain (a log still being written)
        whole = [ln for ln in text.splitlines() if ln.strip()]
        assert _outcome("\n".join(whole) + "\n", ".jsonl")[1] == got[1] and text.rstrip().endswith("}")
        return
    _check(got)


GOOD = json.loads(step_batch([1000.0, 5000.0], [64.0, 128.0, 512.0], unit="tokens", lr=3e-3).to_json())


def _schedule_answer(s: BatchSchedule):
    return (s.starts, s.sizes, s.unit, s.lr)


def _flip(draw, v):
    return draw(st.sampled_from(["3", [v], {"v": v}, True, math.nan, math.inf, -1.0, 0.0]))


@st.composite
def mutated_schedule(draw):
    d = json.loads(json.dumps(GOOD))
    kind = draw(
        st.sampled_from(
            ["drop", "flip", "flip_seg", "drop_seg_key", "reorder", "truncate", "dup_key", "empty", "not_object"]
        )
    )
    k = draw(st.integers(0, len(d["segments"]) - 1))
    if kind == "drop":
        d.pop(draw(st.sampled_from(["unit", "lr", "kind", "params", "segments"])))
    elif kind == "flip":
        key = draw(st.sampled_from(["unit", "lr", "kind", "params", "segments"]))
        d[key] = _flip(draw, d[key])
    elif kind == "flip_seg":
        key = draw(st.sampled_from(["from", "batch_size"]))
        d["segments"][k][key] = _flip(draw, d["segments"][k][key])
    elif kind == "drop_seg_key":
        d["segments"][k].pop(draw(st.sampled_from(["from", "batch_size"])))
    elif kind == "reorder":
        d["segments"] = draw(st.permutations(d["segments"]))
    elif kind == "truncate":
        text = json.dumps(d)
        return text[: draw(st.integers(0, len(text) - 1))]
    elif kind == "dup_key":
        return json.dumps(d)[:-1] + ', "unit": "samples"}'
    elif kind == "empty":
        d["segments"] = []
    elif kind == "not_object":
        return json.dumps(draw(st.sampled_from([[d], "schedule", 3, None])))
    return json.dumps(d)


@FUZZ
@given(mutated_schedule())
def test_a_mutated_schedule_json_is_parsed_right_or_refused_in_one_line(text):
    """The parser ``dbs train --batch-schedule`` and ``dbs report`` share: the unmutated schedule (less what
    an optional key held), or one line."""
    try:
        got = BatchSchedule.from_json(text)
    except ValueError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return
    base = BatchSchedule.from_json(json.dumps(GOOD))
    assert got.starts == base.starts and got.sizes == base.sizes and got.unit == base.unit
    assert got.lr in (base.lr, None)  # lr is optional: a schedule without one is checked against no rate


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    """A real fit.json of ``dbs fit`` on the base log."""
    from dbs_theory.cli import main

    d = tmp_path_factory.mktemp("fit")
    (d / "log.csv").write_text(_csv(COLUMNS, ROWS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", str(d / "log.csv"), "--out", str(d / "fit"), "--bootstrap", "0"]) == 0
    return (d / "fit" / "fit.json").read_text()


def _paths(obj, at=()):
    """Every (path, value) in a JSON value, depth first."""
    yield at, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*at, k))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DROP:
        obj.pop(path[-1]) if isinstance(obj, dict) else obj.pop(path[-1])
    else:
        obj[path[-1]] = value


_DROP = object()


@FUZZ
@given(data=st.data())
def test_a_mutated_fit_json_reads_as_the_same_table_or_one_line(fit_json, data):
    """fit.json through its schema (what dbs schedule, dbs report and --rule-fit read): any mutation of any
    key reads as the unmutated record's values where they are kept, or is one line."""
    good = json.loads(fit_json)
    paths = [p for p, _ in _paths(good) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(st.sampled_from([_DROP, "x", [1], {"a": 1}, True, math.nan, -1.0]))
    bad = json.loads(fit_json)
    _set(bad, path, value)
    try:
        got = parse(json.dumps(bad), FitFile, "fit.json")
    except ValueError as exc:
        assert str(exc).startswith("fit.json") and "\n" not in str(exc)
        return
    base = parse(fit_json, FitFile, "fit.json")
    # a key the schema does not use, or a free-form record, may change: the rows' targets and the envelope's
    # identified Bopt readings, which every consumer reads, must be the unmutated ones unless the edit was there
    if path[0] == "rows" and len(path) > 2:
        return  # an estimate cell edited to another number or string of its kind reads as written
    if path[0] not in ("rows", "envelope"):
        return
    assert [r["target"] for r in got.rows] == [r["target"] for r in base.rows] or path[0] == "rows"


@settings(max_examples=6 if EXAMPLES < 1000 else 60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_csv())
def test_dbs_fit_on_a_mutated_log_exits_0_or_2_with_one_line(text):
    """End to end: ``dbs fit`` on a mutated log never raises past the command (exit 1 is a bug)."""
    import contextlib

    from dbs_theory.cli import main

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "log.csv").write_text(text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["fit", str(Path(d) / "log.csv"), "--out", str(Path(d) / "out"), "--bootstrap", "0"])
        assert rc in (0, 2), err.getvalue()
        if rc == 2:
            assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
            assert not (Path(d) / "out" / "fit.json").exists()


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory):
    """A results folder as a user has it: ``dbs fit`` and ``dbs schedule`` written into one folder."""
    from dbs_theory.cli import main

    d = tmp_path_factory.mktemp("report")
    (d / "log.csv").write_text(_csv(COLUMNS, ROWS))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        assert main(["fit", str(d / "log.csv"), "--out", str(d / "r"), "--bootstrap", "0"]) == 0
        horizon = float(max(r[3] for r in ROWS))
        assert main(["schedule", "--from", str(d / "r"), "--horizon", f"{horizon:g}", "--out", str(d / "r")]) == 0
    return d / "r"


@settings(max_examples=5 if EXAMPLES < 1000 else 60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_dbs_report_on_a_folder_with_a_mutated_file_exits_0_or_2_with_one_line(report_folder, data):
    """End to end: ``dbs report`` on a results folder one of whose JSON files is edited (a key dropped, a value
    of another type, the text cut short) renders or refuses in one line, writing no report."""
    import shutil

    from dbs_theory.cli import main

    name = data.draw(st.sampled_from(["fit.json", "schedule.json", "exports.json"]))
    text = (report_folder / name).read_text()
    if data.draw(st.booleans()):
        bad_text = text[: data.draw(st.integers(0, len(text) - 1))]
    else:
        bad = json.loads(text)
        path = data.draw(st.sampled_from([p for p, _ in _paths(bad) if p]))
        _set(bad, path, data.draw(st.sampled_from([_DROP, "x", [1], {"a": 1}, True, math.nan, -1.0])))
        bad_text = json.dumps(bad)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "r"
        shutil.copytree(report_folder, folder, ignore=shutil.ignore_patterns("report.*", "figures"))
        (folder / name).write_text(bad_text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["report", str(folder)])
        assert rc in (0, 2), err.getvalue()
        if rc == 2:
            assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
            assert not (folder / "report.md").exists()
