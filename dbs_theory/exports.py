"""What ``dbs schedule`` exports besides schedule.json: the Megatron-LM flags (``--rampup-batch-size`` and
``--step-batch-size-schedule``) as exports.json records, and the warning when a schedule reaches past the
sweep's largest batch. OLMo-core's callback settings come from
:meth:`dbs_theory.batch_schedules.BatchSchedule.to_olmo_core`."""

from __future__ import annotations

import warnings

__all__ = ["megatron_ramp", "megatron_step", "warn_past_the_grid"]


def megatron_ramp(sched, seq_len, horizon=None) -> dict:
    """``exports.json``'s ``megatron_rampup``: the ``--rampup-batch-size`` fit of ``sched`` over ``horizon``, or a
    ``note`` saying why there is none (a schedule in tokens needs ``seq_len``; a falling batch cannot ramp)."""
    if sched.unit == "tokens" and not seq_len:
        return dict(note="pass --seq-len to export to Megatron-LM (it counts samples)")
    if any(b < a for a, b in zip(sched.sizes, sched.sizes[1:])):
        return dict(
            note="the schedule's batch falls somewhere and --rampup-batch-size only ramps up: use "
            "--step-batch-size-schedule"
        )
    return sched.to_megatron(seq_len, horizon)


def megatron_step(sched, seq_len) -> dict:
    """``exports.json``'s ``megatron`` (the ``--step-batch-size-schedule`` value, or ``None``),
    ``megatron_args`` (the flags to pass) and ``megatron_note`` (why not, or how thresholds count)."""
    if sched.unit == "tokens" and not seq_len:
        return dict(
            megatron=None,
            megatron_args=None,
            megatron_note="pass --seq-len to export --step-batch-size-schedule (Megatron counts samples)",
        )
    try:
        value = sched.to_megatron_step_schedule(seq_len)
    except ValueError as exc:
        return dict(megatron=None, megatron_args=None, megatron_note=f"no --step-batch-size-schedule: {exc}")
    flags = f'--step-batch-size-schedule "{value}"'
    if seq_len:
        note = f"thresholds in tokens: pass the same --seq-length {seq_len}"
        flags += f" --seq-length {seq_len}"
    else:
        note = "thresholds in samples: only for a run without --seq-length, which makes them count tokens"
    return dict(megatron=value, megatron_args=flags, megatron_note=note)


def warn_past_the_grid(sched, env) -> None:
    """A warning when the schedule hands out a batch above the largest the sweep ran: the rule's model is
    extrapolated there (nothing in the sweep measured such a batch)."""
    top = max((b for b in (env or {}).get("batches") or [] if b), default=None)
    if top and max(sched.sizes) > 1.01 * top:
        warnings.warn(
            f"the schedule reaches batch {max(sched.sizes):g}, {max(sched.sizes) / top:.3g}x the largest "
            f"the sweep ran ({top:g}): that stretch extrapolates the sweep (cap it with --max-batch {top:g}, "
            "or sweep larger batches)",
            stacklevel=2,
        )
