"""A small, readable pretraining loop: WSD in data units, a batch schedule, exact resume.

Run ``python -m validate.train --preset tiny --tokens 200000`` or
``dbs train ...``; under ``torchrun`` it trains with DDP. Every quantity
that changes over training (learning rate, batch size, sequence length) is
a pure function of tokens consumed, so a resumed run needs only the token
counter, and every DDP rank takes the same decisions without talking.
"""

from __future__ import annotations

import csv
import dataclasses
import contextlib
import datetime
import json
import math
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from dbs_theory.io import FolderLocked, atomic_write, check_writable, ensure_writable_dir, folder_holder, folder_lock

from .checkpoint import CheckpointError, load_checkpoint, rng_state, set_rng_state
from .config import TrainConfig, build_parser, config_from_args
from .data import load_corpus
from .loop import LOG_FIELDS, BatchRule, Checkpointer, Logger, NoiseScale, NonFiniteLoss, Progress, Trainer
from .model import Transformer, preset
from .train_result import TrainResult
from .train_schedules import batch_rounding, batch_schedule, lr_schedule, online_rule  # noqa: F401 (re-exported)

__all__ = [
    "TrainConfig",
    "train",
    "main",
    "NonFiniteLoss",
    "Interrupted",
    "RunFolderInconsistent",
    "LOG_FIELDS",
    "build_parser",
    "config_from_args",
    "summary_line",
    "TrainResult",
    "resolve_device",
]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped the run at a step boundary after checkpointing it."""


class RunFolderInconsistent(ValueError):
    """The run folder's log lacks rows that its checkpoint covers (rows were lost)."""


