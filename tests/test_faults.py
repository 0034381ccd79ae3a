"""Faults a real user meets: hostile checkpoints, Ctrl-C, two jobs in one folder, lost rows, a full disk.

Each test drives the real ``dbs`` command in a subprocess (signals, locks
and resource limits need a real process) and checks the one-line contract:
exit code, a single stderr line naming the problem, nothing lost or executed.
"""

import glob
import json
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

torch = pytest.importorskip("torch")

from validate.checkpoint import FORMAT, load_checkpoint  # noqa: E402
from dbs_cli import dbs as in_process  # noqa: E402
from logs import comparable  # noqa: E402

TRAIN = [
    "train",
    "--preset",
    "tiny",
    "--tokens",
    "4096",
    "--seq-len",
    "32",
    "--micro-batch",
    "4",
    "--batch-size",
    "256",
    "--checkpoint-every",
    "4",
    "--quiet",
]


def dbs(args, **kw):
    """``dbs ARGS`` in this process (tests/dbs_cli.py); in a subprocess where ``kw`` sets something only a
    process has (``preexec_fn``: a file-size limit)."""
    if not kw:
        return in_process(args)
    return subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", *map(str, args)], capture_output=True, text=True, timeout=300, **kw
    )


def one_line(r, code):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (4096 tokens) to copy from."""
    out = tmp_path_factory.mktemp("run") / "r"
    r = dbs([*TRAIN, "--out", out])
    assert r.returncode == 0, r.stderr
    return out


def copy_run(trained, tmp_path, name="r"):
    dst = tmp_path / name
    shutil.copytree(trained, dst)
    return dst


class _Evil:
    """Unpickling this calls ``open(marker, 'w')``: it creates a file, as an attack would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["resume", "branch"])
