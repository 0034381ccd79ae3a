"""What every experiment shares: run configs from a tier, result folders, verdicts, summaries."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dbs_theory.io import atomic_write, json_default
from dbs_theory.logs.runs import load_runs
from dbs_theory.measure.verdicts import Claim, paired_interval, verdict

from ..config import TrainConfig, split_batch
from .tiers import Tier

__all__ = ["config_for", "micro_for", "Experiment", "final_val", "loss_near", "spread_of", "gain_claim", "EFFECT"]

#: The smallest effect the paper reports, nats of validation loss (its gains are 0.01-0.04): an interval
#: wholly below it rules a claimed gain out.
EFFECT = 0.01


def micro_for(tier: Tier, batch_size: float) -> int:
    """The largest micro-batch (sequences) up to ``tier.max_micro`` that divides the batch."""
    return split_batch(batch_size, tier.seq_len, max_micro=tier.max_micro)[0]


def config_for(
    tier: Tier,
    tokens: float,
    batch: float | None = None,
    schedule: str | None = None,
    micro: int | None = None,
    seed: int = 0,
    **over,
) -> TrainConfig:
    """A run of ``tier`` over ``tokens``: constant ``batch`` or a schedule JSON, WSD without decay.

    The warmup is ``tier.warmup`` tokens whatever the run length, so every run
    has the same learning rate at the same data.
    """
    micro = micro or micro_for(tier, batch or tier.seq_len)
    base = dict(
        preset=tier.preset,
        seq_len=tier.seq_len,
        micro_batch=micro,
        batch_size=batch or 1.0,
        batch_schedule=schedule,
        tokens=float(tokens),
        lr=tier.lr,
        lr_schedule="wsd",
        warmup=min(tier.warmup / tokens, 0.5),
        decay=0.0,
        weight_decay=tier.weight_decay,
        eval_every=10**9,
        eval_every_tokens=tier.eval_every_tokens,
        eval_tokens=tier.eval_tokens,
        final_eval_tokens=tier.final_eval_tokens,
        eval_block=tier.eval_block,
        checkpoint_every=10**9,
        seed=seed,
        device=tier.device,
        data=tier.data,
        vocab_size=tier.vocab_size,
        data_glob=tier.data_glob,
        compile=tier.compile,
        data_block=2 * tier.seq_len,
    )  # shuffled blocks; 2x so the seq-len ablation can double
    base.update(over)
    return TrainConfig(**base)


class Experiment:
    """A result folder ``<root>/<name>/`` with configs, logs, ``summary.json`` and ``summary.md``."""

    def __init__(self, root, name, tier: Tier):
        self.root, self.name, self.tier = Path(root), name, tier
        self.dir = self.root / name
        self.t0 = time.perf_counter()

    def collect(self, specs, dirs) -> dict:
        """Copy each run's log and config into the folder; return ``{label: Run}``."""
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "configs").mkdir(parents=True, exist_ok=True)
        runs = {}
        for spec in specs:
            d = dirs[spec.label]
            shutil.copyfile(d / "log.csv", self.dir / "logs" / f"{spec.label}.csv")
            shutil.copyfile(d / "config.json", self.dir / "configs" / f"{spec.label}.json")
            (runs[spec.label],) = load_runs(d / "log.csv")
        return runs

    def write(self, claims, data, tables=()):
        """Write ``summary.json`` and ``summary.md``.

        ``claims``: :class:`~dbs_theory.measure.verdicts.Claim` rows (or dicts with
        ``claim``, ``measured``, ``verdict``); ``tables``: ``(title, markdown)``.
        """
        claims = [c.as_dict() if isinstance(c, Claim) else Claim(**c).as_dict() for c in claims]
        wall = time.perf_counter() - self.t0
        summary = dict(
            experiment=self.name,
            tier=self.tier.name,
            wall_seconds=wall,
            claims=claims,
            tier_config={k: v for k, v in asdict(self.tier).items() if k not in ("launcher", "store")},
            **data,
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.dir / "summary.json") as fh:
            json.dump(summary, fh, indent=1, default=json_default)
        lines = [
            f"# {self.name} (tier {self.tier.name})",
            "",
            f"Wall time {wall / 60:.1f} min (cached runs are not retrained). "
            f"Model preset `{self.tier.preset}`, sequence length {self.tier.seq_len}, "
            f"lr {self.tier.lr:g}, weight decay {self.tier.weight_decay:g}.",
            "",
            "| paper's claim | our measurement | verdict |",
            "|---|---|---|",
        ]
        cell = lambda t: str(t).replace("|", "\u2223")  # a literal | would split the table cell
        lines += [f"| {cell(c['claim'])} | {cell(c['measured'])} | **{c['verdict']}** |" for c in claims]
        for title, md in tables:
            lines += ["", f"## {title}", "", md]
        with atomic_write(self.dir / "summary.md") as fh:
            fh.write("\n".join(lines) + "\n")
        return summary


def final_val(run) -> float:
    """The last validation loss of a run (every run evaluates at its end)."""
    v = run.extra["val_loss"]
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else math.nan


def loss_near(run, tokens, window=0.05):
    """Mean training loss over the tokens ``[tokens (1 - window), tokens]`` (smoothing noise)."""
    sel = (run.tokens <= tokens) & (run.tokens >= tokens * (1 - window))
    return float(np.mean(run.loss[sel])) if sel.any() else math.nan


def spread_of(row) -> dict:
    """``{"sd", "dof"}``: the spread of one paired difference, measured over a comparison's seeds."""
    n = int(row.get("seeds", 0))
    return dict(sd=float(row.get("gain_sd", math.nan)), dof=max(n - 1, 0))


def gain_claim(claim, what, diffs, spread=None, expect_positive=True, effect=EFFECT) -> Claim:
    """A claim about paired differences ``diffs`` (one per seed), judged by :func:`dbs_theory.measure.verdicts.verdict`.

    With one seed the interval borrows ``spread`` (:func:`spread_of` the schedule
    experiment's seeds); ``what`` says what the differences are.
    """
    sp = spread or {}
    dof = sp.get("dof") or None  # 0 degrees of freedom: no usable spread
    iv = paired_interval(diffs, sd=sp.get("sd") if dof else None, dof=dof)
    return Claim(claim, f"{what}: {iv.text()}", verdict(iv, expect_positive, effect), iv)