def resolve_device(name):
    """The torch device for ``name`` (checked by ``TrainConfig.validate``); refuses one that is absent."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available here (use `device` cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps': Apple MPS is not available here (use `device` cpu or auto)")
    return name


def _payload(model, opt, step, D, cfg, schedule_sha, online=None):
    """A checkpoint; ``online``: the online rule's and the noise scale's state (a resumed run decides as an
    uninterrupted one)."""
    return dict(
        model=model.state_dict(),
        opt=opt.state_dict(),
        step=int(step),
        tokens=float(D),
        config=asdict(cfg),
        rng=rng_state(),
        schedule_sha256=schedule_sha,
        online=online,
    )


#: Config fields that may differ between a checkpoint and the run resuming it.
_FREE = ("out", "run", "device", "stop_at_tokens")


def _load(path, model, opt, cfg, schedule_sha, check_config=True):
    """Restore model, optimizer and RNG from ``path``; ``(step, tokens, online state or None)``.
    ``CheckpointError`` if unusable."""
    ck = load_checkpoint(path)
    try:
        if check_config:
            mine = {k: v for k, v in asdict(cfg).items() if k not in _FREE}
            theirs = {k: v for k, v in ck["config"].items() if k in mine}
            default = {f.name: f.default for f in fields(cfg)}  # a field newer than the checkpoint: its default
            diff = sorted(k for k in mine if theirs.get(k, default[k]) != mine[k])
            if ck.get("schedule_sha256") != schedule_sha:
                diff.append("the contents of the batch_schedule or rule_fit file")
            if diff:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} was written with a different config ({', '.join(diff)})"
                )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        set_rng_state(ck["rng"])
        return int(ck["step"]), float(ck["tokens"]), ck.get("online")
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: mismatched checkpoint ({exc.__class__.__name__})"
        ) from None


def _truncate_log(path, step):
    """Keep log rows up to ``step`` (a resume rewrites what came after the checkpoint).

    Raises :class:`RunFolderInconsistent` when the log ends before ``step``:
    rows the checkpoint covers are gone and resuming would leave a gap.
    """
    rows = list(csv.DictReader(path.open(encoding="utf-8"))) if path.exists() else []
    last = max((int(float(r["step"])) for r in rows), default=0)
    if last < step:
        raise RunFolderInconsistent(
            f"{str(path)!r} ends at step {last} but the checkpoint is at step {step}: "
            "log rows were lost; start the run again with --overwrite"
        )
    with atomic_write(path) as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(r for r in rows if int(float(r["step"])) <= step)


def _start_fresh(cfg, out, run, step, overwrite, corpus, model, rounding):
    """Write config.json and a new log (with a branch parent's history); clear an overwritten run."""
    if overwrite:
        for name in ("ckpt.pt", "done.json"):
            (out / name).unlink(missing_ok=True)
    with atomic_write(out / "config.json") as fh:
        json.dump(
            dict(
                config=asdict(cfg),
                corpus=corpus.describe(),
                sha256=corpus.sha256,
                files_read=list(corpus.read),
                files_skipped=[list(s) for s in corpus.skipped],
                n_params=model.n_params(),
                flops_per_token=model.flops_per_token(cfg.seq_len),
                batch_rounding=rounding,
            ),
            fh,
            indent=1,
        )
    with atomic_write(out / "log.csv") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        if cfg.branch_from:  # the parent's history up to the branch point, under this run's name
            parent_log = Path(cfg.branch_from).with_name("log.csv")
            rows = list(csv.DictReader(parent_log.open())) if parent_log.exists() else []
            w.writerows({**r, "run": run} for r in rows if int(r["step"]) <= step)


def _check_sources(cfg, resume):
    """Refuse a ``resume`` without a checkpoint or a missing ``branch_from`` before the run folder is made."""
    ck_path = Path(cfg.out) / "ckpt.pt"
    if resume and not ck_path.is_file():
        holder = folder_holder(cfg.out)  # a run starting there has no checkpoint yet: name it, not the file
        if holder:
            raise FolderLocked(f"{str(cfg.out)!r} is in use by {holder}; wait for it or use another folder")
        raise ValueError(f"resume: no checkpoint at {str(ck_path)!r}")
    if cfg.branch_from and not resume and Path(cfg.branch_from).resolve().parent == Path(cfg.out).resolve():
        raise ValueError(
            f"branch_from: {str(cfg.branch_from)!r} lies in the run's folder (`out` {str(cfg.out)!r}): a new "
            "run there would replace the checkpoint it starts from; branch into another folder"
        )
    if cfg.branch_from and not resume and not Path(cfg.branch_from).is_file():
        raise ValueError(f"branch_from: no checkpoint at {str(cfg.branch_from)!r}")


def _restore(cfg, out, model, opt, resume, overwrite, schedule_sha, rank):
    """``(step, tokens, online state)`` to start from: a resumed checkpoint, a branch parent (no online
    state: its rule, if any, is not this run's), or zero.

    A fresh start into a folder that already holds a run is refused unless
    ``overwrite``: rerunning without ``--resume`` must not discard a log.
    """
    ck_path = out / "ckpt.pt"
    if resume:
        if not ck_path.exists():
            raise ValueError(f"resume: no checkpoint at {str(ck_path)!r}")
        step, D, online = _load(ck_path, model, opt, cfg, schedule_sha)
        if rank == 0 and D < cfg.tokens:
            _truncate_log(out / "log.csv", step)
        return step, D, online
    held = [n for n in ("log.csv", "ckpt.pt", "done.json") if (out / n).exists()]
    if held and not overwrite:
        raise ValueError(
            f"{str(out)!r} already holds a run ({', '.join(held)}); pass `resume` to continue "
            "it or `overwrite` to start it again"
        )
    if cfg.branch_from:  # continue another run's state under this config (its schedule may differ)
        step, D, _ = _load(cfg.branch_from, model, opt, cfg, schedule_sha, check_config=False)
        if D >= cfg.tokens:
            raise ValueError(
                f"branch_from: {str(cfg.branch_from)!r} is at {D:.0f} tokens, not before this run's "
                f"end (`tokens` {cfg.tokens:g}): nothing to train; raise `tokens`"
            )
        return step, D, None
    return 0, 0.0, None


def _restore_online(sched, online):
    """Put a checkpoint's online-rule state back (a run without a rule checkpoints none)."""
    from dbs_theory.rules.online import OnlineRule

    if isinstance(sched, OnlineRule) != bool(online.get("rule")):
        raise CheckpointError("the checkpoint and this run differ in whether an online batch rule decides the batch")
    if isinstance(sched, OnlineRule):
        try:
            sched.load_state_dict(online["rule"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot resume the online batch rule: {exc}") from None


def _finished(out, step, D, corpus) -> dict:
    """The summary of a run whose checkpoint is already at its full token count (a no-op resume)."""
    rows = list(csv.DictReader((out / "log.csv").open(encoding="utf-8"))) if (out / "log.csv").exists() else []
    done = [r for r in rows if int(float(r["step"])) == step]
    if not done:
        raise RunFolderInconsistent(
            f"{str(out / 'log.csv')!r} has no row for the final step {step}: log rows "
            "were lost; start the run again with --overwrite"
        )
    return TrainResult(
        steps=step,
        tokens=D,
        final_loss=float(done[-1]["loss"]),
        log=str(out / "log.csv"),
        corpus=corpus.describe(),
        already_finished=True,
    )


#: Signals that stop a run at the next step boundary after a checkpoint: Ctrl-C, and the SIGTERM a batch
#: scheduler (Slurm at a time limit or preemption), ``kill`` or a container runtime sends before SIGKILL.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: Seconds within which a second stop signal counts as the first one again (see :func:`_stop_flag`).
SAME_INTERRUPT = 2.0


@contextlib.contextmanager
def _stop_flag():
    """A dict whose ``stop`` turns True on the first Ctrl-C or SIGTERM; a second one interrupts at once.

    A second signal within :data:`SAME_INTERRUPT` seconds of the first is the same interrupt delivered
    twice (a terminal's Ctrl-C reaches a launcher and its jobs, and the launcher passes it on), not a
    request to skip the checkpoint. Only the main thread can own a signal handler; elsewhere the flag
    never turns.
    """
    flag = dict(stop=False, at=0.0)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        now = time.monotonic()
        if flag["stop"] and now - flag["at"] > SAME_INTERRUPT:
            raise KeyboardInterrupt("interrupted twice: stopped at once (the last checkpoint is kept)")
        if not flag["stop"]:
            flag.update(stop=True, at=now)

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _distributed(device):
    """``(rank, world)``; joins the process group when launched by torchrun."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        # A rank that dies makes the others fail after this timeout instead of waiting forever.
        timeout = datetime.timedelta(seconds=float(os.environ.get("DBS_DDP_TIMEOUT", "600")))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timeout)
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), world


def _model_and_opt(cfg, corpus, device):
    model = Transformer(preset(cfg.preset, vocab_size=corpus.vocab_size, seq_len=max(cfg.max_seq_len(), 8)))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return model, opt


def train(cfg: TrainConfig, resume=False, progress=True, overwrite=False) -> TrainResult:
    """Train, log one row per step to ``<out>/log.csv``, checkpoint to ``<out>/ckpt.pt``.

    Under ``torchrun`` each rank takes its share of every micro-step's tokens
    (rank ``r`` of ``W`` reads the ``r``-th micro-batch of each group of
    ``W``), so the global batch sees the same tokens as one process would;
    only rank 0 writes the log and checkpoints, holding an exclusive lock on
    ``<out>`` (a second process training into it fails at once). ``resume``
    continues from ``<out>/ckpt.pt`` (a finished run is a no-op); a fresh
    start into a folder that holds a run needs ``overwrite``. Returns a
    :class:`TrainResult`; raises :class:`NonFiniteLoss` if the loss blows up and
    :class:`Interrupted` after checkpointing on Ctrl-C or SIGTERM.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    sched, schedule_sha = batch_schedule(cfg)
    check_writable(cfg.out)
    corpus = load_corpus(cfg.data, cfg.vocab_size, cfg.data_glob)  # read (or refused) before anything is written
    rank, world = _distributed(device)
    _check_sources(cfg, resume)
    out = ensure_writable_dir(cfg.out)
    with folder_lock(out) if rank == 0 else contextlib.nullcontext():
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        model, opt = _model_and_opt(cfg, corpus, device)
        step, D, online = _restore(cfg, out, model, opt, resume, overwrite, schedule_sha, rank)
        if resume and D >= cfg.tokens:
            return _finished(out, step, D, corpus)
        if world > 1:
            torch.distributed.barrier()  # every rank has checked the folder before rank 0 writes
        if cfg.batch_rule and world > 1:
            sched = batch_schedule(cfg, world)[0]  # sizes in whole micro-batches of every process
        if online is not None:
            _restore_online(sched, online)
        rounding = batch_rounding(cfg, sched, world)
        if not resume and rank == 0:
            _start_fresh(cfg, out, cfg.run or out.name, step, overwrite, corpus, model, rounding)
        if world > 1:
            torch.distributed.barrier()  # rank 0 has created the log
        with _stop_flag() as flag:
            res = _loop(
                cfg,
                out,
                model,
                opt,
                corpus,
                sched,
                schedule_sha,
                (step, D, online),
                device,
                rank,
                world,
                progress,
                flag,
            )
        return dataclasses.replace(res, batch_rounding=tuple(rounding))


def _loop(cfg, out, model, opt, corpus, batch_for, schedule_sha, start, device, rank, world, progress, flag):
    """Train from ``start = (step, D, online state)`` to ``cfg.tokens`` with the logging, checkpoint and
    progress hooks (and the online batch rule's, when ``batch_for`` is one); the summary."""
    from dbs_theory.rules.online import OnlineRule

    step, D, online = start
    run, log_path, ck_path = cfg.run or out.name, out / "log.csv", out / "ckpt.pt"
    t = Trainer(cfg, model, opt, corpus, batch_for, lr_schedule(cfg), device, rank, world, start=(step, D))
    noise = NoiseScale()
    if online and online.get("noise"):
        noise.load_state_dict(online["noise"])
    rule = batch_for if isinstance(batch_for, OnlineRule) else None
    bar = Progress(cfg.tokens, D, run, progress and rank == 0)
    t.hooks = [noise, bar] + ([BatchRule(rule, noise)] if rule else [])
    s = None
    with log_path.open("a", newline="") if rank == 0 else contextlib.nullcontext() as logf:
        if rank == 0:
            payload = lambda tr: _payload(
                tr.model,
                tr.opt,
                tr.n_steps,
                tr.tokens,
                cfg,
                schedule_sha,
                dict(rule=rule.state_dict() if rule else None, noise=noise.state_dict()),
            )
            t.hooks += [Logger(logf, run, noise), Checkpointer(ck_path, payload)]
        while t.tokens < cfg.tokens:
            try:
                s = t.step(flag)
            except NonFiniteLoss as exc:
                where = (
                    f"the last good checkpoint is {str(ck_path)!r}"
                    if ck_path.exists()
                    else "no checkpoint was written yet (try a lower --lr)"
                )
                raise NonFiniteLoss(f"{exc}; {where}") from None
            if s.stop:
                bar.close()
                raise Interrupted(
                    f"interrupted at step {t.n_steps} ({t.tokens:.0f} of {cfg.tokens:.0f} tokens); "
                    f"checkpoint saved: rerun with --resume to continue"
                )
            if cfg.stop_at_tokens is not None and t.tokens >= cfg.stop_at_tokens:
                break
    bar.close()
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return TrainResult(
        steps=t.n_steps,
        tokens=t.tokens,
        final_loss=s.loss if s else math.nan,
        log=str(log_path),
        corpus=corpus.describe(),
        batch_rule=None if rule is None else cfg.batch_rule,
        decisions=() if rule is None else tuple(tuple(p) for p in rule.schedule().segments),
    )


def main(argv=None) -> int:
    """``python -m validate.train``: exit 0 done, 2 bad input, 3 diverged, 4 inconsistent folder, 130 Ctrl-C or
    SIGTERM."""
    args = build_parser().parse_args(argv)
    try:
        res = train(config_from_args(args), resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except NonFiniteLoss as exc:
        print(f"train: stopped: {exc}", file=sys.stderr)
        return 3
    except RunFolderInconsistent as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 4
    except (ValueError, OSError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"train: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    print(summary_line(res))
    return 0


def summary_line(res: TrainResult) -> str:
    """One line for people about a finished (or already finished) run (:meth:`TrainResult.summary_line`)."""
    return res.summary_line()


if __name__ == "__main__":
    sys.exit(main())
