"""The PyTorch trainer: a real tiny run, exact resume, the token ledger, non-finite stops."""

import csv
import json
import math
import os
import subprocess
import sys

import warnings

import numpy as np
from logs import comparable
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")  # CI installs the torch extra; the core install has none

from dbs_theory.schedules.batch_schedules import step_batch  # noqa: E402
from dbs_theory.logs.runs import load_runs  # noqa: E402
from validate import train as T  # noqa: E402
from validate import loop as L  # noqa: E402
from validate.checkpoint import load_checkpoint  # noqa: E402
from validate.data import load_corpus, stdlib_files  # noqa: E402
from validate.model import Transformer, preset  # noqa: E402


def cfg(tmp_path, name, **kw):
    base = dict(
        preset="tiny",
        seq_len=32,
        micro_batch=4,
        batch_size=256,
        tokens=12_800,
        lr=3e-3,
        eval_every=20,
        checkpoint_every=10,
        out=str(tmp_path / name),
    )
    base.update(kw)
    return T.TrainConfig(**base)


def test_model_shapes_and_counts():
    m = Transformer(preset("tiny"))
    x = torch.randint(0, 256, (2, 16))
    logits, loss = m(x, x)
    assert logits.shape == (2, 16, 256) and torch.isfinite(loss)
    assert 100_000 < m.n_params() < 300_000
    assert m.flops_per_token(16) > 6 * (m.n_params() - 256 * 64)


def test_default_corpus_is_deterministic_and_split_by_file():
    files = stdlib_files()
    assert files == sorted(files) and not any("site-packages" in str(f) for f in files)
    a, b = load_corpus(), load_corpus()
    assert a.sha256 == b.sha256 and a.val.size > 0 and a.train.size > 10 * a.val.size


def test_tiny_run_writes_a_valid_log(tmp_path):
    res = T.train(cfg(tmp_path, "run"), progress=False)
    (run,) = load_runs(tmp_path / "run" / "log.csv")
    assert run.step[-1] == res.steps == 50
    assert run.tokens[-1] == 12_800 and np.all(run.extra["world_size"] == 1)
    assert run.loss[-1] < run.loss[0]
    assert np.isfinite(run.extra["val_loss"]).sum() == 3  # every 20 steps, and at the end


