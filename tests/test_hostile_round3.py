"""Hostile inputs (second part): the cases a probe still found wrong, each read right, refused in one
line or warned by name."""

import json

import numpy as np
import pytest

from dbs_theory.logs.runs import load_runs

from test_hostile_logs import base_rows, write_csv


def _wandb(path, metric_of):
    """A W&B panel export: ``Step`` and ``<run> - <metric>`` columns, one run per batch in ``metric_of``."""
    steps = np.arange(5, 505, 5)
    head = ["Step"] + [f"b{B} - {m}" for B, m in metric_of.items()]
    rows = [[str(s)] + [f"{2 + 4 / B + 3 * (1 + s * B / (B + 64) / 10) ** -0.5:.6f}" for B in metric_of] for s in steps]
    path.write_text("\n".join(",".join(r) for r in [head, *rows]) + "\n")
    return path


def test_wandb_runs_that_log_their_loss_under_different_names_are_all_read(tmp_path):
    p = _wandb(tmp_path / "w.csv", {64: "loss", 128: "train/loss", 256: "train/loss"})
    with pytest.warns(UserWarning, match="different names"):
        runs = load_runs(p, batch_sizes={"b64": 64, "b128": 128, "b256": 256})
    assert sorted(r.batch_size for r in runs) == [64, 128, 256]
    with pytest.raises(ValueError, match="^loss_tag: .*run 'b64' has no metric 'train/loss'.*metrics present: loss"):
        load_runs(p, batch_sizes={"b64": 64, "b128": 128, "b256": 256}, loss_tag="train/loss")


def test_a_folder_of_logs_beside_trainer_states_is_refused(tmp_path):
    write_csv(tmp_path / "b8.csv", [r for r in base_rows() if r["run"] == "b8"])
    hf = tmp_path / "hf_b16"
    hf.mkdir()
    (hf / "trainer_state.json").write_text(
        json.dumps({"log_history": [{"step": 1, "loss": 3.0}], "train_batch_size": 16})
    )
    with pytest.raises(ValueError, match="holds both loss logs .*b8.csv.* and Trainer states"):
        load_runs(tmp_path)


def test_a_batch_size_option_against_the_logs_batch_is_refused_and_unused_names_warned(tmp_path):
    p = write_csv(tmp_path / "s.csv", base_rows())
    with pytest.raises(ValueError, match="^batch_sizes: run 'b8' is given 16 but its log says batch_size 8"):
        load_runs(p, batch_sizes={"b8": 16})
    with pytest.warns(UserWarning, match="names 1 run.* the logs do not hold: 'b9'"):
        load_runs(p, batch_sizes={"b8": 8, "b9": 9})


def test_the_command_reports_a_library_argument_under_its_flag(tmp_path):
    """The library names its argument (batch_sizes); dbs fit reports the refusal, and the warning, under the
    flag that sets it (--batch-size), one line each."""
    from dbs_cli import dbs

    p = write_csv(tmp_path / "s.csv", base_rows())
    r = dbs("fit", str(p), "--batch-size", "b8=16", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "dbs fit: error: --batch-size: run 'b8' is given 16 but its log says batch_size 8; drop one (a log with "
        "a batch_size column needs none given)"
    ]
    w = dbs("plan", str(p), "--batch-size", "b9=9", "--budget", "1e4", "--out", str(tmp_path / "w"))
    assert "dbs: warning: --batch-size: names 1 run(s) the logs do not hold: 'b9'" in w.stderr, w.stderr[-800:]


