"""Where runs train: this machine (subprocesses or this process) or a Slurm cluster through submitit.

:func:`~validate.experiments.runner.train_runs` asks :data:`ACTIVE` which
launcher to use; ``dbs validate --launcher submitit`` sets it with
:func:`use`. With submitit each run is one job that calls the same
``_train_one`` the local launcher does, so the run cache, ``done.json``, the
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

__all__ = ["Launcher", "ACTIVE", "use", "parse_sbatch", "submitit_runs", "TrainJob"]


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


#: The launcher train_runs uses now (one per process: the CLI sets it once).
ACTIVE = Launcher()


@contextlib.contextmanager
def use(launcher: Launcher):
    """Train runs with ``launcher`` inside the block."""
    global ACTIVE
    if launcher.name not in ("local", "submitit"):
        raise ValueError(f"--launcher={launcher.name!r} must be local or submitit")
    old, ACTIVE = ACTIVE, launcher
    try:
        yield launcher
    finally:
        ACTIVE = old


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
        out[key.replace("-", "_")] = value if eq else True
    return out


class TrainJob:
    """One run as a submitit job: train (or resume) it through the run cache. ``checkpoint`` makes submitit
    requeue it on preemption or timeout; the rerun resumes from the run's ``ckpt.pt``."""

    def __init__(self, root, spec, threads):
        self.root, self.spec, self.threads = str(root), spec, threads

    def __call__(self):
        from .runner import _train_one

        os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
        return str(_train_one(self.root, self.spec, self.threads, None, inprocess=True))

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.root, self.spec, self.threads))


def _executor(root, la: Launcher):
    try:
        import submitit
    except ImportError:
        raise ValueError('--launcher submitit needs submitit: pip install "dbs-theory[slurm]"') from None
    ex = submitit.AutoExecutor(folder=Path(root) / "submitit" / "%j",
                               cluster=None if la.cluster == "auto" else la.cluster)
    ex.update_parameters(timeout_min=la.time_min, gpus_per_node=la.gpus or None, cpus_per_task=la.cpus,
                         name="dbs-validate", slurm_partition=la.partition, slurm_account=la.account,
                         slurm_additional_parameters=la.sbatch or None)
    return ex


def submitit_runs(root, todo, bar, launcher: Launcher) -> None:
    """Submit one job per run in ``todo`` and wait for them; a failed job raises ``RunFailed``; Ctrl-C
    cancels the jobs (each resumes from its checkpoint when submitted again)."""
    from .runner import RunFailed

    ex = _executor(root, launcher)
    jobs = [(s, ex.submit(TrainJob(root, s, launcher.cpus))) for s in todo]
    try:
        for spec, job in jobs:
            try:
                job.result()
            except Exception as exc:  # submitit wraps the job's error (FailedJobError and friends)
                last = str(exc).strip().splitlines()[-1:] or ["(no message)"]
                raise RunFailed(f"run {spec.label!r} failed in submitit job {job.job_id}: {last[0]}; see "
                                f"{Path(root) / 'submitit'}") from None
            bar.update(1)
    except BaseException:
        for _, job in jobs:
            with contextlib.suppress(Exception):
                job.cancel(check=False)
        raise
