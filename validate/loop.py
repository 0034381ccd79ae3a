"""The training loop in stages: a :class:`Trainer` that takes one optimizer step, and hooks around it.

``Trainer.step`` plans the step from the data consumed so far (sequence
length, batch size rounded to whole micro-batches, learning rate), runs the
forward/backward passes of its micro-batches, checks the loss, and updates the
weights. What happens around a step is a hook with two moments:

- ``after_backward(trainer, s)``: the summed gradient exists (noise-scale measurement);
- ``after_step(trainer, s)``: the weights moved (logging with evaluation, checkpoints, progress).

Every quantity is a pure function of tokens consumed, so a resumed run needs
only ``(step, tokens)``. Batch sizes and data are tokens.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import time
import warnings
from dataclasses import dataclass

import torch

from dbs_theory.schedules.batch_schedules import lr_rescale
from dbs_theory.logs.runs import LOG_FIELDS as RUN_LOG_FIELDS

from .checkpoint import save_checkpoint
from .config import MAX_MICRO, seq_lengths, split_batch
from .data import batch_at
from .gns import GNSEstimator, two_batch_estimates

__all__ = [
    "TrainStep",
    "Trainer",
    "NoiseScale",
    "BatchRule",
    "Logger",
    "Checkpointer",
    "Progress",
    "LOG_FIELDS",
    "NonFiniteLoss",
    "evaluate",
    "grad_sq",
    "compile_options",
]

#: Columns of ``log.csv``: one row per optimizer step. ``wall_time`` is Unix seconds (rates come from its
#: differences); ``gns_g2`` / ``gns_trace`` are the raw two-batch estimates of |G|^2 and tr(Sigma) on
#: measured steps, ``b_simple`` the ratio of their moving averages.
LOG_FIELDS = list(RUN_LOG_FIELDS)  # the reader's schema (dbs_theory.logs.runs), written by the trainer


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


@dataclass
class TrainStep:
    """One optimizer step: its plan (``seq_len``, ``micro`` sequences x ``accum`` micro-steps, ``batch_size``
    tokens, ``lr``) and outcome (mean ``loss``, ``stop`` on Ctrl-C, the first micro-batch's squared gradient
    norm ``sq_small`` when the noise scale is measured)."""

    seq_len: int
    micro: int
    accum: int
    batch_size: int
    requested: float
    lr: float
    measure: bool = False
    loss: float = math.nan
    stop: bool = False
    sq_small: float | None = None


def grad_sq(model) -> float:
    """Squared norm of the current gradient over all parameters (one device sync)."""
    sq = [p.grad.detach().pow(2).sum() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(sq).double().sum()) if sq else 0.0


@torch.no_grad()
def evaluate(model, corpus, cfg, device, tokens=None, chunk=512) -> float:
    """Mean loss on the fixed held-out slice of ``tokens`` (default ``cfg.eval_tokens``) at the first sequence
    length, read ``chunk`` sequences at a time (so a large final slice fits in memory). The slice is the
    validation set's first tokens, or with ``cfg.eval_block`` that many blocks in a fixed order spread over
    all of it (a validation set shorter than two blocks is read in order)."""
    model.eval()
    n = max(1, int(tokens or cfg.eval_tokens) // cfg.seq_len)
    block = cfg.eval_block if corpus.val.size >= 2 * cfg.eval_block else 0
    total = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x, y = batch_at(corpus.val, start * cfg.seq_len, m, cfg.seq_len, block)
        _, loss = model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
        total += float(loss) * m
    model.train()
    return total / n


class Trainer:
    """Model, optimizer and data with the run's schedules; ``step()`` advances ``(step, tokens)`` by one."""

    def __init__(self, cfg, model, opt, corpus, batch_for, lr_at, device, rank=0, world=1, start=(0, 0.0)):
        self.cfg, self.model, self.opt, self.corpus = cfg, model, opt, corpus
        self.batch_for, self.lr_at, self.device, self.rank, self.world = batch_for, lr_at, device, rank, world
        self.n_steps, self.tokens = int(start[0]), float(start[1])
        self.net, self.autocast = _wrap(model, cfg, device, world)
        self.seq_len_at = seq_lengths(cfg.seq_len_schedule, cfg.seq_len)
        self._split = functools.lru_cache(maxsize=None)(
            lambda want, L: split_batch(want, L, world, cfg.micro_batch, MAX_MICRO[cfg.preset])
        )
        self._rescale = lr_rescale(cfg.lr_rescale, self._split(batch_for(0), cfg.seq_len)[2])
        self._warned = False
        self.hooks = []

    def plan(self) -> TrainStep:
        """The next step's sizes and learning rate, from the tokens consumed so far."""
        L = self.seq_len_at(self.tokens)
        want = self.batch_for(self.tokens)
        micro, accum, actual = self._split(want, L)
        if actual != want and not self._warned and self.rank == 0:  # once: the log records every size run
            self._warned = True
            warnings.warn(
                f"batch of {want:g} tokens is not a whole number of micro-batches (seq_len x "
                f"world_size = {L * self.world} tokens each); using {actual} (recorded in config.json "
                "and the summary)",
                stacklevel=3,
            )
        every = self.cfg.gns_every
        measure = every > 0 and accum > 1 and self.world == 1 and (self.n_steps + 1) % every == 0
        return TrainStep(L, micro, accum, actual, want, self._rescale(self.lr_at(self.tokens), actual), measure)

    def step(self, stop_flag=None) -> TrainStep:
        """Plan, accumulate the gradient, run ``after_backward`` hooks, update, run ``after_step`` hooks."""
        s = self.plan()
        for g in self.opt.param_groups:
            g["lr"] = s.lr
        self._accumulate(s, bool(stop_flag and stop_flag["stop"]))
        if not math.isfinite(s.loss):
            raise NonFiniteLoss(f"loss became {s.loss} at step {self.n_steps + 1} ({self.tokens:.0f} tokens)")
        for h in self.hooks:
            getattr(h, "after_backward", _skip)(self, s)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.n_steps, self.tokens = self.n_steps + 1, self.tokens + s.batch_size
        for h in self.hooks:
            getattr(h, "after_step", _skip)(self, s)
        return s

    def _accumulate(self, s: TrainStep, stop: bool) -> None:
        """Forward/backward over ``s.accum`` micro-batches (the gradient of their mean loss).

        Rank ``r`` of ``W`` reads the ``r``-th micro-batch of each group of ``W``; under DDP the loss and
        the Ctrl-C flag are all-reduced together so every rank stops at the same step.
        """
        per_micro = s.micro * s.seq_len
        group, total = per_micro * self.world, 0.0
        for a in range(s.accum):
            x, y = batch_at(
                self.corpus.train,
                int(self.tokens) + a * group + self.rank * per_micro,
                s.micro,
                s.seq_len,
                block=self.cfg.data_block,
            )
            sync = self.world == 1 or a == s.accum - 1  # DDP all-reduces only on the last micro-step
            with contextlib.nullcontext() if sync else self.net.no_sync(), self.autocast():
                _, loss = self.net(torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device))
                (loss / s.accum).backward()
            total += float(loss.detach()) / s.accum
            if s.measure and a == 0:  # one micro-batch's gradient is accum x the accumulated one so far
                s.sq_small = grad_sq(self.model) * s.accum**2
        if self.world > 1:
            t = torch.tensor([total, float(stop)], device=self.device)
            torch.distributed.all_reduce(t)
            total, stop = float(t[0]) / self.world, bool(t[1] > 0)
        s.loss, s.stop = total, stop


