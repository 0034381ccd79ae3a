"""Benchmark: the trainer's steady-state tokens/s against a minimal plain loop on the same model and batch.

Both rates are measured in steady state: the plain loop times its steps after
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

from dbs_theory.runs import load_runs  # noqa: E402
from validate.data import batch_at, load_corpus  # noqa: E402
from validate.model import Transformer, preset  # noqa: E402
from validate.train import TrainConfig, train  # noqa: E402

SKIP = 0.2  # fraction of the run before the timed span


def plain_loop(cfg: TrainConfig, corpus) -> float:
    """Tokens/s of a bare AdamW loop (accumulation and clipping as the trainer does), after ``SKIP``."""
    torch.manual_seed(cfg.seed)
    model = Transformer(preset(cfg.preset, vocab_size=corpus.vocab_size, seq_len=cfg.seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay)
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--tokens", type=float, default=400_000)
    args = ap.parse_args(argv)
    print("machine:", describe(), f"; torch {torch.__version__}, {torch.get_num_threads()} threads")
    corpus = load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(preset=args.preset, seq_len=64, micro_batch=16, batch_size=4096, tokens=args.tokens,
                    checkpoint_every=10**9, lr_schedule="constant")
        off = TrainConfig(**base, eval_every=10**9, out=tmp + "/off")
        on = TrainConfig(**{**base, "lr_schedule": "wsd"}, eval_every=25, out=tmp + "/on")
        plain_loop(off, corpus)  # warm up the allocator and kernels
        rates = dict(plain=[], off=[], on=[])
        for _ in range(3):  # alternate, so slow drifts of the machine hit every configuration alike
            rates["plain"].append(plain_loop(off, corpus))
            rates["off"].append(trainer(off))
            rates["on"].append(trainer(on))
    p, t_off, t_on = (statistics.median(rates[k]) for k in ("plain", "off", "on"))
    print(f"plain loop {p:,.0f} tok/s; trainer, schedule/eval off {t_off:,.0f} tok/s "
          f"(overhead {1 - t_off / p:+.1%}, aim <= 5%); with WSD schedule, logging, eval every 25 steps "
          f"{t_on:,.0f} tok/s (overhead {1 - t_on / p:+.1%}, aim <= 10%); medians of 3, steady state "
          f"(after {SKIP:.0%} of {args.tokens:,.0f} tokens)")
    return dict(plain=p, off=t_off, on=t_on)


if __name__ == "__main__":
    main()
