"""Logs other tools wrote: Hugging Face Trainer folders and W&B panel exports give the same runs, and the
same dbs fit table, as the same data in the project's CSV."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import sim
from dbs_theory.readers import detect, parse_batch_sizes
from dbs_theory.runs import load_runs, write_runs
from sim.identify import exact_runs


@pytest.fixture(scope="module")
def runs():
    nqm = sim.NQM.zhang2019(200)
    return exact_runs(nqm, 0.5, [4.0, 8.0, 16.0, 32.0, 64.0], 2e4, points=60)


def hf_state(run, with_tokens):
    """A trainer_state.json as transformers' TrainerState.save_to_json writes it (JSON, indent 2, sorted keys)."""
    hist = []
    for s, D, L in zip(run.step, run.tokens, run.loss):
        e = {"epoch": round(float(s) / 1000, 4), "grad_norm": 1.0, "learning_rate": 5e-05, "loss": float(L),
             "step": int(s)}
        if with_tokens:
            e["num_input_tokens_seen"] = int(D)
        hist.append(e)
    hist.append({"eval_loss": float(run.loss[-1]), "eval_runtime": 1.0, "eval_samples_per_second": 10.0,
                 "eval_steps_per_second": 1.0, "epoch": 1.0, "step": int(run.step[-1])})
    hist.append({"epoch": 1.0, "step": int(run.step[-1]), "total_flos": 1.0, "train_loss": float(run.loss.mean()),
                 "train_runtime": 10.0, "train_samples_per_second": 1.0, "train_steps_per_second": 1.0})
    state = {"best_global_step": None, "best_metric": None, "best_model_checkpoint": None, "epoch": 1.0,
             "eval_steps": 500, "global_step": int(run.step[-1]), "is_hyper_param_search": False,
             "is_local_process_zero": True, "is_world_process_zero": True, "log_history": hist,
             "logging_steps": 1, "max_steps": int(run.step[-1]), "num_input_tokens_seen": int(run.tokens[-1]),
             "num_train_epochs": 1, "save_steps": 500, "stateful_callbacks": {}, "total_flos": 1.0,
             "train_batch_size": 2, "trial_name": None, "trial_params": None}
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def write_hf(runs, root, with_tokens=True):
    for r in runs:
        d = root / r.name
        (d / "checkpoint-1").mkdir(parents=True)
        early = [e for e in json.loads(hf_state(r, with_tokens))["log_history"][:3]]
        (d / "checkpoint-1" / "trainer_state.json").write_text(json.dumps({"log_history": early}))  # older
        (d / "trainer_state.json").write_text(hf_state(r, with_tokens))
        (d / "training_args.bin").write_bytes(b"\x80\x04 a pickle that must never be opened")
    return root


def write_wandb(runs, path):
    """A W&B panel export: Step, then '<run> - train/loss' with its __MIN/__MAX companions, blanks where a run
    did not log that step."""
    steps = sorted({int(s) for r in runs for s in r.step})
    cols = [f"{r.name} - train/loss{x}" for r in runs for x in ("", "__MIN", "__MAX")]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Step", *cols])
        for s in steps:
            row = [s]
            for r in runs:
                hit = np.nonzero(r.step == s)[0]
                v = repr(float(r.loss[hit[0]])) if hit.size else ""
                row += [v, v, v]
            w.writerow(row)
    return path


def same(a, b):
    a, b = (sorted(x, key=lambda r: r.batch_size) for x in (a, b))  # a folder lists its runs by name
    assert [r.name for r in a] == [r.name for r in b]
    for x, y in zip(a, b):
        assert x.batch_size == y.batch_size
        np.testing.assert_array_equal(x.step, y.step)
        np.testing.assert_allclose(x.tokens, y.tokens, rtol=1e-12)
        np.testing.assert_allclose(x.loss, y.loss, rtol=1e-12)


def fit_table(src, out, *extra):
    """``dbs fit SRC`` (no bootstrap) and its bopt_table.csv rows."""
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "fit", str(src), *extra, "--bootstrap", "0",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(out / "bopt_table.csv") as fh:
        return list(csv.DictReader(fh))


def assert_same_table(got, want):
    """The same table: the same columns and strings, floats to the last bits of summation order."""
    assert len(got) == len(want) and all(a.keys() == b.keys() for a, b in zip(got, want))
    for a, b in zip(got, want):
        for k in a:
            try:
                assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-9, nan_ok=True), k
            except ValueError:
                assert a[k] == b[k], k


def test_hugging_face_folders_read_as_the_same_runs(runs, tmp_path):
    root = write_hf(runs, tmp_path / "hf_out")
    assert detect(root) == "hf"
    same(load_runs(root), runs)  # the global batch from the token count, the final state over checkpoint-1
    bare = write_hf(runs, tmp_path / "bare", with_tokens=False)
    same(load_runs(bare, batch_sizes={r.name: r.batch_size for r in runs}), runs)
    with pytest.raises(ValueError, match="training_args.bin, a pickle.*--batch-size b16="):
        load_runs(bare)


