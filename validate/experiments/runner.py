"""Training many runs through the run cache (:mod:`validate.experiments.run_cache`): parallel jobs, resume.

A finished run is never trained again and an interrupted one resumes from
its checkpoint (the cache's rules). Runs train in subprocesses
(``python -m validate.train``), ``jobs`` at a time, each on ``cpus // jobs``
threads; with one job they train in this process; under ``--launcher
submitit`` each is a submitit job (:mod:`validate.experiments.launch`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed

from . import launch
from .run_cache import (
    Children,
    RunFailed,
    RunSpec,
    config_key,
    interrupted_message,
    is_done,  # noqa: F401
    restore_stored,
    run_dir,
    train_one,
)

__all__ = ["train_runs", "interrupted_message", "RunSpec", "run_dir", "is_done", "RunFailed"]


def train_runs(root, specs, jobs=1, progress=True, desc="runs", timeout=None, launcher=None, store=None) -> dict:
    """Train every spec not yet done; return ``{label: run folder}`` for all of them.

    Parameters
    ----------
    root : path             Results root; runs go under ``<root>/runs/``.
    specs : list of RunSpec Labels must be unique.
    jobs : int              Runs trained at once.
    progress : bool         Show a bar over runs.
    timeout : float         Seconds allowed per run (None: no limit).
    launcher : Launcher     Where runs train (None or ``local``: this machine; ``submitit``: one job per run).
    store : LogStore        Finished runs' logs by config hash (:mod:`~validate.experiments.log_store`): runs it
                            holds are restored, not trained, and every run finished here is added to it.

    Ctrl-C cancels queued runs and stops the running ones at their next step
    (each checkpoints first), then raises ``KeyboardInterrupt``; a rerun resumes.
    """
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate run labels: {sorted({x for x in labels if labels.count(x) > 1})}")
    inprocess = jobs <= 1 and timeout is None
    todo = list({config_key(s.config): s for s in reversed(restore_stored(root, specs, store))}.values())[::-1]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // max(1, jobs))  # the CPUs this process may use (a Slurm or taskset binding)
    if todo:
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), desc=desc, unit="run", disable=not progress) as bar:
            try:
                if launcher is not None and launcher.name == "submitit":  # one cluster (or local-executor) job per run
                    launch.submitit_runs(root, todo, bar, launcher, jobs)
                elif inprocess:  # in the main thread, so Ctrl-C reaches the training loop's handler
                    for s in todo:
                        train_one(root, s, threads, timeout, inprocess=True, store=store)
                        bar.update(1)
                else:
                    _in_pool(root, todo, jobs, threads, timeout, bar, store)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(interrupted_message(root, todo)) from None
    if store is not None:  # runs finished by a cluster job, or before the store existed
        for s in specs:
            if is_done(root, s):
                store.put(config_key(s.config), run_dir(root, s))
    return {s.label: run_dir(root, s) for s in specs}


def _in_pool(root, todo, jobs, threads, timeout, bar, store=None):
    children = Children()
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(train_one, root, s, threads, timeout, False, children, store) for s in todo]
    try:
        for f in as_completed(futures):
            f.result()
            bar.update(1)
    except BaseException:
        for f in futures:
            f.cancel()
        children.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
