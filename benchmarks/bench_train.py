"""Benchmark: the trainer's tokens/s against a minimal plain loop on the same model and batch.

Prints both rates and the overhead (1 - trainer/plain), plus the machine.
Run: python benchmarks/bench_train.py [--preset cpu] [--tokens 300000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from validate.data import batch_at, load_corpus  # noqa: E402
from validate.model import Transformer, preset  # noqa: E402
from validate.train import TrainConfig, train  # noqa: E402


def plain_loop(cfg: TrainConfig, corpus):
    torch.manual_seed(cfg.seed)
    model = Transformer(preset(cfg.preset, seq_len=cfg.seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay)
    per_micro = cfg.micro_batch * cfg.seq_len
    accum = int(cfg.batch_tokens // per_micro)
    D = 0
    t = time.perf_counter()
    while D < cfg.tokens:
        for a in range(accum):
            x, y = batch_at(corpus.train, D + a * per_micro, cfg.micro_batch, cfg.seq_len)
            _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        D += accum * per_micro
    return D / (time.perf_counter() - t)


def trainer(cfg: TrainConfig):
    t = time.perf_counter()
    res = train(cfg, progress=False)
    return res["tokens"] / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--tokens", type=float, default=300_000)
    args = ap.parse_args(argv)
    print("machine:", describe(), f"; torch {torch.__version__}, {torch.get_num_threads()} threads")
    corpus = load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(preset=args.preset, seq_len=64, micro_batch=16, batch_tokens=4096, tokens=args.tokens,
                    checkpoint_every=10**9, lr_schedule="constant", out=tmp)
        off = TrainConfig(**base, eval_every=10**9)
        on = TrainConfig(**{**base, "lr_schedule": "wsd", "out": tmp + "/on"}, eval_every=25)
        plain_loop(off, corpus)  # warm up
        # best of two each; the trainer's time includes loading the corpus (~0.4 s) and the model
        p = max(plain_loop(off, corpus) for _ in range(2))
        t_off = max(trainer(off) for _ in range(2))
        t_on = max(trainer(on) for _ in range(2))
    print(f"plain loop {p:,.0f} tok/s; trainer, schedule/eval off {t_off:,.0f} tok/s "
          f"(overhead {1 - t_off / p:+.1%}, aim <= 5%); with WSD schedule, logging, eval every 25 steps "
          f"{t_on:,.0f} tok/s (overhead {1 - t_on / p:+.1%}, aim <= 10%)")
    return dict(plain=p, off=t_off, on=t_on)


if __name__ == "__main__":
    main()
