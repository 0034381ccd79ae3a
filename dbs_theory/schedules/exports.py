"""What ``dbs schedule`` exports besides schedule.json: the Megatron-LM flags (``--rampup-batch-size`` and
``--step-batch-size-schedule``) as exports.json records, and the warning when a schedule reaches past the
sweep's largest batch. OLMo-core's callback settings come from
:meth:`dbs_theory.schedules.batch_schedules.BatchSchedule.to_olmo_core`."""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "megatron_ramp",
    "megatron_step",
    "warn_past_the_grid",
    "olmo_core_switches",
    "ramp_increments",
    "megatron_number",
    "megatron_text",
    "divisors",
]


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
            f"max_batch: the schedule reaches batch {max(sched.sizes):g}, {max(sched.sizes) / top:.3g}x the "
            f"largest the sweep ran ({top:g}): that stretch extrapolates the sweep (cap it at {top:g}, "
            "or sweep larger batches)",
            stacklevel=2,
        )


def olmo_core_switches(starts, sizes, horizon) -> tuple:
    """``(starts, sizes)`` of the batch OLMo-core's ``BatchSizeSchedulerCallback`` actually runs for
    ``batch_sizes=sizes`` at ``schedule=starts`` over ``[0, horizon]`` (see
    :func:`dbs_theory.schedules.batch_schedules.olmo_core_applied`, which wraps it as a schedule)."""
    sizes = [int(b) for b in sizes]
    T, b, i = 0.0, sizes[0], 0
    out_s, out_b = [0.0], [float(b)]
    while T < horizon:
        while i + 1 < len(starts) and starts[i + 1] <= T:
            i += 1
        target = sizes[i]
        nxt = starts[i + 1] if i + 1 < len(starts) else math.inf
        if target != b:
            wait = 0 if target < b else (-int(round(T / b))) % (target // b)
            if wait == 0:
                b = target
                out_s.append(T)
                out_b.append(float(b))
                continue
            due = math.inf if nxt == math.inf else max(1, math.ceil((nxt - T) / b))
            T += b * min(wait, due)  # the steps until it applies, or until the next event is due
            continue
        if nxt == math.inf:
            break
        T += b * max(1, math.ceil((nxt - T) / b))
    return tuple(out_s), tuple(out_b)


def divisors(n):
    n = int(n)
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return small + [n // d for d in small]


def ramp_increments(span, max_steps=4096, max_candidates=64):
    """Megatron ramp increments to try: divisors ``d`` of ``span`` with at most ``max_steps`` ramp steps.

    Only divisors ``>= span / max_steps`` qualify, i.e. cofactors ``span / d <= max_steps``,
    so the search runs over ``k = 1..max_steps`` (not up to ``sqrt(span)``) and keeps
    at most ``max_candidates`` of them spread over the range.
    """
    span = int(span)
    incs = sorted({span // k for k in range(1, min(max_steps, span) + 1) if span % k == 0})
    if len(incs) > max_candidates:
        incs = [incs[i] for i in np.unique(np.linspace(0, len(incs) - 1, max_candidates).round().astype(int))]
    return incs


_SUFFIXES = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))


def megatron_number(text) -> int:
    """A count as Megatron-LM's ``_parse_numeric_value`` reads it: ``int(float(x) * multiplier)``,
    with an optional case-insensitive suffix K/M/B/T (1e3/1e6/1e9/1e12)."""
    s, mult = str(text).strip().upper(), 1
    for suffix, m in _SUFFIXES:
        if s.endswith(suffix):
            s, mult = s[:-1], m
            break
    try:
        return int(float(s) * mult)
    except (ValueError, OverflowError):
        raise ValueError(f"{str(text).strip()!r} is not a number with an optional K/M/B/T suffix") from None


def megatron_text(n: int, what: str) -> str:
    """``n`` with the largest K/M/B/T suffix that divides it exactly, else plain; refused when Megatron's
    float-based parser would not read it back as ``n`` (beyond about 2**53)."""
    text = next((f"{n // m}{suffix}" for suffix, m in _SUFFIXES if n and n % m == 0), str(n))
    if megatron_number(text) != n:
        raise ValueError(f"{what} {n} is too large for Megatron's float-based parser to read exactly")
    return text