def test_resume_is_bit_identical(tmp_path):
    T.train(cfg(tmp_path, "full"), progress=False)
    T.train(cfg(tmp_path, "cut", stop_at_tokens=5_000), progress=False)
    T.train(cfg(tmp_path, "cut"), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert comparable(tmp_path / "full" / "log.csv", "X") == comparable(tmp_path / "cut" / "log.csv", "X")


def test_token_ledger_across_batch_seq_len_change_and_resume(tmp_path, monkeypatch):
    sched = step_batch([3_000, 7_000], [256, 512, 384], unit="tokens")
    path = tmp_path / "sched.json"
    path.write_text(sched.to_json())
    spans = []
    real = L.batch_at

    def ledger(tokens, position, n_seq, seq_len, block=0):
        if block:  # a training read (evaluation reads the validation stream, unshuffled)
            spans.append((position, position + n_seq * seq_len))
        return real(tokens, position, n_seq, seq_len, block)

    monkeypatch.setattr(L, "batch_at", ledger)
    # sequence length 32 -> 64 at 5000 tokens and -> 16 at 9000 (mid-run switches, as in the ablation)
    c = cfg(
        tmp_path,
        "ledger",
        batch_schedule=str(path),
        eval_every=10_000,
        seq_len_schedule="5000:64,9000:16",
        micro_batch=2,
        data_block=64,
    )
    T.train(T.TrainConfig(**{**c.__dict__, "stop_at_tokens": 4_000}), progress=False)
    T.train(c, resume=True, progress=False)
    spans.sort()
    (run,) = load_runs(tmp_path / "ledger" / "log.csv")
    assert spans[0][0] == 0 and spans[-1][1] == run.tokens[-1] >= c.tokens
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 == b0, "a token position was skipped or repeated"
    assert set(np.unique(np.diff(run.tokens))) == {256.0, 512.0, 384.0}
    assert set(run.extra["seq_len"]) == {32.0, 64.0, 16.0}


@given(st.integers(1, 40), st.sampled_from([0, 8, 16]), st.integers(0, 500), st.integers(1, 300))
@settings(max_examples=60, deadline=None)
def test_block_shuffle_is_a_bijection_with_true_targets(nblocks, block, start, n):
    """Shuffled blocks visit every stream position once per pass, and every target is the text's next token."""
    from validate.data import batch_at, physical

    N = max(nblocks * max(block, 1), 8)
    tokens = np.arange(N, dtype=np.uint16)  # token value = its position
    nb = N // block if block else N
    period = nb * block if block else N
    idx = physical(start, period, N, block)
    assert np.unique(idx).size == period
    x, y = batch_at(tokens, start, 1, min(n, N), block)
    assert np.all(y == (x + 1) % N)


def test_seq_len_schedule_parsing():
    c = T.TrainConfig(seq_len=64, seq_len_schedule="2e6:128,3e6:32")
    assert [c.seq_len_at(d) for d in (0, 1.99e6, 2e6, 5e6)] == [64, 64, 128, 32]
    assert c.max_seq_len() == 128
    for bad in ("2e6", "2e6:x", "3e6:64,2e6:32", "0:64", "1e6:0"):
        with pytest.raises(ValueError, match="seq_len_schedule"):
            T.TrainConfig(seq_len_schedule=bad).validate()


def test_non_finite_loss_stops_cleanly(tmp_path):
    c = cfg(tmp_path, "boom", lr=1e6, grad_clip=0.0, checkpoint_every=1, lr_schedule="constant")
    with pytest.raises(T.NonFiniteLoss):
        T.train(c, progress=False)
    assert (tmp_path / "boom" / "ckpt.pt").exists()
    load_runs(tmp_path / "boom" / "log.csv")  # still well-formed


def test_dbs_train_cli_and_bad_resume(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbs_theory.cli",
            "train",
            "--preset",
            "tiny",
            "--tokens",
            "4096",
            "--batch-size",
            "512",
            "--seq-len",
            "32",
            "--micro-batch",
            "4",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (out / "ckpt.pt").write_bytes(b"not a checkpoint")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbs_theory.cli",
            "train",
            "--preset",
            "tiny",
            "--tokens",
            "8192",
            "--batch-size",
            "512",
            "--seq-len",
            "32",
            "--micro-batch",
            "4",
            "--out",
            str(out),
            "--resume",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "refusing checkpoint" in r.stderr and "corrupted" in r.stderr
    assert "Traceback" not in r.stderr


def test_dbs_train_without_torch_says_how_to_install():
    code = (
        "import sys; sys.modules['torch'] = None; from dbs_theory.cli import main; "
        "sys.exit(main(['train', '--preset', 'tiny']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        'dbs train: error: dbs train needs PyTorch: pip install "dbs-theory[torch]"'
    ]


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    """torchrun with 2 CPU processes (gloo) follows the single-process trajectory at the same
    global batch, through two batch-size changes (so the ranks must change accumulation in
    step, or the all-reduce would hang until the timeout): final parameters agree to 1e-5
    (float32 all-reduce order differs)."""
    sched = tmp_path / "sched.json"
    sched.write_text(step_batch([2048, 4096], [512, 1024, 768], unit="tokens").to_json())
    args = [
        "--preset",
        "tiny",
        "--tokens",
        "7168",
        "--batch-schedule",
        str(sched),
        "--seq-len",
        "32",
        "--micro-batch",
        "4",
        "--quiet",
        "--checkpoint-every",
        "1000",
    ]
    one = subprocess.run(
        [sys.executable, "-m", "validate.train", *args, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29531",
            "-m",
            "validate.train",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DBS_DDP_TIMEOUT": "60"},
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_checkpoint(tmp_path / "one" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "ckpt.pt")["model"]
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    (run,) = load_runs(tmp_path / "two" / "log.csv")
    assert np.all(run.extra["world_size"] == 2)
    assert list(np.diff(np.r_[0, run.tokens])) == [512] * 4 + [1024] * 2 + [768] * 4


def test_gns_estimator_recovers_known_noise():
    """Synthetic gradients with |G|^2 = 4 and tr Sigma = 50 (per example): the two-batch
    estimates, averaged, recover both and B_simple = 12.5 within 10%."""
    from validate.gns import GNSEstimator

    rng = np.random.default_rng(0)
    G = np.array([2.0, 0.0, 0.0, 0.0, 0.0])
    sd = np.sqrt(10.0)  # 5 coordinates x variance 10 = tr Sigma 50
    est = GNSEstimator(decay=0.999)
    for _ in range(20_000):
        small = G + sd * rng.standard_normal(5) / np.sqrt(8)
        big = G + sd * rng.standard_normal(5) / np.sqrt(64)
        est.update(small @ small, 8, big @ big, 64)
    assert est.g2 == pytest.approx(4.0, rel=0.1)
    assert est.tr == pytest.approx(50.0, rel=0.1)
    assert est.value == pytest.approx(12.5, rel=0.1)


def test_gns_is_logged_when_on(tmp_path):
    T.train(cfg(tmp_path, "gns", gns_every=2), progress=False)
    import csv

    rows = list(csv.DictReader((tmp_path / "gns" / "log.csv").open()))
    vals = [float(r["b_simple"]) for r in rows if r["b_simple"] not in ("", "nan")]
    assert len(vals) >= 10 and all(np.isfinite(vals))


def test_bf16_autocast_option_trains(tmp_path):
    res = T.train(cfg(tmp_path, "bf16", tokens=2048, dtype="bf16"), progress=False)
    assert np.isfinite(res.final_loss)
    with pytest.raises(ValueError, match="dtype"):
        T.train(cfg(tmp_path, "bad", dtype="fp64"), progress=False)


@pytest.mark.slow
def test_torch_compile_matches_eager(tmp_path):
    """The ``--compile 1`` path (inductor on CPU) trains and follows the eager trajectory."""
    eager = T.train(cfg(tmp_path, "eager", tokens=2048), progress=False)
    comp = T.train(cfg(tmp_path, "comp", tokens=2048, compile=1), progress=False)
    (a,), (b,) = load_runs(tmp_path / "eager" / "log.csv"), load_runs(tmp_path / "comp" / "log.csv")
    assert comp.steps == eager.steps == 8
    np.testing.assert_allclose(b.loss, a.loss, rtol=2e-3)


def test_a_batch_schedule_derived_at_another_learning_rate_warns(tmp_path):
    from dbs_theory.schedules.batch_schedules import step_batch
    from dbs_theory.measure.bopt_curve import LearningRateMismatch

    path = tmp_path / "s.json"
    path.write_text(step_batch([2_000], [128, 256], unit="tokens", lr=1e-2).to_json())
    with pytest.warns(LearningRateMismatch, match="1e-02|0.01"):
        T.batch_schedule(cfg(tmp_path, "a", batch_schedule=str(path), lr=3e-3))
    path.write_text(step_batch([2_000], [128, 256], unit="tokens", lr=3e-3).to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("error", LearningRateMismatch)
        T.batch_schedule(cfg(tmp_path, "b", batch_schedule=str(path), lr=3e-3))  # the same rate: silent


def test_the_old_batch_tokens_spelling_still_works_with_a_deprecation_warning(tmp_path):
    from validate.config import build_parser, config_from_args

    with pytest.warns(DeprecationWarning, match="batch_size"):
        c = config_from_args(build_parser().parse_args(["--batch-tokens", "512"]))
    assert c.batch_size == 512
    path = tmp_path / "old.json"
    path.write_text('{"batch_tokens": 1024, "tokens": 40000}')
    with pytest.warns(DeprecationWarning, match="batch_size"):
        c = config_from_args(build_parser().parse_args(["--config", str(path)]))
    assert c.batch_size == 1024 and c.tokens == 40000


class _MeanOfInputs(torch.nn.Module):
    """Stands in for a model in slice tests: its 'loss' is the mean input token id, so it shows what was read."""

    def forward(self, x, y):
        return None, x.double().mean()


def test_a_spread_held_out_slice_reads_blocks_from_all_of_the_validation_set():
    from validate.data import Corpus

    half = 4096
    val = np.concatenate([np.zeros(half), np.full(half, 100)]).astype(np.uint16)  # two halves told apart
    corpus = Corpus(np.zeros(10_000, np.uint16), val, 256, "halves", "-", 2)
    first = T.TrainConfig(seq_len=32, eval_block=0)
    spread = T.TrainConfig(seq_len=32, eval_block=64)
    assert L.evaluate(_MeanOfInputs(), corpus, first, "cpu", tokens=half // 2) == 0.0  # the first tokens only
    m = L.evaluate(_MeanOfInputs(), corpus, spread, "cpu", tokens=half // 2)
    assert 30 < m < 70  # blocks from both halves (64 blocks of 128: a fair share of each)
    tiny = Corpus(corpus.train, val[:100], 256, "short", "-", 2)  # shorter than two blocks: read in order
    assert L.evaluate(_MeanOfInputs(), tiny, spread, "cpu", tokens=64) == 0.0


@pytest.mark.parametrize("block, ok", [(0, True), (32, True), (96, True), (33, False), (16, False), (-32, False)])
def test_eval_block_must_be_whole_sequences(block, ok):
    c = T.TrainConfig(seq_len=32, eval_block=block)
    if ok:
        assert c.validate() is c
    else:
        with pytest.raises(ValueError, match="eval_block"):
            c.validate()


def test_a_checkpoint_older_than_a_config_field_still_resumes(tmp_path):
    """A checkpoint written before eval_block existed (its config lacks the key) resumes a run that leaves
    the field at its default, bit-identically; one that sets it is refused."""
    from validate.checkpoint import save_checkpoint

    T.train(cfg(tmp_path, "full"), progress=False)
    T.train(cfg(tmp_path, "cut", stop_at_tokens=5_000), progress=False)
    ck = load_checkpoint(tmp_path / "cut" / "ckpt.pt")
    del ck["config"]["eval_block"]
    save_checkpoint(tmp_path / "cut" / "ckpt.pt", ck)
    T.train(cfg(tmp_path, "cut"), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    T.train(cfg(tmp_path, "cut2", stop_at_tokens=5_000), progress=False)
    ck = load_checkpoint(tmp_path / "cut2" / "ckpt.pt")
    del ck["config"]["eval_block"]
    save_checkpoint(tmp_path / "cut2" / "ckpt.pt", ck)
    with pytest.raises(Exception, match="eval_block"):
        T.train(cfg(tmp_path, "cut2", eval_block=32), resume=True, progress=False)


def test_the_run_key_names_what_a_run_computes_not_where_it_is_written(tmp_path):
    """config_key: the same in any folder (out, run, the schedule file's path, a branch parent's root) and
    different when anything computed differs (a field, the schedule's content)."""
    from validate.experiments.run_cache import config_key

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d, segs in (("a", "1"), ("b", "1")):
        (tmp_path / d / "s.json").write_text(segs)
    one = cfg(tmp_path / "x", "x", batch_schedule=str(tmp_path / "a" / "s.json"))
    two = cfg(tmp_path / "y", "y", batch_schedule=str(tmp_path / "b" / "s.json"))
    assert config_key(one) == config_key(two)
    (tmp_path / "b" / "s.json").write_text("2")
    assert config_key(one) != config_key(two)
    assert config_key(cfg(tmp_path, "x")) != config_key(cfg(tmp_path, "x", eval_block=32))
    br = lambda root: cfg(tmp_path, "x", branch_from=f"{root}/runs/best-s0-1234abcd/ckpt.pt")
    assert config_key(br("/r1")) == config_key(br("/r2"))


def _rule_fit(tmp_path):
    """A sweep's Bmin per target (fit.json rows as dbs fit writes them) spanning the tiny model's losses."""
    rows = [
        dict(target=t, bmin_floor=b, bmin_floor_status="ok") for t, b in ((5.0, 128.0), (4.0, 256.0), (3.0, 1024.0))
    ]
    (tmp_path / "fit.json").write_text(json.dumps(dict(rows=rows, lr=3e-3)))
    return str(tmp_path / "fit.json")


def test_an_online_rule_resumed_mid_way_decides_as_the_uninterrupted_run(tmp_path):
    """floor-ratio: the batch grows at decision points only, never falls, and a run stopped between decisions and
    resumed logs the same batches and losses (the rule's readings and decisions are in the checkpoint)."""
    kw = dict(
        batch_size=64,
        micro_batch=2,
        batch_rule="floor-ratio",
        rule_fit=_rule_fit(tmp_path),
        rule_every=600,
        decay=0.25,
        tokens=6_400,
        eval_tokens=1_024,
    )
    full = T.train(cfg(tmp_path, "full", **kw), progress=False)
    T.train(cfg(tmp_path, "cut", stop_at_tokens=2_500, **kw), progress=False)
    T.train(cfg(tmp_path, "cut", **kw), resume=True, progress=False)
    assert comparable(tmp_path / "full" / "log.csv", "X") == comparable(tmp_path / "cut" / "log.csv", "X")
    rows = list(csv.DictReader((tmp_path / "full" / "log.csv").open()))
    B, D = (np.array([float(r[k]) for r in rows]) for k in ("batch_size", "tokens"))
    assert np.all(np.diff(B) >= 0) and B[-1] > 2 * B[0]
    changed = D[np.nonzero(np.diff(B))[0]]  # data at the end of the step before each change
    assert len(full.decisions) == np.count_nonzero(np.diff(B)) + 1
    assert all(d in {a for a, _ in full.decisions} for d in changed)


def test_the_noise_scale_rule_takes_the_logged_noise_scale_at_each_decision_and_resumes_exactly(tmp_path):
    """Each decision is the logged B_simple moving average (whole micro-batches, never lower, at most tokens/10);
    stopped and resumed, the run logs the same noise scales and batches (the moving averages are checkpointed)."""
    kw = dict(
        batch_size=64,
        micro_batch=1,
        gns_every=1,
        batch_rule="noise-scale",
        rule_every=500,
        tokens=6_400,
        eval_tokens=1_024,
    )
    c = cfg(tmp_path, "ns", **kw)
    T.train(c, progress=False)
    T.train(cfg(tmp_path, "cut", stop_at_tokens=2_500, **kw), progress=False)
    T.train(cfg(tmp_path, "cut", **kw), resume=True, progress=False)
    assert comparable(tmp_path / "ns" / "log.csv", "X") == comparable(tmp_path / "cut" / "log.csv", "X")
    rows = list(csv.DictReader((tmp_path / "ns" / "log.csv").open()))
    B, D = [float(r["batch_size"]) for r in rows], [float(r["tokens"]) for r in rows]
    last, checked = 0.0, 0
    for k in range(len(rows) - 1):
        if D[k] >= last + 500:  # a decision after step k: the batch from there on
            read = float(rows[k]["b_simple"] or "nan")
            want = math.floor(read / 32) * 32 if math.isfinite(read) and read > 0 else 0.0
            assert B[k + 1] == min(max(B[k], want), c.tokens / 10)
            last, checked = D[k], checked + 1
        else:
            assert B[k + 1] == B[k]
    assert checked >= 8


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(batch_rule="paper"), "must be noise-scale or floor-ratio"),
        (dict(batch_rule="noise-scale"), "set gns_every"),
        (dict(batch_rule="floor-ratio"), "needs it"),
        (dict(rule_every=100.0), "needs batch_rule"),
        (dict(batch_rule="noise-scale", gns_every=1, rule_max_batch=32.0), "below the starting batch_size"),
        (dict(batch_rule="noise-scale", gns_every=1, rule_every=1e9), "below the run"),
        (dict(batch_rule="noise-scale", gns_every=1, batch_schedule="s.json"), "give one"),
    ],
)
def test_online_rule_options_are_refused_in_one_line(tmp_path, kw, words):
    with pytest.raises(ValueError, match=words):
        cfg(tmp_path, "x", **kw).validate()


@pytest.mark.parametrize(
    "text, words",
    [
        ("{}", "rows is missing"),
        ("[1]", "expected a JSON object"),
        ("{", "malformed JSON"),
        ('{"rows": [{"target": 3.0}]}', "identifies Bmin at 0 target"),
    ],
)
def test_a_rule_fit_that_is_not_a_usable_table_is_refused_naming_why(tmp_path, text, words):
    (tmp_path / "f.json").write_text(text)
    c = cfg(tmp_path, "x", batch_rule="floor-ratio", rule_fit=str(tmp_path / "f.json"))
    with pytest.raises(ValueError, match=words):
        T.batch_schedule(c)
