"""What a training run follows, from its config: the LR schedule, the batch schedule (a file, a fixed batch,
or an online rule measured during the run) and how each batch rounds to whole micro-batches."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dbs_theory.schedules.batch_schedules import BatchSchedule, constant_batch
from dbs_theory.measure.bopt_curve import check_lr
from dbs_theory.schedules.lr_schedules import constant, cosine, wsd
from dbs_theory.logs.log_files import regular_file

from .config import MAX_MICRO, TrainConfig, seq_lengths, split_batch

__all__ = ["lr_schedule", "batch_schedule", "online_rule", "batch_rounding"]


def lr_schedule(cfg: TrainConfig):
    total = cfg.tokens
    if cfg.lr_schedule == "constant":
        return constant(cfg.lr)
    if cfg.lr_schedule == "cosine":
        return cosine(cfg.lr, total, warmup=cfg.warmup * total, final_ratio=cfg.final_ratio)
    W, T = cfg.warmup * total, cfg.decay * total
    return wsd(cfg.lr, W, max(total - W - T, 0.0), T, cfg.final_ratio)


def batch_schedule(cfg: TrainConfig, world=1):
    """``(schedule in tokens, sha256 of the schedule file or None)``.

    A schedule in samples/examples (sequences) is converted to tokens with
    ``cfg.seq_len``; with a sequence-length schedule that conversion is
    ambiguous and refused. Every batch the run would use must fit in ``cfg.tokens``.
    With ``cfg.batch_rule`` the schedule is a fresh :class:`~dbs_theory.rules.online.OnlineRule` (sizes whole
    micro-batches on ``world`` processes; the sha is the ``rule_fit`` file's).
    """
    if cfg.batch_rule:
        return online_rule(cfg, world)
    if not cfg.batch_schedule:
        return constant_batch(cfg.batch_size), None
    path = Path(cfg.batch_schedule)
    try:
        raw = regular_file(path).read_bytes()
        sched = BatchSchedule.from_json(raw.decode("utf-8-sig"))
    except OSError as exc:
        raise OSError(f"cannot read batch schedule {str(path)!r}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg.batch_schedule}: {str(exc).splitlines()[0]}") from None
    check_lr(sched.lr, cfg.lr, f"batch schedule {cfg.batch_schedule}")  # Bmin and Bopt move with the rate
    if sched.unit != "tokens":
        if cfg.seq_len_schedule:
            raise ValueError(
                f"{cfg.batch_schedule}: a schedule in {sched.unit} cannot be converted to tokens "
                "while seq_len_schedule changes the sequence length; write it in tokens"
            )
        sched = sched.in_tokens(cfg.seq_len)
    used = [b for a, b in sched.segments if a < cfg.tokens]
    if max(used) > cfg.tokens:
        raise ValueError(
            f"{cfg.batch_schedule}: batch_size {max(used):g} tokens exceeds the whole run (tokens={cfg.tokens:g})"
        )
    return sched, hashlib.sha256(raw).hexdigest()


def online_rule(cfg: TrainConfig, world=1):
    """``(OnlineRule, sha256 of --rule-fit or None)`` for ``cfg.batch_rule`` (dbs_theory.rules.online)."""
    from dbs_theory.rules.online import bmin_table, online_rule
    from dbs_theory.schedules.lr_plan import LRPlan

    sha = None
    if cfg.rule_fit:
        from dbs_theory.measure.fit_table import BoptTable
        from dbs_theory.logs.schemas import SchemaError

        try:
            fit = BoptTable.load(cfg.rule_fit)
            bmin_table(fit.rows)  # refused here, naming the file, where it cannot serve the rule
        except OSError as exc:
            raise OSError(f"rule_fit: cannot read {cfg.rule_fit!r}: {exc.strerror or exc}") from None
        except SchemaError as exc:
            raise ValueError(f"rule_fit: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"rule_fit: {cfg.rule_fit}: {exc} (a fit.json from dbs fit)") from None
        raw = Path(cfg.rule_fit).read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        check_lr(fit.lr, cfg.lr, "sweep (--rule-fit)")
    # a WSD run without a decay holds its rate after warmup: the floor-ratio rule anneals its last tenth, as a
    # constant-rate run's (it used to never anneal there)
    plan = (
        LRPlan(decay=cfg.decay)
        if cfg.lr_schedule == "wsd" and cfg.decay > 0
        else LRPlan(shape="cosine")
        if cfg.lr_schedule == "cosine"
        else LRPlan()
    )
    g = float(cfg.seq_len * world * (cfg.micro_batch or 1))
    rule = online_rule(
        cfg.batch_rule,
        cfg.batch_size,
        cfg.tokens,
        plan,
        granularity=g,
        rows=fit.rows if cfg.rule_fit else None,
        every=cfg.rule_every or None,
        max_batch=cfg.rule_max_batch or None,
    )
    return rule, sha


def batch_rounding(cfg, sched, world=1) -> list:
    """``[{"from", "requested", "used"}]`` for every batch the run asks for that it cannot run exactly."""
    lengths = seq_lengths(cfg.seq_len_schedule, cfg.seq_len)
    points = sorted({a for a in (*sched.starts, *lengths.starts) if a < cfg.tokens})
    out = []
    for D in points:
        L, want = lengths(D), sched(D)
        used = split_batch(want, L, world, cfg.micro_batch, MAX_MICRO[cfg.preset])[2]
        if used != want:
            out.append(dict(tokens_from=float(D), requested=float(want), used=int(used), seq_len=L))
    return out