def _skip(trainer, s):
    return None


def compile_options(device) -> dict:
    """``torch.compile`` keywords for ``device``: on CPU the C++ wrapper (the graph's kernels called from
    generated C++ instead of Python: about 10% more tokens/s on the CPU tier's small model)."""
    return dict(options={"cpp_wrapper": True}) if str(device).startswith("cpu") else {}


def _wrap(model, cfg, device, world):
    """``(net, autocast)``: the model compiled and DDP-wrapped as configured, and its precision context."""
    net = torch.compile(model, **compile_options(device)) if cfg.compile else model
    bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.startswith("cuda"))
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net)
    return net, autocast


class NoiseScale:
    """Measures ``B_simple`` on steps the plan marks: raw |G|^2 and tr(Sigma) estimates plus their moving ratio."""

    def __init__(self):
        self.ema = GNSEstimator()
        self.last = None

    def after_backward(self, t: Trainer, s: TrainStep) -> None:
        self.last = None
        if s.measure and s.sq_small is not None:
            b_small, sq_big = s.micro * s.seq_len, grad_sq(t.model)
            self.last = two_batch_estimates(s.sq_small, b_small, sq_big, s.batch_size)
            self.ema.update(s.sq_small, b_small, sq_big, s.batch_size)

    def state_dict(self) -> dict:
        """The moving averages (a checkpoint keeps them: a resumed run measures as an uninterrupted one)."""
        return dict(g2=self.ema.g2, tr=self.ema.tr)

    def load_state_dict(self, state: dict) -> None:
        self.ema.g2, self.ema.tr = state.get("g2"), state.get("tr")

    def columns(self) -> dict:
        if self.last is None:
            return dict(b_simple="", gns_g2="", gns_trace="")
        return dict(b_simple=self.ema.value, gns_g2=self.last[0], gns_trace=self.last[1])