def test_a_malicious_checkpoint_executes_nothing(tmp_path, trained, how):
    out = copy_run(trained, tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": {"model": _Evil(marker)}}, evil)
    torch.load(evil, weights_only=False)["payload"]["model"].close()  # an unsafe load runs it ...
    assert marker.exists()
    marker.unlink()
    if how == "resume":
        shutil.copy(evil, out / "ckpt.pt")
        r = dbs([*TRAIN, "--out", out, "--resume", "--tokens", "8192"])
    else:
        r = dbs([*TRAIN, "--out", tmp_path / "b", "--branch-from", evil])
    msg = one_line(r, 2)
    assert not marker.exists(), "unpickling the checkpoint ran code"  # ... and not under dbs
    assert "refusing checkpoint" in msg and ("evil.pt" in msg or "ckpt.pt" in msg)


def test_old_format_or_foreign_pickle_is_refused(tmp_path, trained):
    out = copy_run(trained, tmp_path)
    sd = load_checkpoint(out / "ckpt.pt")
    torch.save(dict(model=sd["model"], opt=sd["opt"], step=sd["step"], tokens=sd["tokens"]), out / "ckpt.pt")
    msg = one_line(dbs([*TRAIN, "--out", out, "--resume", "--tokens", "8192"]), 2)
    assert "not a dbs-theory-ckpt/2 checkpoint" in msg
    (out / "ckpt.pt").write_bytes(pickle.dumps({"a": 1}))
    msg = one_line(dbs([*TRAIN, "--out", out, "--resume", "--tokens", "8192"]), 2)
    assert "ckpt.pt" in msg and "refusing" in msg


def test_flipped_bytes_in_tensor_data_are_refused(tmp_path, trained):
    out = copy_run(trained, tmp_path)
    path = out / "ckpt.pt"
    with zipfile.ZipFile(path) as z:  # the largest stored tensor, found by its place in the archive
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw = bytearray(path.read_bytes())
    mid = start + info.file_size // 2
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    path.write_bytes(bytes(raw))
    log_before = (out / "log.csv").read_text()
    msg = one_line(dbs([*TRAIN, "--out", out, "--resume", "--tokens", "8192"]), 2)
    assert "corrupted" in msg and "checksum" in msg
    assert (out / "log.csv").read_text() == log_before


def test_resuming_a_finished_run_is_a_noop(tmp_path, trained):
    out = copy_run(trained, tmp_path)
    log_before = (out / "log.csv").read_text()
    r = dbs([*TRAIN, "--out", out, "--resume"])
    assert r.returncode == 0, r.stderr
    assert "already finished" in r.stdout and "nothing to do" in r.stdout
    assert (out / "log.csv").read_text() == log_before


def test_a_fresh_start_into_a_run_folder_is_refused_unless_overwrite(tmp_path, trained):
    out = copy_run(trained, tmp_path)
    log_before = (out / "log.csv").read_text()
    msg = one_line(dbs([*TRAIN, "--out", out]), 2)
    assert "already holds a run" in msg and "--overwrite" in msg
    assert (out / "log.csv").read_text() == log_before  # not truncated
    rows_before = comparable(out / "log.csv")
    r = dbs([*TRAIN, "--out", out, "--overwrite"])
    assert r.returncode == 0, r.stderr
    assert comparable(out / "log.csv") == rows_before  # same config, same seed: the same run again


def test_a_second_trainer_on_the_same_folder_fails_naming_the_holder(tmp_path):
    out = tmp_path / "shared"
    first = subprocess.Popen(
        [sys.executable, "-m", "dbs_theory.cli", *TRAIN, "--tokens", "4000000", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        msg = one_line(dbs([*TRAIN, "--out", out, "--resume"]), 2)
        assert "in use by pid" in msg and str(first.pid) in msg
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert (out / "ckpt.pt").exists()  # Ctrl-C checkpointed the first trainer at a step boundary


def _rows(path):
    return path.read_text().count("\n") - 1 if path.exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_checkpoints_dbs_train_and_resume_matches_an_unbroken_run(tmp_path, sig):
    """Ctrl-C, or the SIGTERM a scheduler sends at a time limit: a checkpoint at a step boundary, one line,
    exit 130; --resume then ends exactly where the uninterrupted run did."""
    long = [*TRAIN, "--tokens", "20480"]  # 80 steps: the signal lands well before the end (3 rows)
    assert dbs([*long, "--out", tmp_path / "ref"]).returncode == 0
    out = tmp_path / "cut"
    p = subprocess.Popen(
        [sys.executable, "-m", "dbs_theory.cli", *long, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _rows(out / "log.csv") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert p.returncode == 130 and len(lines) == 1 and "--resume" in lines[0], err
    assert load_checkpoint(out / "ckpt.pt")["tokens"] < 20480
    assert dbs([*long, "--out", out, "--resume"]).returncode == 0
    assert comparable(out / "log.csv", "X") == comparable(tmp_path / "ref" / "log.csv", "X")


def _processes_naming(text):
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for cmd in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmd, "rb") as f:
                if text.encode() in f.read():
                    pids.append(cmd.split("/")[2])
        except OSError:  # the process ended while we looked
            pass
    return pids


def test_a_log_that_lost_rows_behind_its_checkpoint_is_refused(tmp_path, trained):
    out = copy_run(trained, tmp_path)
    lines = (out / "log.csv").read_text().splitlines(keepends=True)
    (out / "log.csv").write_text("".join(lines[:3]))
    msg = one_line(dbs([*TRAIN, "--out", out, "--resume"]), 2)  # a finished run: its last row is gone
    assert "log rows were lost" in msg
    part = tmp_path / "part"
    assert dbs([*TRAIN, "--out", part, "--stop-at-tokens", "2048"]).returncode == 0
    lines = (part / "log.csv").read_text().splitlines(keepends=True)
    (part / "log.csv").write_text("".join(lines[:3]))
    msg = one_line(dbs([*TRAIN, "--out", part, "--resume"]), 2)  # a partial run: rows before its checkpoint
    assert "log rows were lost" in msg and "--overwrite" in msg


def _limit_file_size(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return apply


def test_a_full_disk_while_checkpointing_keeps_the_old_checkpoint(tmp_path):
    out = tmp_path / "r"
    r = dbs([*TRAIN, "--out", out, "--stop-at-tokens", "1024"])
    assert r.returncode == 0, r.stderr
    before = (out / "ckpt.pt").read_bytes()
    # Files may not grow past half a checkpoint: the next checkpoint write fails as on a full disk.
    r = dbs([*TRAIN, "--out", out, "--resume"], preexec_fn=_limit_file_size(len(before) // 2))
    msg = one_line(r, 2)
    assert "cannot write checkpoint" in msg and "previous checkpoint is kept" in msg
    assert (out / "ckpt.pt").read_bytes() == before
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_an_edited_schedule_file_is_noticed_on_resume(tmp_path):
    sched = tmp_path / "s.json"
    sched.write_text(
        json.dumps({"unit": "tokens", "segments": [{"from": 0, "batch_size": 256}, {"from": 2048, "batch_size": 512}]})
    )
    out = tmp_path / "r"
    r = dbs([*TRAIN, "--out", out, "--batch-schedule", sched, "--stop-at-tokens", "1024"])
    assert r.returncode == 0, r.stderr
    sched.write_text(sched.read_text().replace("512", "1024"))
    msg = one_line(dbs([*TRAIN, "--out", out, "--batch-schedule", sched, "--resume"]), 2)
    assert "contents of the batch_schedule or rule_fit file" in msg


def test_a_schedule_in_samples_is_converted_to_tokens(tmp_path):
    sched = tmp_path / "s.json"
    sched.write_text(
        json.dumps({"unit": "samples", "segments": [{"from": 0, "batch_size": 8}, {"from": 64, "batch_size": 16}]})
    )
    out = tmp_path / "r"
    r = dbs([*TRAIN, "--out", out, "--batch-schedule", sched])
    assert r.returncode == 0, r.stderr
    import csv

    rows = list(csv.DictReader((out / "log.csv").open()))
    # 8 samples of 32 tokens until 64 samples = 2048 tokens, then 16 samples = 512 tokens.
    assert {int(r["batch_size"]) for r in rows if int(r["tokens"]) <= 2048} == {256}
    assert {int(r["batch_size"]) for r in rows if int(r["tokens"]) > 2304} == {512}


def _summary_claims(root):
    s = json.loads((root / "sweep" / "summary.json").read_text())
    return json.dumps(s["claims"], sort_keys=True)


@pytest.mark.slow
@pytest.mark.parametrize("jobs, sig", [(1, signal.SIGINT), (2, signal.SIGTERM)])
def test_ctrl_c_stops_validate_and_a_rerun_gives_identical_summaries(tiny_results, tmp_path, jobs, sig):
    """The reference is the session's uninterrupted tiny sweep (``validate all``, one job)."""
    ref, root = tiny_results[0], tmp_path / "cut"
    cmd = [
        sys.executable,
        "-m",
        "dbs_theory.cli",
        "validate",
        "sweep",
        "--tier",
        "tiny",
        "--quiet",
        "--out",
        str(root),
        "--jobs",
        str(jobs),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # during the first run: a few logged steps, nothing finished
        logs = glob.glob(str(root / "runs" / "*" / "log.csv"))
        if logs and sum(open(f).read().count("\n") for f in logs) > 4:
            break
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)  # a hang fails here; how fast it stops is not asserted (load varies)
    lines = err.strip().splitlines()
    assert p.returncode == 130 and len(lines) == 1 and "rerun" in lines[0], err
    assert not _processes_naming(str(root)), "training processes outlived dbs validate"
    assert not glob.glob(str(root / "runs" / "*" / "done.json")) or jobs > 1
    r = dbs(["validate", "sweep", "--tier", "tiny", "--quiet", "--out", root, "--jobs", jobs])
    assert r.returncode == 0, r.stderr
    assert _summary_claims(root) == _summary_claims(ref)


def _cache(tmp_path, jobs=1):
    from validate.experiments.common import config_for
    from validate.experiments.runner import RunSpec, run_dir, train_runs
    from validate.experiments.tiers import get_tier

    spec = RunSpec("a", config_for(get_tier("tiny"), 512, batch=128))
    return (lambda: train_runs(tmp_path, [spec], jobs=jobs, progress=False)), run_dir(tmp_path, spec), spec


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_run_cache_retrains_a_log_truncated_after_done(tmp_path, jobs):
    from validate.experiments.runner import is_done

    train, d, spec = _cache(tmp_path, jobs)
    train()
    full, rows = (d / "log.csv").read_text(), comparable(d / "log.csv")
    (d / "log.csv").write_text("".join(full.splitlines(keepends=True)[:2]))
    assert not is_done(tmp_path, spec)  # done.json no longer vouches for this log
    with pytest.warns(UserWarning, match="no longer matches done.json"):
        train()
    assert comparable(d / "log.csv") == rows and is_done(tmp_path, spec)  # trained again, the same run


def test_the_run_cache_takes_a_final_checkpoint_without_done_json_as_done(tmp_path):
    train, d, spec = _cache(tmp_path)
    train()
    full = (d / "log.csv").read_text()
    mtime = (d / "ckpt.pt").stat().st_mtime_ns
    (d / "done.json").unlink()  # killed between the final checkpoint and done.json
    train()
    assert (d / "done.json").exists() and (d / "log.csv").read_text() == full
    assert (d / "ckpt.pt").stat().st_mtime_ns == mtime  # resumed as a no-op: nothing trained again


@pytest.mark.parametrize("apart, stops_at_once", [(False, False), (True, True)])
def test_a_second_stop_signal_skips_the_checkpoint_only_when_it_is_a_new_interrupt(monkeypatch, apart, stops_at_once):
    """A terminal's Ctrl-C reaches a launcher's job and the launcher passes it on; the two
    copies within SAME_INTERRUPT seconds are one interrupt (checkpoint, then stop), a later one stops at once."""
    pytest.importorskip("torch")
    from validate import train as T

    if apart:
        monkeypatch.setattr(T, "SAME_INTERRUPT", 0.0)
    with T._stop_flag() as flag:
        signal.raise_signal(signal.SIGTERM)
        assert flag["stop"]
        if stops_at_once:
            time.sleep(0.01)
            with pytest.raises(KeyboardInterrupt, match="interrupted twice"):
                signal.raise_signal(signal.SIGINT)
        else:
            signal.raise_signal(signal.SIGINT)  # the same interrupt again: still a checkpointed stop
            assert flag["stop"]