def test_a_wandb_export_reads_as_the_same_runs(runs, tmp_path):
    path = write_wandb(runs, tmp_path / "wandb.csv")
    assert detect(path) == "wandb"
    same(load_runs(path, batch_sizes={r.name: r.batch_size for r in runs}), runs)
    with pytest.raises(ValueError, match="no batch size for run"):
        load_runs(path, batch_sizes={"b4": 4.0})
    with pytest.raises(ValueError, match="metrics present: train/loss$"):
        load_runs(path, batch_sizes={"b4": 4.0}, loss_tag="eval/loss")


def test_dbs_fit_gives_the_same_table_from_each_format(runs, tmp_path):
    write_runs(runs, tmp_path / "runs.csv")
    write_hf(runs, tmp_path / "hf_out")
    write_wandb(runs, tmp_path / "wandb.csv")
    mapping = ",".join(f"{r.name}={r.batch_size:g}" for r in runs)
    want = fit_table(tmp_path / "runs.csv", tmp_path / "fit-csv")
    assert_same_table(fit_table(tmp_path / "hf_out", tmp_path / "fit-hf"), want)
    assert_same_table(fit_table(tmp_path / "wandb.csv", tmp_path / "fit-wandb", "--batch-size", mapping), want)


@pytest.mark.parametrize("text, match", [("a=256,b", "run=256"), ("a=-1", "positive"), ("=5", "run name")])
def test_a_bad_batch_size_mapping_is_one_line(text, match):
    with pytest.raises(ValueError, match=match):
        parse_batch_sizes(text)
    assert parse_batch_sizes("a=256, b=5e2") == {"a": 256.0, "b": 500.0}


def write_tensorboard(runs, root, batch_tag=True, tokens=False):
    """One folder of event files per run, written by torch's SummaryWriter (the real writer)."""
    tb = pytest.importorskip("torch.utils.tensorboard")
    for r in runs:
        w = tb.SummaryWriter(log_dir=str(root / r.name))
        for s, D, L in zip(r.step, r.tokens, r.loss):
            w.add_scalar("train/loss", float(L), int(s))
            if batch_tag:
                w.add_scalar("train/batch_size", r.batch_size, int(s))
            if tokens:
                w.add_scalar("train/tokens", float(D), int(s))
        w.close()
    return root


def test_tensorboard_event_files_read_as_the_same_runs(runs, tmp_path):
    root = write_tensorboard(runs, tmp_path / "tb_logs")
    assert detect(root) == "tensorboard"
    got = load_runs(root, batch_tag="train/batch_size")
    # the writer stores float32 scalars: the same runs to float32 precision
    a, b = sorted(got, key=lambda r: r.batch_size), sorted(runs, key=lambda r: r.batch_size)
    assert [r.batch_size for r in a] == [r.batch_size for r in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.step, y.step)
        np.testing.assert_allclose(x.tokens, y.tokens, rtol=1e-7)
        np.testing.assert_allclose(x.loss, y.loss, rtol=1e-6)
    with pytest.raises(ValueError, match="no batch size for run.*--batch-tag"):
        load_runs(root)
    with pytest.raises(ValueError, match="no loss scalar 'val/loss'.*train/batch_size, train/loss"):
        load_runs(root, batch_tag="train/batch_size", loss_tag="val/loss")
    bare = write_tensorboard(runs[:2], tmp_path / "bare", batch_tag=False, tokens=True)
    mapped = load_runs(bare, batch_sizes={r.name: r.batch_size for r in runs})
    np.testing.assert_allclose(sorted(mapped, key=lambda r: r.batch_size)[0].tokens, runs[0].tokens, rtol=1e-7)


def test_dbs_fit_on_tensorboard_logs_matches_the_csv(tmp_path):
    """12 runs written by the real writer; event files hold float32, so the table matches the CSV of the
    float32-rounded data."""
    runs = exact_runs(sim.NQM.zhang2019(200), 0.5, 2.0 ** np.arange(1, 13), 2e5, points=40)
    root = write_tensorboard(runs, tmp_path / "tb_logs")
    f32 = [type(r)(r.name, r.batch_size, r.step, r.tokens.astype(np.float32).astype(float),
                   r.loss.astype(np.float32).astype(float)) for r in runs]
    write_runs(f32, tmp_path / "runs.csv")
    assert_same_table(fit_table(root, tmp_path / "fit-tb", "--batch-tag", "train/batch_size"),
                      fit_table(tmp_path / "runs.csv", tmp_path / "fit-csv"))


def test_bad_foreign_logs_are_one_line_exit_2(runs, tmp_path):
    path = write_wandb(runs, tmp_path / "wandb.csv")
    empty = tmp_path / "hf_empty" / "run1"
    empty.mkdir(parents=True)
    (empty / "trainer_state.json").write_text(json.dumps({"log_history": [{"eval_loss": 1.0, "step": 5}]}))
    for args, match in ((["fit", str(path)], "no batch size for run"),
                        (["fit", str(path), "--batch-size", "b4=4", "--loss-tag", "x"], "metrics present"),
                        (["fit", str(tmp_path / "hf_empty")], "no training loss entries")):
        r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", *args, "--out", str(tmp_path / "o")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and match in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()  # nothing half-written