class BatchRule:
    """Runs an online batch rule (:class:`dbs_theory.rules.online.OnlineRule`, also the trainer's ``batch_for``):
    after each step it reads the step's loss and the noise scale's moving average, and where a decision is
    due it lets the rule choose the batch from the data consumed on. Before the logger and the checkpoint,
    so a checkpoint holds the decision."""

    def __init__(self, rule, noise: NoiseScale):
        self.rule, self.noise = rule, noise

    def after_step(self, t: Trainer, s: TrainStep) -> None:
        self.rule.observe(s.loss, self.noise.ema.value)
        if self.rule.due(t.tokens):
            self.rule.decide(t.tokens)


class Logger:
    """Appends one row per step to ``log.csv`` (rank 0), with a validation loss when one is due."""

    def __init__(self, logf, run, noise: NoiseScale | None = None):
        self.writer, self.logf, self.run, self.noise = csv.DictWriter(logf, fieldnames=LOG_FIELDS), logf, run, noise

    @staticmethod
    def eval_due(cfg, step, tokens, batch) -> bool:
        """Every ``eval_every`` steps, each time ``eval_every_tokens`` pass, and at the end of the run."""
        crossed = cfg.eval_every_tokens > 0 and int(tokens // cfg.eval_every_tokens) > int(
            (tokens - batch) // cfg.eval_every_tokens
        )
        return step % cfg.eval_every == 0 or crossed or tokens >= cfg.tokens

    @staticmethod
    def _val(t: Trainer) -> float:
        """The held-out loss now: on ``final_eval_tokens`` at the end of the run, else ``eval_tokens``."""
        final = t.tokens >= t.cfg.tokens and t.cfg.final_eval_tokens > 0
        return evaluate(t.model, t.corpus, t.cfg, t.device, t.cfg.final_eval_tokens if final else None)

    def after_step(self, t: Trainer, s: TrainStep) -> None:
        due = self.eval_due(t.cfg, t.n_steps, t.tokens, s.batch_size)
        row = dict(
            run=self.run,
            batch_size=s.batch_size,
            step=t.n_steps,
            tokens=int(t.tokens),
            loss=s.loss,
            lr=s.lr,
            val_loss=self._val(t) if due else "",
            seq_len=s.seq_len,
            world_size=t.world,
            wall_time=f"{time.time():.3f}",
            **(self.noise.columns() if self.noise else dict(b_simple="", gns_g2="", gns_trace="")),
        )
        self.writer.writerow(row)
        self.logf.flush()


class Checkpointer:
    """Saves ``ckpt.pt`` (rank 0) every ``checkpoint_every`` steps, at the end, and when the run stops early."""

    def __init__(self, path, payload):
        self.path, self.payload = path, payload

    def after_step(self, t: Trainer, s: TrainStep) -> None:
        cfg = t.cfg
        early = s.stop or (cfg.stop_at_tokens is not None and t.tokens >= cfg.stop_at_tokens)
        if t.n_steps % cfg.checkpoint_every == 0 or t.tokens >= cfg.tokens or early:
            save_checkpoint(self.path, self.payload(t))


class Progress:
    """A tqdm bar in tokens with the loss and the rate (off when ``enabled`` is false)."""

    def __init__(self, total, initial, desc, enabled):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=int(total), initial=int(initial), unit="tok", disable=not enabled, desc=desc)
        self.t0, self.D0, self.enabled = time.perf_counter(), initial, enabled

    def after_step(self, t: Trainer, s: TrainStep) -> None:
        if self.enabled:
            self.bar.update(s.batch_size)
            rate = (t.tokens - self.D0) / (time.perf_counter() - self.t0 + 1e-9)
            self.bar.set_postfix(loss=f"{s.loss:.3f}", tok_s=f"{rate:.0f}", refresh=False)

    def close(self):
        self.bar.close()
