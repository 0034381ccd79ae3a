"""A small, readable pretraining loop: WSD in data units, a batch schedule, exact resume.

Run ``python -m validate.train --preset tiny --tokens 200000`` or
``dbs train ...``; under ``torchrun`` it trains with DDP. Every quantity
that changes over training (learning rate, batch size, sequence length) is
a pure function of tokens consumed, so a resumed run needs only the token
counter, and every DDP rank takes the same decisions without talking.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import contextlib
import random
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dbs_theory.batch_schedules import BatchSchedule, constant_batch
from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir
from dbs_theory.lr_schedules import constant, cosine, wsd

from .config import TrainConfig, build_parser, config_from_args, parse_seq_len_schedule
from .data import batch_at, load_corpus
from .gns import GNSEstimator
from .model import Transformer, preset

__all__ = ["TrainConfig", "train", "main", "NonFiniteLoss", "build_parser", "config_from_args"]


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


def lr_schedule(cfg: TrainConfig):
    total = cfg.tokens
    if cfg.lr_schedule == "constant":
        return constant(cfg.lr)
    if cfg.lr_schedule == "cosine":
        return cosine(cfg.lr, total, warmup=cfg.warmup * total, final_ratio=cfg.final_ratio)
    W, T = cfg.warmup * total, cfg.decay * total
    return wsd(cfg.lr, W, max(total - W - T, 0.0), T, cfg.final_ratio)


def batch_schedule(cfg: TrainConfig) -> BatchSchedule:
    if cfg.batch_schedule:
        try:
            return BatchSchedule.from_json(Path(cfg.batch_schedule).read_text())
        except ValueError as exc:
            raise ValueError(f"{cfg.batch_schedule}: {exc}") from None
    return constant_batch(cfg.batch_tokens)


def _device(name):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _rng_state():
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())


def _save(path, model, opt, step, D, cfg):
    tmp = Path(str(path) + ".tmp")
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, tokens=D,
                    config=asdict(cfg), rng=_rng_state()), tmp)
    tmp.replace(path)  # atomic: a checkpoint is whole or absent


def _load(path, model, opt, cfg, check_config=True):
    try:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises many kinds (pickle, zip, runtime) for a bad file
            raise RuntimeError(str(exc)) from None
        mine = {k: v for k, v in asdict(cfg).items()
                if k not in ("out", "run", "device", "stop_at_tokens")}
        theirs = {k: v for k, v in ck["config"].items() if k in mine}
        if check_config and theirs != mine:
            diff = sorted(k for k in mine if theirs.get(k) != mine[k])
            raise ValueError(f"checkpoint {str(path)!r} was written with a different config ({', '.join(diff)})")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
    except (KeyError, RuntimeError, EOFError, OSError, TypeError) as exc:
        raise ValueError(f"cannot resume from {str(path)!r}: corrupted or mismatched checkpoint "
                         f"({exc.__class__.__name__})") from None
    torch.set_rng_state(ck["rng"]["torch"])
    np.random.set_state(ck["rng"]["numpy"])
    random.setstate(ck["rng"]["python"])
    return ck["step"], ck["tokens"]


def _grad_sq(model):
    """Squared norm of the current gradient (all parameters)."""
    return float(sum(float(p.grad.detach().pow(2).sum()) for p in model.parameters() if p.grad is not None))


LOG_FIELDS = ["run", "batch_size", "step", "tokens", "loss", "lr", "val_loss", "seq_len", "world_size",
              "b_simple"]


def _truncate_log(path, step):
    """Keep log rows up to ``step`` (a resume rewrites what came after the checkpoint)."""
    if not path.exists():
        return
    rows = [r for r in csv.DictReader(path.open()) if int(r["step"]) <= step]
    with atomic_write(path) as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)


@torch.no_grad()
def evaluate(model, corpus, cfg, device):
    model.eval()
    n = max(1, cfg.eval_tokens // cfg.seq_len)
    # A fixed held-out slice at the first sequence length, comparable across runs and switches.
    x, y = batch_at(corpus.val, 0, n, cfg.seq_len)
    _, loss = model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
    model.train()
    return float(loss)


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


def train(cfg: TrainConfig, resume=False, progress=True) -> dict:
    """Train, log one row per step to ``<out>/log.csv``, checkpoint to ``<out>/ckpt.pt``.

    Under ``torchrun`` each rank takes its share of every micro-step's tokens
    (rank ``r`` of ``W`` reads the ``r``-th micro-batch of each group of
    ``W``), so the global batch sees the same tokens as one process would;
    only rank 0 writes the log and checkpoints. Returns a summary dict;
    raises :class:`NonFiniteLoss` if the loss blows up.
    """
    cfg.validate()
    device = _device(cfg.device)
    rank, world = _distributed(device)
    out = ensure_writable_dir(check_writable(cfg.out))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    corpus = load_corpus(cfg.data, cfg.vocab_size)
    model = Transformer(preset(cfg.preset, vocab_size=corpus.vocab_size, seq_len=max(cfg.max_seq_len(), 8))).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay)
    net = torch.compile(model) if cfg.compile else model
    bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.startswith("cuda"))
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if bf16 else \
        contextlib.nullcontext
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net)
    lr_at, batch_for = lr_schedule(cfg), batch_schedule(cfg)
    run = cfg.run or Path(cfg.out).name
    log_path, ck_path = out / "log.csv", out / "ckpt.pt"
    step, D = 0, 0.0
    if resume:
        if not ck_path.exists():
            raise ValueError(f"--resume: no checkpoint at {str(ck_path)!r}")
        step, D = _load(ck_path, model, opt, cfg)
        if rank == 0:
            _truncate_log(log_path, step)
    elif cfg.branch_from:  # continue another run's state under this config (its schedule may differ)
        parent = Path(cfg.branch_from)
        if not parent.exists():
            raise ValueError(f"--branch-from: no checkpoint at {str(parent)!r}")
        step, D = _load(parent, model, opt, cfg, check_config=False)
    if not resume and rank == 0:
        with atomic_write(out / "config.json") as fh:
            json.dump(dict(config=asdict(cfg), corpus=corpus.describe(), sha256=corpus.sha256,
                           n_params=model.n_params(), flops_per_token=model.flops_per_token(cfg.seq_len)),
                      fh, indent=1)
        with atomic_write(log_path) as fh:
            w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
            w.writeheader()
            if cfg.branch_from:  # the parent's history up to the branch point, under this run's name
                parent_log = Path(cfg.branch_from).with_name("log.csv")
                rows = list(csv.DictReader(parent_log.open())) if parent_log.exists() else []
                w.writerows({**r, "run": run} for r in rows if int(r["step"]) <= step)
    starts, lengths = parse_seq_len_schedule(cfg.seq_len_schedule, cfg.seq_len)
    seq_segments = list(zip(starts[::-1], lengths[::-1]))  # parsed once, latest switch first
    first_group = cfg.micro_batch * cfg.seq_len * world
    first_batch = max(1, round(batch_for(0) / first_group)) * first_group
    if world > 1:
        torch.distributed.barrier()  # rank 0 has created the log
    warned = False
    gns = GNSEstimator()
    from tqdm.auto import tqdm

    bar = tqdm(total=int(cfg.tokens), initial=int(D), unit="tok", disable=not progress or rank, desc=run)
    t0 = time.perf_counter()
    with (log_path.open("a", newline="") if rank == 0 else contextlib.nullcontext()) as logf:
        while D < cfg.tokens:
            seq_len = next(L for s0, L in seq_segments if D >= s0)
            per_micro = cfg.micro_batch * seq_len
            group = per_micro * world  # tokens per micro-step across all ranks
            want = batch_for(D)
            accum = max(1, round(want / group))
            actual = accum * group
            if actual != want and not warned and rank == 0:
                warnings.warn(f"batch of {want:g} tokens is not a multiple of micro_batch x seq_len x "
                              f"world_size = {group}; using {actual}", stacklevel=2)
                warned = True  # once: the log's batch_size column records every actual size
            lr = lr_at(D) * (actual / first_batch) ** {"none": 0, "sqrt": 0.5, "linear": 1}[cfg.lr_rescale]
            for g in opt.param_groups:
                g["lr"] = lr
            total = 0.0
            measure = cfg.gns_every > 0 and accum > 1 and world == 1 and (step + 1) % cfg.gns_every == 0
            for a in range(accum):
                x, y = batch_at(corpus.train, int(D) + a * group + rank * per_micro, cfg.micro_batch, seq_len,
                                block=cfg.data_block)
                # DDP all-reduces gradients on every backward; skip it until the last micro-step.
                sync = world == 1 or a == accum - 1
                with (contextlib.nullcontext() if sync else net.no_sync()), autocast():
                    _, loss = net(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
                    (loss / accum).backward()  # gradient accumulation: the mean over micro-batches
                total += float(loss.detach()) / accum
                if measure and a == 0:  # one micro-batch's gradient is accum x the accumulated one so far
                    sq_small = _grad_sq(model) * accum**2
            if world > 1:
                t = torch.tensor([total], device=device)
                torch.distributed.all_reduce(t)
                total = float(t) / world
            if not math.isfinite(total):
                raise NonFiniteLoss(f"loss became {total} at step {step + 1} ({D:.0f} tokens); "
                                    f"the last good checkpoint is {str(ck_path)!r}")
            if measure:
                gns.update(sq_small, per_micro, _grad_sq(model), actual)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, D = step + 1, D + actual
            if rank == 0:
                every_tokens = cfg.eval_every_tokens > 0 and \
                    int(D // cfg.eval_every_tokens) > int((D - actual) // cfg.eval_every_tokens)
                at_eval = step % cfg.eval_every == 0 or every_tokens or D >= cfg.tokens
                val = evaluate(model, corpus, cfg, device) if at_eval else ""
                csv.DictWriter(logf, fieldnames=LOG_FIELDS).writerow(dict(
                    run=run, batch_size=actual, step=step, tokens=int(D), loss=total, lr=lr, val_loss=val,
                    seq_len=seq_len, world_size=world, b_simple=gns.value if measure else ""))
                logf.flush()
            bar.update(actual)
            bar.set_postfix(loss=f"{total:.3f}", tok_s=f"{(D) / (time.perf_counter() - t0 + 1e-9):.0f}")
            stopping = cfg.stop_at_tokens is not None and D >= cfg.stop_at_tokens
            if (step % cfg.checkpoint_every == 0 or D >= cfg.tokens or stopping) and rank == 0:
                _save(ck_path, model, opt, step, D, cfg)
            if stopping:
                break
    bar.close()
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return dict(steps=step, tokens=D, final_loss=total, log=str(log_path), corpus=corpus.describe())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = train(config_from_args(args), resume=args.resume, progress=not args.quiet)
    except NonFiniteLoss as exc:
        print(f"train: stopped: {exc}", file=sys.stderr)
        return 3
    except (ValueError, OSError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {res['steps']} steps, {res['tokens']:.0f} tokens, final loss {res['final_loss']:.4f}; "
          f"log {res['log']} ({res['corpus']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