def test_a_bom_in_trainer_state_json_is_read(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    state = {"log_history": [{"step": s, "loss": 3.0 - s / 100} for s in range(1, 6)], "train_batch_size": 8}
    (d / "trainer_state.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(state).encode())
    (run,) = load_runs(d, batch_sizes={"run": 8})
    assert run.loss.size == 5


@pytest.mark.parametrize("bad, word", [(-1.0, "not positive"), (0.0, "not positive")])
def test_a_loss_at_or_below_zero_is_refused_naming_the_row(tmp_path, bad, word):
    rows = base_rows()
    rows[5]["loss"] = bad
    with pytest.raises(ValueError, match=f"s.csv:7: loss {bad:g} is {word}"):
        load_runs(write_csv(tmp_path / "s.csv", rows))


def test_a_sweep_at_several_learning_rates_records_none_and_a_varying_rate_is_warned():
    from dbs_theory.measure.tabulate import LR_TOL, sweep_lr
    from dbs_theory.logs.runs import Run

    def run(name, lr):
        s = np.arange(1.0, 11.0)
        return Run(name, 8.0, s, 8 * s, 3 - s / 100, {"lr": np.asarray(lr, float)})

    assert sweep_lr([run("a", [1e-3] * 10), run("b", [1e-3 * LR_TOL * 0.999] * 10)]) == pytest.approx(1e-3, rel=0.05)
    with pytest.warns(UserWarning, match="learning rates differ 16x"):
        assert sweep_lr([run("a", [5e-4] * 10), run("b", [8e-3] * 10)]) is None
    with pytest.warns(UserWarning, match="run 'a': its learning rate varies 4x over its second half"):
        sweep_lr([run("a", [2e-3, 8e-3] * 5)])


def test_a_horizon_within_one_logging_interval_of_the_sweeps_end_is_its_end():
    from dbs_theory.rules.envelope import past_measured

    env = dict(
        data=[1e4, 1e5, 199680.0],
        bopt=[8, 16, 32],
        identified=[True] * 3,
        log_gap=1024.0,
        batches=[8, 16, 32],
        by_batch=[[3.0, 2.9, 2.8]] * 3,
    )
    assert not past_measured(env, 2e5) and not past_measured(env, 199680 + 1024)
    assert past_measured(env, 199680 + 1025) and past_measured({**env, "log_gap": None}, 2e5)


def test_grid_and_points_tables_name_unknown_columns_and_refuse_repeated_ones(tmp_path):
    from dbs_theory.commands.fit import read_points
    from dbs_theory.logs.grid_table import read_grid

    g = tmp_path / "g.csv"
    g.write_text("batch_size,tokens,loss,optimizer\n8,1e5,3.0,adam\n16,1e5,2.9,adam\n")
    with pytest.warns(UserWarning, match="'optimizer' are not in the grid format"):
        read_grid(g)
    p = tmp_path / "p.csv"
    p.write_text("batch_size,target,steps,note\n8,3.0,100,x\n16,3.0,60,x\n32,3.0,40,x\n")
    with pytest.warns(UserWarning, match="'note' are not in the points format"):
        read_points(p)
    p.write_text("batch_size,target,steps,steps\n8,3.0,100,90\n")
    with pytest.raises(ValueError, match="column 'steps' appears twice"):
        read_points(p)


def test_a_fit_bopt_whose_interval_leaves_the_grid_is_not_identified():
    from dbs_theory.measure.tabulate import _off_grid

    B = np.array([44.0, 88, 176])
    assert _off_grid(dict(bopt=60.0, bopt_lo=41.4, bopt_hi=70.0), B).startswith("its interval runs below the grid")
    assert _off_grid(dict(bopt=60.0, bopt_lo=44.0, bopt_hi=176.0), B) == ""
    assert _off_grid(dict(bopt=200.0), B).startswith("it runs above the grid")


def _points_fit(tmp_path, rows):
    from dbs_theory.cli import main

    p = tmp_path / "fit.json"
    p.write_text(json.dumps({"rows": rows}))
    return main, p


def test_a_points_table_that_does_not_resolve_growth_gets_the_fixed_batch(tmp_path, capsys):
    main, p = _points_fit(
        tmp_path, [{"target": 3.0, "emin": 1e4, "bopt": 45.0}, {"target": 2.6, "emin": 3.6e4, "bopt": 53.0}]
    )
    assert main(["schedule", "--from", str(p), "--horizon", "3.6e4", "--out", str(tmp_path / "s")]) == 0
    ex = json.loads((tmp_path / "s" / "exports.json").read_text())
    sched = json.loads((tmp_path / "s" / "schedule.json").read_text())
    assert ex["recommendation"] == "fixed" and "does not resolve that Bopt grows" in ex["reason"]
    assert [s["batch_size"] for s in sched["segments"]] == [53.0]
    main, p = _points_fit(tmp_path, [{"target": 3.0, "emin": 1e4, "bopt": 45.0}, {"target": 2.6}])
    assert main(["schedule", "--from", str(p), "--horizon", "3.6e4", "--out", str(tmp_path / "t")]) == 0
    assert "only one target identifies Bopt (45 at D=1e+04)" in capsys.readouterr().out
    main, p = _points_fit(tmp_path, [{"target": 3.0}, {"target": 2.6}])
    assert main(["schedule", "--from", str(p), "--horizon", "3.6e4", "--out", str(tmp_path / "u")]) == 2
    assert "no target identifies Bopt" in capsys.readouterr().err and not (tmp_path / "u").exists()


def test_a_fitted_bmin_far_below_every_batch_is_named_plainly():
    from dbs_theory.measure.tabulate import _linear_phase_check
    from dbs_theory.theory.es_laws import ThreePhaseES

    law = ThreePhaseES.c1(1.0, 2.0, 3.0, 4.0, 10.0, 0.5)
    S = np.array([5.0, 6, 7, 8])
    why = _linear_phase_check(law, S, np.array([law.bmin * 1e4]))
    assert "lies far below every batch that reached the target" in why and "x the" not in why
    assert "x the fitted Bmin" in _linear_phase_check(law, S, np.array([law.bmin * 50]))
    assert _linear_phase_check(law, S, np.array([law.bmin * 1.2])) == ""


def test_rows_a_split_column_marks_as_eval_are_dropped_not_merged_into_training(tmp_path):
    rows = base_rows()
    train = load_runs(write_csv(tmp_path / "t.csv", rows))
    marked = [dict(r, split="train") for r in rows]
    evals = [dict(r, split="eval", loss=r["loss"] + 0.5) for r in rows[::10]]
    with pytest.warns(
        UserWarning,
        match=rf"dropped {len(evals)} row\(s\) that column 'split' marks as not training "
        rf"\({len(evals)} 'eval'\)",
    ):
        runs = load_runs(write_csv(tmp_path / "s.csv", marked + evals))
    assert [r.loss.tolist() for r in runs] == [r.loss.tolist() for r in train]
    only_eval = write_csv(tmp_path / "e.csv", evals)
    with pytest.raises(ValueError, match=f"column 'split' marks no row as training \\({len(evals)} 'eval'\\)"):
        load_runs(only_eval)
    blank = [dict(r, Split="" if i % 3 else "train") for i, r in enumerate(rows)] + [
        dict(r, Split="EVAL") for r in evals
    ]
    with pytest.warns(UserWarning, match="column 'Split' marks as not training"):  # unlabelled rows are training
        runs = load_runs(write_csv(tmp_path / "b.csv", blank))
    assert [r.loss.tolist() for r in runs] == [r.loss.tolist() for r in train]


def test_a_csv_without_a_run_column_is_one_run_named_after_its_file(tmp_path):
    rows = [r for r in base_rows() if r["run"] == "b64"]
    p = write_csv(tmp_path / "metrics.csv", rows, header=["step", "batch_size", "tokens", "loss"])
    with pytest.warns(UserWarning, match="no 'run' column; the file is one run"):
        (run,) = load_runs(p)
    assert run.name == str(tmp_path / "metrics.csv") and run.batch_size == 64 and run.loss.size == len(rows)


def test_when_no_e_of_s_can_be_fitted_dbs_fit_names_the_fixed_batch_the_runs_measure(tmp_path, capsys):
    from dbs_theory.cli import main

    two = [r for r in base_rows() if r["run"] in ("b8", "b64")]
    out = tmp_path / "out"
    assert main(["fit", str(write_csv(tmp_path / "two.csv", two)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "need runs at 3 or more distinct batch sizes" in err
    assert "the fixed batch these runs measure: 64 (run 'b64') has the lowest loss" in err
    assert not out.exists()
    apart = [
        dict(run=n, batch_size=b, step=1, tokens=t, loss=v)
        for n, b, t, v in [("a", 8, 8, 3.0), ("b", 64, 64, 2.9), ("c", 512, 512, 2.8)]
    ]
    assert main(["fit", str(write_csv(tmp_path / "one_row.csv", apart)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "each run has a single logged row" in err and "share no range of data" in err and not out.exists()


def test_a_schedule_past_the_sweeps_largest_batch_is_warned_at_its_boundary():
    import warnings

    from dbs_theory.schedules.batch_schedules import step_batch
    from dbs_theory.schedules.exports import warn_past_the_grid

    env = dict(batches=[8.0, 64.0, 2048.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_past_the_grid(step_batch([100], [64, 2048]), env)  # the largest batch swept: measured
        warn_past_the_grid(step_batch([100], [64, 2068]), env)  # within 1% of it
    with pytest.warns(UserWarning, match=r"reaches batch 2100, 1.03x the largest the sweep ran \(2048\)"):
        warn_past_the_grid(step_batch([100], [64, 2100]), env)


def test_validation_rows_of_a_logger_that_merges_by_step_are_dropped(tmp_path):
    """Lightning's CSVLogger writes a validation metric on its own row, other cells empty."""
    rows = [r for r in base_rows() if r["run"] == "b64"]
    mixed = []
    for i, r in enumerate(rows):
        mixed.append(dict(r, val_loss=""))
        if i % 20 == 0:
            mixed.append(dict(step=r["step"], val_loss=r["loss"] + 0.1))
    p = write_csv(tmp_path / "metrics.csv", mixed, header=["step", "batch_size", "tokens", "loss", "val_loss"])
    with pytest.warns(UserWarning, match=r"dropped \d+ row\(s\) with batch_size, tokens and loss all empty"):
        (run,) = load_runs(p)
    assert run.loss.tolist() == [r["loss"] for r in rows]
    half = write_csv(
        tmp_path / "half.csv", [dict(rows[0], tokens=""), *rows[1:]], header=["step", "batch_size", "tokens", "loss"]
    )
    with pytest.raises(ValueError, match="tokens"):  # a row with some of the three is a training row, checked
        load_runs(half)


@pytest.mark.parametrize("text, said", [('{"targets": 5, "points": []}', "targets must be a list; got 5"),
                                        (b"\xff\xfe{", "not a UTF-8 text file")])  # fmt: skip
def test_dbs_report_on_an_edited_frontier_json_is_one_line(tmp_path, capsys, text, said):
    from dbs_theory.cli import main

    f = tmp_path / "frontier.json"
    f.write_bytes(text) if isinstance(text, bytes) else f.write_text(text)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and said in err and not (tmp_path / "report.md").exists()


def test_the_trainer_names_its_arguments_and_dbs_train_their_flags(tmp_path):
    """validate's corpus reader names the argument (data, vocab_size); dbs train reports it under --data and
    --vocab-size, and a backquoted argument inside a message under its flag."""
    pytest.importorskip("torch")
    from dbs_cli import dbs
    from dbs_theory.errors import as_flags
    from validate.commands import FLAGS
    from validate.data import load_corpus

    bad = tmp_path / "corpus.txt"
    bad.write_text("not a folder, not a .bin")
    with pytest.raises(ValueError, match=r"^data: must be a folder of text files"):
        load_corpus(bad)
    tokens = tmp_path / "corpus.bin"
    tokens.write_bytes(b"\0" * 4000)
    with pytest.raises(ValueError, match=r"^vocab_size: a \.bin corpus"):
        load_corpus(tokens)
    r = dbs("train", "--preset", "tiny", "--tokens", "200000", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"dbs train: error: --data: must be a folder of text files or a .bin of uint16 tokens; got {str(bad)!r}"
    ]
    assert not (tmp_path / "o").exists()
    assert (
        as_flags("'o' holds a run; pass `resume` or `overwrite`", FLAGS)
        == "'o' holds a run; pass --resume or --overwrite"
    )
    assert as_flags("device='cuda': absent (use `device` cpu)", FLAGS) == "--device 'cuda': absent (use --device cpu)"
