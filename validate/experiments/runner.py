"""Training many runs: a content-addressed run cache, parallel jobs, resume.

Each run is a :class:`~validate.config.TrainConfig`. Its folder under
``<root>/runs/`` is named by a label plus a hash of the config, so two
experiments that need the same run share it, and a finished run (one with
``done.json``) is never trained again. An interrupted run resumes from its
checkpoint. Runs train in subprocesses (``python -m validate.train``),
``jobs`` at a time, each on ``cpus // jobs`` threads; with one job they
train in this process.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from dbs_theory.io import atomic_write

from ..config import TrainConfig

__all__ = ["RunSpec", "run_dir", "train_runs", "is_done", "RunFailed"]

#: Config fields that say where a run goes, not what it computes.
_PLACE = ("out", "run")


class RunFailed(ChildProcessError):
    """A training run failed (an ``OSError``, so ``dbs`` reports it in one line with exit code 2)."""


@dataclass(frozen=True)
class RunSpec:
    """A labelled run: ``label`` is for people, ``config`` says what is trained."""

    label: str
    config: TrainConfig


def _key(cfg: TrainConfig) -> str:
    d = {k: v for k, v in asdict(cfg).items() if k not in _PLACE}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def run_dir(root, spec: RunSpec) -> Path:
    """Where ``spec`` is trained: ``<root>/runs/<label>-<hash>``, or the folder of an identical
    config trained under another label (the hash decides, so it is trained once)."""
    key = _key(spec.config)
    same = sorted((Path(root) / "runs").glob(f"*-{key}"))
    return same[0] if same else Path(root) / "runs" / f"{spec.label}-{key}"


def is_done(root, spec: RunSpec) -> bool:
    return (run_dir(root, spec) / "done.json").exists()


def _train_one(root, spec, threads, timeout, inprocess=False):
    d = run_dir(root, spec)
    cfg = TrainConfig(**{**asdict(spec.config), "out": str(d), "run": spec.label})
    d.mkdir(parents=True, exist_ok=True)
    with atomic_write(d / "request.json") as fh:
        json.dump(asdict(cfg), fh, indent=1)
    cmd = [sys.executable, "-m", "validate.train", "--config", str(d / "request.json"), "--quiet"]
    if (d / "ckpt.pt").exists():
        cmd.append("--resume")  # an interrupted run continues where its checkpoint left off
    t0 = time.perf_counter()
    if inprocess:  # one job at a time: skip the interpreter start (seconds per run at the tiny tier)
        from ..train import NonFiniteLoss, train

        try:
            train(cfg, resume=(d / "ckpt.pt").exists(), progress=False)
        except NonFiniteLoss as exc:
            raise RunFailed(f"run {spec.label!r} failed: {exc}") from None
    else:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with open(d / "stderr.txt", "w") as err:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=timeout)
    if not inprocess and r.returncode != 0:
        tail = (d / "stderr.txt").read_text().strip().splitlines()[-1:] or ["(no message)"]
        raise RunFailed(f"run {spec.label!r} failed (exit {r.returncode}): {tail[0]}; see {d / 'stderr.txt'}")
    with atomic_write(d / "done.json") as fh:
        json.dump(dict(label=spec.label, seconds=time.perf_counter() - t0, config=asdict(cfg)), fh, indent=1)
    return d


def train_runs(root, specs, jobs=1, progress=True, desc="runs", timeout=None) -> dict:
    """Train every spec not yet done; return ``{label: run folder}`` for all of them.

    Parameters
    ----------
    root : path             Results root; runs go under ``<root>/runs/``.
    specs : list of RunSpec Labels must be unique.
    jobs : int              Runs trained at once.
    progress : bool         Show a bar over runs.
    timeout : float         Seconds allowed per run (None: no limit).
    """
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate run labels: {sorted({x for x in labels if labels.count(x) > 1})}")
    inprocess = jobs <= 1 and timeout is None
    todo = list({_key(s.config): s for s in reversed(specs) if not is_done(root, s)}.values())[::-1]
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    if todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="run", disable=not progress)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(_train_one, root, s, threads, timeout, inprocess) for s in todo]
            try:
                for f in as_completed(futures):
                    f.result()
                    bar.update(1)
            finally:
                bar.close()
    return {s.label: run_dir(root, s) for s in specs}
