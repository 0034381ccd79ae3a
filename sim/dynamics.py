"""Exact expected NQM dynamics under any learning-rate and batch-size schedule.

The second moments follow ``m_i <- (1 - eta_t h_i)^2 m_i + eta_t^2 c_i / B_t``
exactly, for any per-step ``eta_t`` and ``B_t``. Over a stretch where both
are constant the closed form ``m(t) = m_inf + a^t (m(0) - m_inf)`` jumps any
number of steps in ``O(d)``; elsewhere the recursion runs step by step.

A schedule (for the learning rate or the batch size) is any of:

* a number: constant;
* a sequence of ``(from_D, value)`` pairs, or an object with a
  ``segments`` attribute or method giving them: piecewise constant in data;
* a callable ``f(D)`` of data consumed; if it also has ``next_change(D)``
  (the next ``D`` at which its value may change, or ``D`` in a varying
  region) constant stretches are jumped over, else it is stepped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dbs_theory.theory import numeric
from dbs_theory.schedules.piecewise import Piecewise
from dbs_theory.messages import num

from .nqm import NQM

__all__ = ["expected_loss", "Trajectory", "as_schedule", "check_batch_schedule"]


def as_schedule(spec, name="schedule"):
    """Normalise a schedule spec into a :class:`~dbs_theory.schedules.piecewise.Piecewise` or a callable
    (see module doc)."""
    if isinstance(spec, Piecewise):
        return spec
    if isinstance(spec, (int, float, np.floating, np.integer)):
        return Piecewise.constant(float(spec), "examples")
    segs = getattr(spec, "segments", None)
    if segs is None and callable(spec):
        return spec
    try:
        pairs = sorted((float(a), float(v)) for a, v in (segs() if callable(segs) else segs or list(spec)))
        return Piecewise(tuple(a for a, _ in pairs), tuple(v for _, v in pairs), "examples")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and "start at D = 0" in str(exc):
            raise ValueError(f"a piecewise {name} must start at D = 0") from None
        raise TypeError(
            f"{name} must be a number, (from_D, value) pairs or a callable of D; got {type(spec).__name__}"
        ) from exc


def check_batch_schedule(lr, batch_size):
    """Refuse a batch schedule in tokens (the NQM counts examples); warn when one derived at one learning
    rate is run at another constant one."""
    if getattr(batch_size, "unit", "examples") == "tokens" and getattr(batch_size, "kind", None) is not None:
        raise ValueError(
            "this batch schedule is in tokens but the NQM counts examples: build it with "
            "unit='examples' (or convert it: BatchSchedule.in_tokens goes the other way)"
        )
    measured = getattr(batch_size, "lr", None)
    if measured is not None and isinstance(lr, (int, float, np.floating)):
        from dbs_theory.measure.bopt_curve import check_lr

        check_lr(measured, float(lr), "batch schedule")


def _next(sched, D):
    nc = getattr(sched, "next_change", None)
    return nc(D) if nc is not None else D


@dataclass(frozen=True)
class Trajectory:
    """Recorded points of an expected-loss run; all arrays have one entry per record.

    Attributes
    ----------
    step : ndarray of int   Optimizer steps taken.
    D : ndarray             Data consumed (examples).
    lr : ndarray            Learning rate of the step that ended there.
    batch_size : ndarray    Batch size (examples) of that step.
    loss : ndarray          Expected loss.
    """

    step: np.ndarray
    D: np.ndarray
    lr: np.ndarray
    batch_size: np.ndarray
    loss: np.ndarray

    def rows(self):
        """The records as a list of dicts (tidy rows)."""
        keys = ("step", "D", "lr", "batch_size", "loss")
        return [dict(zip(keys, vals)) for vals in zip(*(getattr(self, k).tolist() for k in keys))]


def _record_offsets(t, n, D, B, every, at):
    """Offsets j in 1..n (steps after t) to record inside a constant stretch."""
    js = []
    if every:
        first = every - (t % every)
        js.extend(range(first, n + 1, every))
    if at is not None:
        k = np.ceil((at - D) / B - 1e-12).astype(np.int64)
        js.extend(int(j) for j in k if 1 <= j <= n)
    js.append(n)  # the stretch's end carries the state; _keep_mask drops it unless asked for
    return sorted(set(js))


def expected_loss(nqm: NQM, lr, batch_size, steps=None, data=None, record_every=None, record_at=None) -> Trajectory:
    """Expected loss of SGD on ``nqm`` under learning-rate and batch schedules.

    Parameters
    ----------
    nqm : NQM
    lr, batch_size : schedule
        Learning rate and batch size (examples), each a constant, ``(from_D,
        value)`` pairs, or a callable of data consumed ``D`` (module doc).
    steps : int, optional
        Stop after this many steps.
    data : float, optional
        Stop once at least this much data (examples) is consumed.
    record_every : int, optional
        Record every this many steps.
    record_at : array_like, optional
        Record at the first step where ``D`` reaches each value.

    Returns
    -------
    Trajectory
        Step 0 and the final step are always recorded.
    """
    _check_stop(steps, data, record_every)
    check_batch_schedule(lr, batch_size)
    lr_s, b_s = as_schedule(lr, "lr"), as_schedule(batch_size, "batch_size")
    at = None if record_at is None else np.sort(np.asarray(record_at, float))
    h, c, w = nqm.h, nqm.c, 0.5 * nqm.weights * nqm.h
    m = nqm.m0.astype(float).copy()
    t, D = 0, 0.0
    rec = [(0, 0.0, lr_s(0.0), b_s(0.0), nqm.L_irr + float(w @ m))]
    max_steps = math.inf if steps is None else int(steps)
    budget = math.inf if data is None else float(data)
    while t < max_steps and D < budget:
        eta, B = float(lr_s(D)), float(b_s(D))
        span = min(_next(lr_s, D), _next(b_s, D), budget)
        if span <= D:  # both vary step by step here: run them through the compiled recursion
            t, D, m = _varying_chunk(nqm, lr_s, b_s, t, D, m, max_steps, budget, record_every, at, rec)
            continue
        _check_step(nqm, eta, B, D)
        n = min((span - D) / B, max_steps - t)
        n = int(max(1, math.ceil(n - 1e-12)))
        minf = numeric.stationary_moment(h, c, eta, B)
        loga = numeric.log_contraction(h, eta)
        js = np.array(_record_offsets(t, n, D, B, record_every, at), dtype=float)
        decay = np.exp(js[:, None] * loga)  # (records, d); exp(-inf) = 0 where eta h = 1
        losses = nqm.L_irr + (minf + decay * (m - minf)) @ w
        for j, L in zip(js, losses):
            rec.append((t + int(j), D + j * B, eta, B, float(L)))
        m = minf + decay[-1] * (m - minf)
        t, D = t + n, D + n * B
    # The stretch end is appended for the state update; keep it only where requested or final.
    keep = _keep_mask(rec, record_every, at)
    arr = [np.array([r[k] for r, kp in zip(rec, keep) if kp]) for k in range(5)]
    return Trajectory(arr[0].astype(np.int64), arr[1], arr[2], arr[3], arr[4])


def _check_stop(steps, data, record_every):
    """Refuse a run with no end, a negative step count, or a non-positive record interval."""
    if steps is None and data is None:
        raise ValueError("give steps= or data= to say when to stop")
    if steps is not None and steps < 0:
        raise ValueError(f"steps={num(steps)} must be >= 0")
    if record_every is not None and int(record_every) < 1:
        raise ValueError(f"record_every={num(record_every)} must be a positive integer")


def _check_step(nqm, eta, B, D):
    if not B > 0:
        raise ValueError(f"batch size must be positive; got {B!r} at D={D:g}")
    if eta != 0.0:  # a zero rate (the first warmup step) is allowed
        nqm.check_stable(eta)


def _varying_chunk(nqm, lr_s, b_s, t, D, m, max_steps, budget, every, at, rec, chunk=200_000):
    """Steps where a schedule varies continuously: evaluate it per step, recurse in numba."""
    from ._kernels import moment_steps

    limit = min(chunk, max_steps - t)
    B0 = float(b_s(D))
    b_next = _next(b_s, D)
    if b_next > D:  # the batch is constant for a while: only the rate varies, evaluate it at once
        n = int(min(limit, math.ceil((min(b_next, budget) - D) / B0 - 1e-12)))
        n = max(n, 1)
        Dstart = D + B0 * np.arange(n)
        lrs = (
            np.asarray(lr_s(Dstart), float)
            if isinstance(lr_s, Piecewise)
            else np.array([float(lr_s(x)) for x in Dstart])
        )
        bs = np.full(n, B0)
        _check_step(nqm, float(lrs.max()), B0, D)
        if lrs.min() < 0:
            raise ValueError(f"learning rate must be >= 0; got {lrs.min()!r}")
        lrs, bs, Ds = list(lrs), list(bs), list(Dstart + B0)
    else:
        lrs, bs, Ds = [], [], []
        Dc = D
        while len(lrs) < limit and Dc < budget:
            eta, B = float(lr_s(Dc)), float(b_s(Dc))
            _check_step(nqm, eta, B, Dc)
            lrs.append(eta)
            bs.append(B)
            Dc += B
            Ds.append(Dc)
            if min(_next(lr_s, Dc), _next(b_s, Dc)) > Dc:
                break  # a constant stretch starts: jump it in closed form
    steps = t + np.arange(1, len(lrs) + 1)
    Ds = np.array(Ds)
    record = np.zeros(len(lrs), bool)
    record[-1] = True
    if every:
        record |= steps % every == 0
    if at is not None:
        inside = at[(at > D) & (at <= Ds[-1])]
        record[np.searchsorted(Ds, inside, side="left")] = True  # first step reaching each value
    out = np.empty(int(record.sum()))
    m = m.copy()
    moment_steps(nqm.h, nqm.c, 0.5 * nqm.weights * nqm.h, m, np.array(lrs), np.array(bs), record, out)
    for k, L in zip(np.nonzero(record)[0], out):
        rec.append((int(steps[k]), float(Ds[k]), lrs[k], bs[k], nqm.L_irr + float(L)))
    return int(steps[-1]), float(Ds[-1]), m


def _keep_mask(rec, every, at):
    steps = np.array([r[0] for r in rec])
    Ds = np.array([r[1] for r in rec])
    keep = np.zeros(len(rec), bool)
    keep[0] = keep[-1] = True
    if every:
        keep |= steps % every == 0
    if at is not None:
        for a in at:
            k = np.searchsorted(Ds, a - 1e-9 * max(1.0, abs(a)), side="left")
            if k < len(rec):
                keep[k] = True
    # drop duplicates of the same step (a stretch end that was also a record)
    _, first = np.unique(steps, return_index=True)
    uniq = np.zeros(len(rec), bool)
    uniq[first] = True
    return keep & uniq
