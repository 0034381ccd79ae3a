"""Logs other tools wrote: Hugging Face Trainer folders and W&B panel exports give the same runs, and the
same dbs fit table, as the same data in the project's CSV."""

import csv
import json
import os

import numpy as np
import pytest
from dbs_cli import dbs

import sim
from dbs_theory.commands.log_options import parse_batch_sizes
from dbs_theory.logs.readers import detect
from dbs_theory.logs.runs import Run, load_runs, write_runs
from sim.identify import exact_runs


@pytest.fixture(scope="module")
def runs():
    nqm = sim.NQM.zhang2019(200)
    return exact_runs(nqm, 0.5, [4.0, 8.0, 16.0, 32.0, 64.0], 2e4, points=60)


def hf_state(run, with_tokens):
    """A trainer_state.json as transformers' TrainerState.save_to_json writes it (JSON, indent 2, sorted keys)."""
    hist = []
    for s, D, L in zip(run.step, run.tokens, run.loss):
        e = {
            "epoch": round(float(s) / 1000, 4),
            "grad_norm": 1.0,
            "learning_rate": 5e-05,
            "loss": float(L),
            "step": int(s),
        }
        if with_tokens:
            e["num_input_tokens_seen"] = int(D)
        hist.append(e)
    hist.append(
        {
            "eval_loss": float(run.loss[-1]),
            "eval_runtime": 1.0,
            "eval_samples_per_second": 10.0,
            "eval_steps_per_second": 1.0,
            "epoch": 1.0,
            "step": int(run.step[-1]),
        }
    )
    hist.append(
        {
            "epoch": 1.0,
            "step": int(run.step[-1]),
            "total_flos": 1.0,
            "train_loss": float(run.loss.mean()),
            "train_runtime": 10.0,
            "train_samples_per_second": 1.0,
            "train_steps_per_second": 1.0,
        }
    )
    state = {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": 1.0,
        "eval_steps": 500,
        "global_step": int(run.step[-1]),
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": hist,
        "logging_steps": 1,
        "max_steps": int(run.step[-1]),
        "num_input_tokens_seen": int(run.tokens[-1]),
        "num_train_epochs": 1,
        "save_steps": 500,
        "stateful_callbacks": {},
        "total_flos": 1.0,
        "train_batch_size": 2,
        "trial_name": None,
        "trial_params": None,
    }
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
    r = dbs("fit", src, *extra, "--bootstrap", "0", "--out", out)
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
    with pytest.raises(ValueError, match="^batch_sizes: .*training_args.bin, a pickle.*give b16="):
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
    with pytest.raises(ValueError, match="^batch_sizes: .*no batch size for run.*batch_tag"):
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
    f32 = [
        type(r)(
            r.name,
            r.batch_size,
            r.step,
            r.tokens.astype(np.float32).astype(float),
            r.loss.astype(np.float32).astype(float),
        )
        for r in runs
    ]
    write_runs(f32, tmp_path / "runs.csv")
    assert_same_table(
        fit_table(root, tmp_path / "fit-tb", "--batch-tag", "train/batch_size"),
        fit_table(tmp_path / "runs.csv", tmp_path / "fit-csv"),
    )


def test_bad_foreign_logs_are_one_line_exit_2(runs, tmp_path):
    path = write_wandb(runs, tmp_path / "wandb.csv")
    empty = tmp_path / "hf_empty" / "run1"
    empty.mkdir(parents=True)
    (empty / "trainer_state.json").write_text(json.dumps({"log_history": [{"eval_loss": 1.0, "step": 5}]}))
    for args, match in (
        (["fit", str(path)], "no batch size for run"),
        (["fit", str(path), "--batch-size", "b4=4", "--loss-tag", "x"], "metrics present"),
        (["fit", str(tmp_path / "hf_empty")], "no training loss entries"),
    ):
        r = dbs(*args, "--out", tmp_path / "o")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and match in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()  # nothing half-written


# -- readers that never guess. Each test below failed before its fix. --


def state_of(name, step, tokens, loss, batch=8.0):
    """trainer_state.json text for a run with these rows (tokens None: no num_input_tokens_seen)."""
    run = Run(
        name,
        batch,
        np.asarray(step, float),
        np.asarray(tokens if tokens is not None else step, float),
        np.asarray(loss, float),
    )
    text = hf_state(run, tokens is not None)
    return text


