"""Benchmark: the trainer's steady-state tokens/s against a minimal plain loop on the same model and batch.

The plain loop is eager PyTorch. The trainer runs three ways: eager with schedule and evaluation off
(its own overhead), compiled (``compile=1``: inductor with its C++ wrapper on CPU, what the CPU tier
runs), and compiled with the WSD schedule, logging and evaluation every 25 steps. The speed-up is the
compiled trainer over the plain loop, measured in this one run, at the sweep's micro-batch (16
sequences) and at the schedule experiment's (4). Every rate is measured in steady state: the plain loop times its
steps after
a warm-up, the trainer's rate comes from its log's ``wall_time`` column between
the row at 20% of the run and the last row (so imports, reading the corpus,
building the model and the first steps are outside the timed span). Each
configuration runs three times, alternating, and the median is kept. Prints
both rates, the overheads (1 - trainer/plain) and the machine.

Run: python benchmarks/bench_train.py [--preset tiny] [--tokens 400000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from dbs_theory.logs.runs import load_runs  # noqa: E402
from validate.data import batch_at, load_corpus  # noqa: E402
from validate.model import Transformer, preset  # noqa: E402
from validate.train import TrainConfig, train  # noqa: E402

SKIP = 0.2  # fraction of the run before the timed span


def plain_loop(cfg: TrainConfig, corpus) -> float:
    """Tokens/s of a bare AdamW loop (accumulation and clipping as the trainer does), after ``SKIP``."""
    torch.manual_seed(cfg.seed)
    model = Transformer(preset(cfg.preset, vocab_size=corpus.vocab_size, seq_len=cfg.seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    per_micro = cfg.micro_batch * cfg.seq_len
    accum = int(cfg.batch_size // per_micro)
    D, t0, D0 = 0, None, 0
    while D < cfg.tokens:
        if t0 is None and D >= SKIP * cfg.tokens:
            t0, D0 = time.perf_counter(), D
        for a in range(accum):
            x, y = batch_at(corpus.train, D + a * per_micro, cfg.micro_batch, cfg.seq_len)
            _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        D += accum * per_micro
    return (D - D0) / (time.perf_counter() - t0)


def trainer(cfg: TrainConfig) -> float:
    """Tokens/s of ``validate.train.train`` from its log's ``wall_time`` after ``SKIP`` of the run.

    The span ends at the second-to-last row: the last one also holds the end-of-run evaluation, which
    the plain loop does not do.
    """
    train(cfg, progress=False, overwrite=True)
    (run,) = load_runs(Path(cfg.out) / "log.csv")
    t, D = run.extra["wall_time"], run.tokens
    k = int(np.searchsorted(D, SKIP * cfg.tokens))
    return float((D[-2] - D[k]) / (t[-2] - t[k]))


def one_size(preset_name, tokens, micro, tmp, corpus) -> dict:
    """Median tokens/s of the plain loop and the three trainer configurations at ``micro`` sequences."""
    base = dict(
        preset=preset_name,
        seq_len=64,
        micro_batch=micro,
        batch_size=4 * micro * 64,
        tokens=tokens,
        checkpoint_every=10**9,
        lr_schedule="constant",
    )
    off = TrainConfig(**base, eval_every=10**9, out=f"{tmp}/off{micro}")
    fast = TrainConfig(**base, eval_every=10**9, compile=1, out=f"{tmp}/fast{micro}")
    on = TrainConfig(**{**base, "lr_schedule": "wsd"}, eval_every=25, compile=1, out=f"{tmp}/on{micro}")
    plain_loop(off, corpus)  # warm up the allocator and kernels
    trainer(fast)  # compile once (inductor caches the kernels, so the timed runs start warm)
    rates = dict(plain=[], off=[], fast=[], on=[])
    for _ in range(3):  # alternate, so slow drifts of the machine hit every configuration alike
        rates["plain"].append(plain_loop(off, corpus))
        rates["off"].append(trainer(off))
        rates["fast"].append(trainer(fast))
        rates["on"].append(trainer(on))
    (a,), (b,) = load_runs(Path(off.out) / "log.csv"), load_runs(Path(fast.out) / "log.csv")
    return dict(
        {k: statistics.median(v) for k, v in rates.items()},
        diff=float(np.max(np.abs(a.loss - b.loss))),
        steps=a.loss.size,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--tokens", type=float, default=400_000)
    ap.add_argument("--micro", default="16,4", help="micro-batches to measure, sequences (default 16,4)")
    args = ap.parse_args(argv)
    print("machine:", describe(), f"; torch {torch.__version__}, {torch.get_num_threads()} threads")
    corpus = load_corpus()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for micro in (int(m) for m in args.micro.split(",")):
            r = out[micro] = one_size(args.preset, args.tokens, micro, tmp, corpus)
            print(
                f"micro {micro:>2} x 64 tokens, 4 micro-steps: plain loop {r['plain']:,.0f} tok/s; trainer "
                f"eager, schedule/eval off {r['off']:,.0f} (overhead {1 - r['off'] / r['plain']:+.1%}); "
                f"compiled {r['fast']:,.0f} (speed-up {r['fast'] / r['plain']:.2f}x over the plain loop, "
                f"aim >= 1.5x); compiled with WSD schedule, logging, eval every 25 steps {r['on']:,.0f} "
                f"({r['on'] / r['plain']:.2f}x); the same seed's loss curve compiled vs eager differs by at most "
                f"{r['diff']:.1e} nats over {r['steps']} steps",
                flush=True,
            )
    print(f"medians of 3, steady state (after {SKIP:.0%} of {args.tokens:,.0f} tokens)")
    return out


if __name__ == "__main__":
    main()
