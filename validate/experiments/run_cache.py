"""The run cache: one training run per folder, named by its config, trained once, resumed when cut.

Each run is a :class:`~validate.config.TrainConfig`. Its folder under
``<root>/runs/`` is named by a label plus a hash of the config, so two
experiments that need the same run share it, and a finished run (one with
``done.json`` matching its log) is never trained again. :func:`train_one`
trains (or resumes) one run, in this process or a subprocess
(``python -m validate.train``), holding the folder's claim so two runners on
shared storage never train it twice. The launchers
(:mod:`validate.experiments.runner` here, :mod:`validate.experiments.launch`
on a cluster) call it; it knows neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from dbs_theory.io import FolderLocked, atomic_write, folder_lock

from ..config import TrainConfig

__all__ = [
    "RunSpec",
    "RunFailed",
    "config_key",
    "run_dir",
    "is_done",
    "train_one",
    "interrupted_message",
    "Children",
    "restore_stored",
]

#: Config fields that say where a run goes, not what it computes.
_PLACE = ("out", "run")


class RunFailed(ChildProcessError):
    """A training run failed (an ``OSError``, so ``dbs`` reports it in one line with exit code 2)."""


@dataclass(frozen=True)
class RunSpec:
    """A labelled run: ``label`` is for people, ``config`` says what is trained."""

    label: str
    config: TrainConfig


def config_key(cfg: TrainConfig) -> str:
    """Hash of what a run computes, the same in any results folder: its config without the paths it is
    written to, with a batch schedule by its file's content, a branch by its parent run's folder name
    (itself ``<label>-<key>``), and the default corpus by the Python version whose standard library it is."""
    d = {k: v for k, v in asdict(cfg).items() if k not in _PLACE}
    if d.get("batch_schedule"):
        d["batch_schedule"] = "sha256:" + hashlib.sha256(Path(d["batch_schedule"]).read_bytes()).hexdigest()
    if d.get("branch_from"):
        d["branch_from"] = Path(d["branch_from"]).parent.name
    if d.get("data") is None:
        d["data"] = "python-stdlib-%d.%d" % sys.version_info[:2]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def run_dir(root, spec: RunSpec) -> Path:
    """Where ``spec`` is trained: ``<root>/runs/<label>-<hash>``, or the folder of an identical
    config trained under another label (the hash decides, so it is trained once)."""
    key = config_key(spec.config)
    same = sorted((Path(root) / "runs").glob(f"*-{key}"))
    return same[0] if same else Path(root) / "runs" / f"{spec.label}-{key}"


def _log_fingerprint(d: Path) -> dict:
    """Rows, SHA-256 and final token count of ``d/log.csv`` (what ``done.json`` vouches for)."""
    log = d / "log.csv"
    if not log.exists():
        return dict(log_rows=0, log_sha256=None, final_tokens=None)
    data = log.read_bytes()
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    last = lines[-1].split(",") if len(lines) > 1 else None
    head = lines[0].split(",") if lines else []
    tokens = float(last[head.index("tokens")]) if last and "tokens" in head else None
    return dict(log_rows=max(0, len(lines) - 1), log_sha256=hashlib.sha256(data).hexdigest(), final_tokens=tokens)


def _done_state(d: Path):
    """``"done"``, ``"stale"`` (done.json no longer matches the log) or ``"todo"``."""
    try:
        done = json.loads((d / "done.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "todo"
    except (OSError, ValueError):
        return "stale"
    fp = _log_fingerprint(d)
    return "done" if all(done.get(k) == v for k, v in fp.items()) else "stale"


def is_done(root, spec: RunSpec) -> bool:
    """True when the run finished and its log is exactly the one ``done.json`` recorded."""
    return _done_state(run_dir(root, spec)) == "done"


class Children:
    """Training subprocesses in flight, so Ctrl-C can stop them and cancel the queue."""

    def __init__(self):
        self.procs, self.lock, self.cancelled = set(), threading.Lock(), threading.Event()

    def start(self, cmd, **kw):
        with self.lock:
            if self.cancelled.is_set():
                raise KeyboardInterrupt("cancelled")
            p = subprocess.Popen(cmd, **kw)
            self.procs.add(p)
        return p

    def done(self, p):
        with self.lock:
            self.procs.discard(p)

    def stop_all(self, grace=8.0):
        """Ask every child to checkpoint and stop (SIGINT); kill what is left after ``grace`` s."""
        self.cancelled.set()
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def _subprocess(children, d, cfg_path, resume, overwrite, threads, timeout):
    cmd = [sys.executable, "-m", "validate.train", "--config", str(cfg_path), "--quiet"]
    cmd += ["--resume"] if resume else ["--overwrite"] if overwrite else []
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TORCHINDUCTOR_COMPILE_THREADS": str(threads),
    }  # torch.compile's workers stay on the run's share
    with open(d / "stderr.txt", "w") as err:
        # Its own process group: a terminal's Ctrl-C reaches only us, and we stop the children in order.
        p = children.start(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return -9
        finally:
            children.done(p)


def restore_stored(root, specs, store) -> list:
    """Write every run of ``specs`` that is not done here but is in the log store into its folder; the
    specs still to train. With ``store.from_logs`` a run the store lacks is refused in one line before
    anything is written (nothing is trained)."""
    todo = [s for s in specs if not is_done(root, s)]
    if store is None:
        return todo
    missing = [s for s in todo if not store.has(config_key(s.config))]
    if missing and store.from_logs:
        raise ValueError(
            f"--from-logs: {len(missing)} run(s) are not in the log store {store.path} (first: "
            f"{missing[0].label!r}, key {config_key(missing[0].config)}); drop --from-logs to train "
            "them"
        )
    for s in todo:
        key, d = config_key(s.config), run_dir(root, s)
        if store.has(key):
            d.mkdir(parents=True, exist_ok=True)
            with _claim(d):  # not while another runner trains or restores it
                if _done_state(d) != "done":
                    store.restore(key, d)
    return [s for s in todo if not is_done(root, s)]


def train_one(root, spec, threads, timeout, inprocess=False, children=None, store=None):
    d = run_dir(root, spec)
    d.mkdir(parents=True, exist_ok=True)
    with _claim(d):  # another `dbs validate` on the same folder waits here, then finds the run done
        state = _done_state(d)
        if state == "done":
            return d
        if state == "stale":
            warnings.warn(
                f"{d}: log.csv no longer matches done.json (truncated or edited?); training the run again", stacklevel=2
            )
            (d / "done.json").unlink()
        cfg = TrainConfig(**{**asdict(spec.config), "out": str(d), "run": spec.label})
        with atomic_write(d / "request.json") as fh:
            json.dump(asdict(cfg), fh, indent=1)
        t0 = time.perf_counter()
        resume = state == "todo" and (d / "ckpt.pt").exists()
        rc = _attempt(d, spec, cfg, resume, threads, timeout, inprocess, children)
        if rc == 4:  # the log lost rows its checkpoint covers: start again from scratch
            warnings.warn(f"{d}: log rows were lost; training the run again", stacklevel=2)
            rc = _attempt(d, spec, cfg, False, threads, timeout, inprocess, children)
        if rc != 0:
            err = d / "stderr.txt"
            tail = (err.read_text().strip().splitlines()[-1:] if err.exists() else []) or ["(no message)"]
            raise RunFailed(f"run {spec.label!r} failed (exit {rc}): {tail[0]}; see {d / 'stderr.txt'}")
        with atomic_write(d / "done.json") as fh:
            json.dump(
                dict(label=spec.label, seconds=time.perf_counter() - t0, config=asdict(cfg), **_log_fingerprint(d)),
                fh,
                indent=1,
            )
        if store is not None:
            store.put(config_key(spec.config), d)
    return d


def _attempt(d, spec, cfg, resume, threads, timeout, inprocess, children):
    """Train once; the exit code (0 ok, 4 inconsistent folder); Ctrl-C propagates."""
    if not inprocess:
        rc = _subprocess(children, d, d / "request.json", resume, not resume, threads, timeout)
        if rc in (130, -signal.SIGINT) or children.cancelled.is_set():
            raise KeyboardInterrupt(f"interrupted; run {spec.label!r} was checkpointed")
        return rc
    from ..train import Interrupted, NonFiniteLoss, RunFolderInconsistent, train

    try:  # one job at a time: skip the interpreter start (seconds per run at the tiny tier)
        train(cfg, resume=resume, progress=False, overwrite=not resume)
    except Interrupted:
        raise KeyboardInterrupt(f"interrupted; run {spec.label!r} was checkpointed") from None
    except NonFiniteLoss as exc:
        raise RunFailed(f"run {spec.label!r} failed: {exc}") from None
    except RunFolderInconsistent:
        return 4
    return 0


@contextlib.contextmanager
def _claim(d: Path):
    """Exclusive use of run folder ``d`` among runners; waits (polling) while another process has it."""
    while True:
        try:
            with folder_lock(d, name=".claim"):
                yield
                return
        except FolderLocked:
            time.sleep(2.0)


def interrupted_message(root, todo) -> str:
    """One line on what an interrupt left of the runs in ``todo``: finished, checkpointed (resumable) or
    not started / without a checkpoint (trained from the start on a rerun)."""
    done = [s.label for s in todo if is_done(root, s)]
    ckpt = [s.label for s in todo if s.label not in done and (run_dir(root, s) / "ckpt.pt").exists()]
    none = [s.label for s in todo if s.label not in done and s.label not in ckpt]
    parts = [
        f"{len(done)} finished",
        f"{len(ckpt)} checkpointed" + (f" ({', '.join(ckpt)})" if ckpt else ""),
        f"{len(none)} without a checkpoint" + (f" ({', '.join(none)}: they start over)" if none else ""),
    ]
    return "interrupted: of the runs this command trains, " + ", ".join(parts) + "; rerun the same command to resume"