def put(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_wandb_two_runs_of_one_display_name_are_both_kept_apart(tmp_path):
    """Item 1: the export's columns, not its display names, are its runs."""
    p = put(tmp_path / "w.csv", "Step,a - loss,a - loss,b - loss\n1,3.0,9.0,3.1\n2,2.0,8.0,2.1\n")
    with pytest.warns(UserWarning, match=r"'a - loss' heads columns 2 and 3.*'a \(column 2\)'"):
        got = {r.name: r for r in load_runs(p, batch_sizes={"a (column 2)": 8, "a (column 3)": 16, "b": 16})}
    assert set(got) == {"a (column 2)", "a (column 3)", "b"}
    assert got["a (column 2)"].loss.tolist() == [3.0, 2.0] and got["a (column 2)"].batch_size == 8
    assert got["a (column 3)"].loss.tolist() == [9.0, 8.0] and got["a (column 3)"].batch_size == 16
    with pytest.warns(UserWarning, match="columns 2 and 3"):
        assert len(load_runs(p, batch_sizes={"a": 8, "b": 16})) == 3  # 'a=8' names both


def test_hf_runs_are_named_by_their_path_not_their_last_folder(runs, tmp_path):
    """Item 2: A/run and B/run are two runs."""
    for parent, r in (("A", runs[0]), ("B", runs[3])):
        put(tmp_path / "out" / parent / "run" / "trainer_state.json", hf_state(r, True))
    got = {r.name: r.batch_size for r in load_runs(tmp_path / "out")}
    assert got == {"A/run": runs[0].batch_size, "B/run": runs[3].batch_size}


def test_symlinked_run_folders_are_followed_once_and_loops_are_not(runs, tmp_path):
    """Item 3: links to run folders are read (HF and TensorBoard); a loop or a second link to one folder is
    read once, with a warning."""
    for kind, write in (("hf", write_hf), ("tb", write_tensorboard)):
        store = write(runs, tmp_path / f"{kind}_store")
        tree = tmp_path / f"{kind}_tree"
        write(runs[3:], tree)
        for r in runs[:3]:
            os.symlink(store / r.name, tree / r.name)
        os.symlink(tree, tree / "loop")
        os.symlink(tree / runs[4].name, tree / "zz_again")
        opts = {} if kind == "hf" else {"batch_tag": "train/batch_size"}
        with pytest.warns(UserWarning, match="read once") as rec:
            got = load_runs(tree, **opts)
        assert sorted(r.name for r in got) == sorted(r.name for r in runs)
        assert any("loop" in str(w.message) or "read once" in str(w.message) for w in rec)
        only_links = tmp_path / f"{kind}_links"
        only_links.mkdir()
        for r in runs[:2]:
            os.symlink(store / r.name, only_links / r.name)
        assert sorted(r.name for r in load_runs(only_links, **opts)) == sorted(r.name for r in runs[:2])


def test_an_hf_run_whose_batch_changes_is_dynamic(tmp_path):
    """Item 4: num_input_tokens_seen rising 8 then 32 per step is a dynamic-batch run, not batch 32."""
    step = np.arange(1, 7)
    put(tmp_path / "hf" / "r" / "trainer_state.json", state_of("r", step, [8, 16, 24, 56, 88, 120], 3 - step / 10))
    with pytest.warns(UserWarning, match="'r'.*dynamic"):
        (run,) = load_runs(tmp_path / "hf")
    assert run.dynamic and run.batch_size == 32
    np.testing.assert_array_equal(run.extra["batch_size"], [8, 8, 8, 32, 32, 32])
    np.testing.assert_array_equal(run.tokens, [8, 16, 24, 56, 88, 120])


def test_a_tensorboard_run_whose_batch_tag_changes_is_dynamic(tmp_path):
    """Item 4: a changing batch scalar is the run's per-step batch; data is its running sum."""
    tb = pytest.importorskip("torch.utils.tensorboard")
    w = tb.SummaryWriter(log_dir=str(tmp_path / "tb" / "r"))
    for s in range(1, 7):
        w.add_scalar("train/loss", 3 - s / 10, s)
        if s in (1, 4):
            w.add_scalar("train/batch_size", 8 if s == 1 else 32, s)
    w.close()
    with pytest.warns(UserWarning, match="'r'.*dynamic"):
        (run,) = load_runs(tmp_path / "tb", batch_tag="train/batch_size")
    assert run.dynamic and run.batch_size == 32
    np.testing.assert_array_equal(run.extra["batch_size"], [8, 8, 8, 32, 32, 32])
    np.testing.assert_array_equal(run.tokens, [8, 16, 24, 56, 88, 120])


def test_tensorboard_tokens_are_one_unit_per_run_and_checked(tmp_path):
    """Item 5: a token scalar logged at only some loss steps is refused (not step x batch silently), and one
    that contradicts step x batch (tokens against a batch in sequences) is refused naming the step."""
    tb = pytest.importorskip("torch.utils.tensorboard")
    w = tb.SummaryWriter(log_dir=str(tmp_path / "some" / "a"))
    for s in (1, 2, 3):
        w.add_scalar("train/loss", 3 - s / 10, s)
        if s != 2:
            w.add_scalar("train/tokens", 4096 * s, s)
    w.close()
    with pytest.raises(ValueError, match=r"'a'.*train/tokens.*2 of 3 loss steps.*step 2"):
        load_runs(tmp_path / "some", batch_sizes={"a": 8})
    w = tb.SummaryWriter(log_dir=str(tmp_path / "units" / "a"))
    for s in (1, 2, 3):
        w.add_scalar("train/loss", 3 - s / 10, s)
        w.add_scalar("train/tokens", 4096 * s, s)
    w.close()
    with pytest.raises(ValueError, match=r"step 2.*tokens.*4096.*batch"):
        load_runs(tmp_path / "units", batch_sizes={"a": 8})
    assert load_runs(tmp_path / "units", batch_sizes={"a": 4096})[0].tokens.tolist() == [4096, 8192, 12288]


def test_a_batch_size_that_contradicts_an_hf_token_count_is_refused(runs, tmp_path):
    """Item 5: --batch-size in sequences against num_input_tokens_seen in tokens."""
    root = write_hf(runs[:1], tmp_path / "hf")
    with pytest.raises(ValueError, match=r"^batch_sizes: .*b4=512 contradicts.*num_input_tokens_seen.*4 per step"):
        load_runs(root, batch_sizes={"b4": 512})
    assert load_runs(root, batch_sizes={"b4": 4})[0].batch_size == 4


def test_a_truncated_tensorboard_file_is_read_with_a_note(runs, tmp_path):
    """Item 6: a cut event file (or one still being written) says where it ends."""
    root = write_tensorboard(runs[:1], tmp_path / "tb", batch_tag=False)
    (f,) = (root / runs[0].name).glob("events.out.tfevents.*")
    os.truncate(f, f.stat().st_size - 30)  # into the last loss record
    with pytest.warns(UserWarning, match=r"events.out.tfevents.*ends in a partial record at byte"):
        (run,) = load_runs(root, batch_sizes={runs[0].name: runs[0].batch_size})
    assert run.step.size == runs[0].step.size - 1


def test_hf_loss_must_be_a_number(tmp_path):
    """Item 6: a loss of true (or a string) is refused naming the entry, not read as 1.0."""
    text = state_of("r", [1, 2, 3], [8, 16, 24], [3.0, 2.0, 1.0]).replace('"loss": 2.0', '"loss": true')
    put(tmp_path / "hf" / "r" / "trainer_state.json", text)
    with pytest.raises(ValueError, match=r"trainer_state.json: log_history entry 1: 'loss' is True, not a number"):
        load_runs(tmp_path / "hf")


def test_the_hf_state_with_the_most_steps_wins(runs, tmp_path):
    """Item 7: a top-level trainer_state.json with 30% of the steps loses to checkpoint-9999's, with a note."""
    r = runs[2]
    k = int(0.3 * r.step.size)
    early = Run(r.name, r.batch_size, r.step[:k], r.tokens[:k], r.loss[:k])
    put(tmp_path / "hf" / r.name / "trainer_state.json", hf_state(early, True))
    put(tmp_path / "hf" / r.name / "checkpoint-9999" / "trainer_state.json", hf_state(r, True))
    with pytest.warns(UserWarning, match=r"checkpoint-9999/trainer_state.json.*global_step.*newer"):
        (got,) = load_runs(tmp_path / "hf")
    np.testing.assert_array_equal(got.step, r.step)


def test_hf_log_history_out_of_order_or_partly_counted(tmp_path):
    """Item 12: a reversed log_history is sorted with a note (not 'batch_size must be positive'); decreasing
    tokens name the entry; num_input_tokens_seen in only some entries says how many."""
    text = state_of("r", [1, 2, 3, 4], [8, 16, 24, 32], [3.0, 2.5, 2.0, 1.5])
    state = json.loads(text)
    state["log_history"] = state["log_history"][:4][::-1] + state["log_history"][4:]
    put(tmp_path / "rev" / "r" / "trainer_state.json", json.dumps(state))
    with pytest.warns(UserWarning, match="not in step order"):
        (run,) = load_runs(tmp_path / "rev")
    assert run.batch_size == 8 and run.step.tolist() == [1, 2, 3, 4]
    put(tmp_path / "dec" / "r" / "trainer_state.json", state_of("r", [1, 2, 3], [8, 16, 4], [3.0, 2.0, 1.0]))
    with pytest.raises(
        ValueError,
        match=r"trainer_state.json: log_history entry 2 \(step 3\): num_input_tokens_"
        r"seen falls from 16 to 4",
    ):
        load_runs(tmp_path / "dec")
    state = json.loads(state_of("r", [1, 2, 3], [8, 16, 24], [3.0, 2.0, 1.0]))
    del state["log_history"][1]["num_input_tokens_seen"]
    put(tmp_path / "part" / "r" / "trainer_state.json", json.dumps(state))
    with pytest.raises(ValueError, match=r"num_input_tokens_seen is in 2 of 3 loss entries \(not in entry 1"):
        load_runs(tmp_path / "part")


def test_an_hf_folder_with_tensorboard_runs_inside_reads_as_hf(runs, tmp_path):
    """Item 13: the Trainer's own runs/ folder (report_to tensorboard) does not make it a TensorBoard tree;
    --format chooses."""
    tb = pytest.importorskip("torch.utils.tensorboard")
    root = write_hf(runs[:3], tmp_path / "hf_out")
    for r in runs[:3]:
        w = tb.SummaryWriter(log_dir=str(root / r.name / "runs" / "Nov30_12-00-00_host"))
        for s, L in zip(r.step, r.loss):
            w.add_scalar("train/loss", float(L), int(s))
        w.close()
    assert detect(root) == "hf"
    same(load_runs(root), runs[:3])
    with pytest.raises(ValueError, match=r"no batch size for run 'b\d+/runs/Nov30_12-00-00_host'"):
        load_runs(root, log_format="tensorboard")
    direct = load_runs(*(root / r.name / "trainer_state.json" for r in runs[:3]))  # named by their folders' paths
    assert [r.name for r in direct] == [str(root / r.name) for r in runs[:3]]
    assert [r.batch_size for r in direct] == [r.batch_size for r in runs[:3]]
    log = tmp_path / "log.txt"
    write_runs(runs[:3], tmp_path / "runs.csv")
    log.write_text((tmp_path / "runs.csv").read_text())
    same(load_runs(log, log_format="csv"), runs[:3])
    with pytest.raises(ValueError, match="^log_format: must be one of"):
        load_runs(log, log_format="xls")


def test_batch_sizes_from_a_mapping_file_for_names_with_commas(tmp_path):
    """Item 13: W&B names like 'bs=64,lr=1e-3' get their batch size from a JSON or TOML file."""
    p = put(tmp_path / "w.csv", 'Step,"bs=64,lr=1e-3 - loss","bs=128,lr=1e-3 - loss"\n1,3.0,2.9\n2,2.0,1.9\n')
    j = put(tmp_path / "b.json", json.dumps({"bs=64,lr=1e-3": 64, "bs=128,lr=1e-3": 128}))
    t = put(tmp_path / "b.toml", '"bs=64,lr=1e-3" = 64\n"bs=128,lr=1e-3" = 128\n')
    assert parse_batch_sizes(str(j)) == parse_batch_sizes(str(t)) == {"bs=64,lr=1e-3": 64.0, "bs=128,lr=1e-3": 128.0}
    got = {r.name: r.batch_size for r in load_runs(p, batch_sizes=parse_batch_sizes(str(j)))}
    assert got == {"bs=64,lr=1e-3": 64.0, "bs=128,lr=1e-3": 128.0}
    for text, match in (('{"a": -1}', "positive"), ('{"a": true}', "positive"), ("[1]", "mapping")):
        with pytest.raises(ValueError, match=match):
            parse_batch_sizes(str(put(tmp_path / "bad.json", text)))
    with pytest.raises(ValueError, match="no such file"):
        parse_batch_sizes(str(tmp_path / "missing.json"))
    r = dbs("fit", p, "--batch-size", t, "--format", "wandb", "--out", tmp_path / "o")
    assert "no batch size" not in r.stderr and "unrecognized" not in r.stderr, r.stderr
