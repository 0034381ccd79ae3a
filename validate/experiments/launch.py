"""Where runs train: this machine (subprocesses or this process) or a Slurm cluster through submitit.

:func:`~validate.experiments.runner.train_runs` takes the launcher to use
(``dbs validate --launcher submitit`` puts it on the tier, ``Tier.launcher``). With submitit each run is one job
that calls the same
``train_one`` the local launcher does, so the run cache, ``done.json``, the
folder claim (two runners on shared storage never train one run twice) and
resume from ``ckpt.pt`` work the same. A job that Slurm preempts or times out
is requeued by submitit (``checkpoint``) and resumes from the run's last
checkpoint (``checkpoint_every`` steps). Without ``sbatch`` on the machine
submitit's local executor runs the jobs as real subprocesses (what CI tests).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Launcher", "parse_sbatch", "submitit_runs", "TrainJob"]


@dataclass
class Launcher:
    """``name``: ``local`` or ``submitit``; ``cluster``: submitit's (``auto``: Slurm if ``sbatch`` exists,
    else local subprocesses); Slurm options as submitit names them (``partition``, ``account``, ``gpus``
    per run, ``time_min`` limit per run, ``sbatch``: extra ``--key=value`` flags)."""

    name: str = "local"
    cluster: str = "auto"
    partition: str | None = None
    account: str | None = None
    gpus: int = 0
    time_min: int = 240
    cpus: int = 2
    sbatch: dict = field(default_factory=dict)


#: sbatch flags the launcher sets itself (or that would break how it runs jobs): what to use instead
OWN_FLAGS = {
    **{k: "set with --time-limit" for k in ("time", "t")},
    **{k: "set with --partition" for k in ("partition", "p")},
    **{k: "set with --account" for k in ("account", "A")},
    **{k: "set with --gpus-per-run" for k in ("gres", "gpus", "gpus-per-node", "G")},
    **{k: "set with --cpus-per-run" for k in ("cpus-per-task", "c")},
    **{
        k: "submitit writes each job's logs and runs it from its own folder; not settable"
        for k in ("output", "o", "error", "e", "wrap", "chdir", "D", "job-name", "J")
    },
}


def parse_sbatch(text) -> dict:
    """``{"qos": "high", "constraint": "a100"}`` from ``"--qos=high --constraint=a100"`` (``--sbatch``)."""
    out = {}
    try:
        items = shlex.split(text or "")
    except ValueError as exc:  # an unterminated quote
        raise ValueError(f"--sbatch {text!r}: {str(exc)[0].lower()}{str(exc)[1:]}") from None
    for item in items:
        key, eq, value = item.lstrip("-").partition("=")
        if not item.startswith("--") or not key:
            raise ValueError(f"--sbatch takes sbatch flags as --key=value; got {item!r}")
        if key in OWN_FLAGS:
            raise ValueError(f"--sbatch {item!r}: {OWN_FLAGS[key]}")
        if key.replace("-", "_") in out:
            raise ValueError(f"--sbatch gives --{key} twice")
        out[key.replace("-", "_")] = value if eq else True
    return out


def _stop_before_training(signum, frame):
    raise KeyboardInterrupt("stopped before training began (nothing to checkpoint)")


class TrainJob:
    """One run as a submitit job: train (or resume) it through the run cache. ``checkpoint`` makes submitit
    requeue it on preemption or timeout; the rerun resumes from the run's ``ckpt.pt``."""

    def __init__(self, root, spec, threads):
        self.root, self.spec, self.threads = str(root), spec, threads

    def __call__(self):
        import signal

        from .run_cache import train_one

        # submitit lets a job ignore SIGTERM; before the trainer's own handler is in place (imports, data,
        # model) a stop request must still stop the job, with nothing to checkpoint yet
        signal.signal(signal.SIGTERM, _stop_before_training)
        os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
        return str(train_one(self.root, self.spec, self.threads, None, inprocess=True))

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.root, self.spec, self.threads))


def _executor(root, la: Launcher):
    try:
        import submitit
    except ImportError:
        raise ValueError('--launcher submitit needs submitit: pip install "dbs-theory[slurm]"') from None
    ex = submitit.AutoExecutor(
        folder=Path(root) / "submitit" / "%j", cluster=None if la.cluster == "auto" else la.cluster
    )
    ex.update_parameters(
        timeout_min=la.time_min,
        gpus_per_node=la.gpus or None,
        cpus_per_task=la.cpus,
        name="dbs-validate",
        slurm_partition=la.partition,
        slurm_account=la.account,
        slurm_additional_parameters=la.sbatch or None,
    )
    return ex


def submitit_runs(root, todo, bar, launcher: Launcher, jobs=None) -> None:
    """Submit one job per run in ``todo`` and wait for them; a failed job raises ``RunFailed``.

    On this machine (submitit's local executor) at most ``jobs`` run at once, as with the local launcher;
    on Slurm the cluster's queue decides. Ctrl-C or SIGTERM stops every running job once (SIGTERM: the
    trainer checkpoints at its next step and exits), waits for them, and raises ``KeyboardInterrupt`` with
    what happened to each run (:func:`~validate.experiments.run_cache.interrupted_message`).
    """
    from .run_cache import RunFailed, interrupted_message

    ex = _executor(root, launcher)
    here = ex.cluster == "local"
    window = max(1, jobs or 1) if here else len(todo)
    queue, running = list(todo), []
    try:
        while queue or running:
            while queue and len(running) < window:
                spec = queue.pop(0)
                running.append((spec, ex.submit(TrainJob(root, spec, launcher.cpus))))
            spec, job = _first_done(running)
            running.remove((spec, job))
            try:
                job.result()
            except Exception as exc:  # submitit wraps the job's error (FailedJobError and friends)
                last = str(exc).strip().splitlines()[-1:] or ["(no message)"]
                raise RunFailed(
                    f"run {spec.label!r} failed in submitit job {job.job_id}: {last[0]}; see {Path(root) / 'submitit'}"
                ) from None
            bar.update(1)
    except KeyboardInterrupt:
        _stop(job for _, job in running)
        raise KeyboardInterrupt(interrupted_message(root, todo)) from None
    except BaseException:
        _stop(job for _, job in running)
        raise


def _first_done(running, poll=0.5):
    """The first ``(spec, job)`` of ``running`` whose job has ended (polling every ``poll`` seconds)."""
    import time

    while True:
        for item in running:
            if item[1].done():
                return item
        time.sleep(poll)


def _stop(jobs, wait=120.0):
    """Stop each job once and wait (up to ``wait`` seconds) for it to checkpoint and exit.

    A local-executor job is its controller process, which forwards SIGTERM to the training process (its
    own cancel sends SIGINT, and kills the trainer a second later); a Slurm job is cancelled (``scancel``:
    SIGTERM, then SIGKILL after the cluster's KillWait).
    """
    import signal
    import time

    jobs = list(jobs)
    for job in jobs:
        with contextlib.suppress(Exception):
            proc = getattr(job, "_process", None)
            if proc is not None:
                job._cancel_at_deletion = False  # its __del__ would send a second signal
                proc.send_signal(signal.SIGTERM)
            else:
                job.cancel(check=False)
    end = time.monotonic() + wait
    while time.monotonic() < end and not all(_ended(job) for job in jobs):
        time.sleep(0.5)


def _ended(job) -> bool:
    with contextlib.suppress(Exception):
        return bool(job.done())
    return True
