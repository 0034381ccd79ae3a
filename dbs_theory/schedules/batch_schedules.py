"""Batch-size schedules as pure functions of data consumed (optax style).

A factory validates its arguments once and returns a :class:`BatchSchedule`:
a callable ``B(D)`` that is piecewise constant in data ``D`` (tokens,
samples or examples). Because it depends on ``D`` alone, a resumed run that
restores its data counter gets exactly the same batch sizes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Integral

import numpy as np

from .exports import megatron_number, megatron_text, olmo_core_switches, ramp_increments

from ..messages import num
from ..deprecation import renamed
from .piecewise import UNITS, Piecewise

__all__ = [
    "BatchSchedule",
    "constant_batch",
    "step_batch",
    "dynamic_batch",
    "lr_rescale",
    "parse_megatron_step_schedule",
    "olmo_core_applied",
    "UNITS",
]


@dataclass(frozen=True)
class BatchSchedule(Piecewise):
    """A piecewise-constant batch size in data units (a :class:`~dbs_theory.schedules.piecewise.Piecewise`).

    Attributes
    ----------
    starts : tuple of float     Data ``D`` at which each segment begins (``starts[0] == 0``).
    values : tuple of float     Batch size of each segment (also ``sizes``).
    unit : str                  ``tokens``, ``samples`` or ``examples`` (both ``D`` and the batch).
    lr : float or None          Learning rate the schedule was derived at.
    kind : str                  ``constant``, ``step`` or ``dynamic``.
    params : dict               The factory arguments, for the record.
    """

    lr: float | None = None
    kind: str = "step"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if any(callable(s) or not (math.isfinite(s) and s > 0) for s in self.values):
            raise ValueError(f"batch sizes must be positive and finite; got {list(self.values)}")

    @property
    def sizes(self) -> tuple:
        """The batch size of each segment (``values``)."""
        return self.values

    def in_tokens(self, seq_len) -> "BatchSchedule":
        """This schedule with ``D`` and ``B`` in tokens (``seq_len`` tokens per sample/example)."""
        if self.unit == "tokens":
            return self
        L = _positive("seq_len", seq_len)
        return BatchSchedule(
            tuple(a * L for a in self.starts),
            tuple(b * L for b in self.sizes),
            "tokens",
            lr=self.lr,
            kind=self.kind,
            params={**self.params, "converted_from": self.unit, "seq_len": L},
        )

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> str:
        """The schedule format of docs/conventions.md: ``{"unit", "segments": [{"from", "batch_size"}], ...}``."""
        return json.dumps(
            dict(
                unit=self.unit,
                lr=self.lr,
                kind=self.kind,
                params=self.params,
                segments=[{"from": a, "batch_size": b} for a, b in self.segments],
            ),
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "BatchSchedule":
        """Inverse of :meth:`to_json` (exact: floats round-trip through JSON), checked by
        :class:`dbs_theory.logs.schemas.ScheduleFile`: one-line ``ValueError`` on anything else."""
        from ..logs.schemas import ScheduleFile, parse

        f = parse(text, ScheduleFile, "not a batch-schedule JSON")
        return cls(
            tuple(s.start for s in f.segments),
            tuple(s.batch_size for s in f.segments),
            f.unit,
            lr=f.lr,
            kind=f.kind,
            params=f.params,
        )

    def step_list(self) -> str:
        """A plain list for humans: one line per segment."""
        return "\n".join(f"from {a:>14,.0f} {self.unit}: batch {b:,.0f} {self.unit}" for a, b in self.segments)

    # -- exports for trainers --------------------------------------------------------------
    def to_olmo_core(self, strict=False, horizon=None) -> dict:
        """Arguments for OLMo-core's ``BatchSizeSchedulerCallback``.

        That callback takes ``batch_sizes`` (ints) and a ``schedule`` of
        durations starting at 0, and accepts only changes by an integer
        factor (``4M -> 8M``, not ``4M -> 6M``). Each change here is rounded
        in log space to the nearest integer factor (at least 2 for an
        increase). The callback applies an increase by ``ratio`` only once
        the batches it has processed at the current size are a multiple of
        ``ratio`` (:func:`olmo_core_applied`), so a switch can land a few
        steps late; ``applied`` lists the segments it will run and ``error``
        the data-weighted mean relative batch difference from this schedule
        over ``[0, horizon]`` (default: the schedule's own horizon), 0 when
        OLMo-core runs it exactly. ``strict=True`` raises instead of
        rounding. Note the callback also rescales the learning rate by
        ``sqrt(ratio)``, which the paper found no better than keeping it
        constant.
        """
        sizes = [int(round(self.sizes[0]))]
        starts = [0.0]
        for a, b in zip(self.starts[1:], self.sizes[1:]):
            prev = sizes[-1]
            ratio = b / prev
            k = max(1, round(ratio)) if ratio >= 1 else 1 / max(1, round(1 / ratio))
            if strict and abs(k - ratio) > 1e-9 * ratio:
                raise ValueError(f"batch change {prev} -> {b:g} at D={a:g} is not an integer factor")
            new = int(round(prev * k))
            if new != prev:
                sizes.append(new)
                starts.append(a)
        end = self._horizon(horizon)
        applied = olmo_core_applied(starts, sizes, end, self.unit)
        out = dict(
            batch_sizes=sizes,
            schedule=[{"value": int(s), "unit": self.unit} for s in starts],
            error=self._mismatch(applied, end),
            applied=[{"from": a, "batch_size": b} for a, b in applied.segments],
            horizon=end,
        )
        if self.unit != "tokens":
            out["note"] = "OLMo-core durations count tokens: multiply values and batch sizes by seq_len"
        return out

    def to_megatron(self, seq_len=None, horizon=None) -> dict:
        """Megatron-LM's ``--rampup-batch-size <start> <increment> <samples>`` (a linear ramp).

        Megatron counts in samples: pass ``seq_len`` when the unit is tokens.
        The ramp goes from the first batch to the last in equal increments
        over ``samples``; this picks the increment and ramp length that best
        match the schedule and reports the data-weighted mean relative batch
        error of the approximation in ``error``.
        """
        scale = 1.0
        if self.unit == "tokens":
            if not seq_len or seq_len <= 0:
                raise ValueError("the schedule is in tokens: pass seq_len to convert to Megatron samples")
            scale = 1.0 / seq_len
        start, final = (int(round(s * scale)) for s in (self.sizes[0], self.sizes[-1]))
        horizon = self._horizon(horizon)
        if final <= start:
            return dict(
                args=f"--global-batch-size {final}",
                start=start,
                increment=0,
                samples=0,
                global_batch_size=final,
                error=self._mismatch(constant_batch(final / scale, self.unit), horizon),
            )
        D = np.linspace(0, horizon, 4001)
        ours = self(D)
        best = None
        for inc in ramp_increments(final - start):
            n = (final - start) // inc
            for ramp in np.linspace(horizon * scale / 40, horizon * scale, 40):
                meg = (start + inc * np.minimum(n, np.floor(D * scale / (ramp / n)))) / scale
                err = float(np.mean(np.abs(meg / ours - 1)))
                if best is None or err < best[0]:
                    best = (err, inc, int(round(ramp)))
        assert best is not None  # the ramp has at least one increment
        err, inc, samples = best
        return dict(
            args=f"--rampup-batch-size {start} {inc} {samples} --global-batch-size {final}",
            start=start,
            increment=inc,
            samples=samples,
            global_batch_size=final,
            error=err,
        )

    def to_megatron_step_schedule(self, seq_len=None, micro_batch_size=None, data_parallel_size=None) -> str:
        """Megatron-LM's ``--step-batch-size-schedule`` value, e.g. ``"0:768 250B:1536 500B:3072"``.

        Space-separated ``THRESHOLD:BATCH_SIZE`` pairs, the first at 0. Batch
        sizes are global batches in samples (sequences): a schedule in tokens
        is divided by ``seq_len`` and must come out whole; ``samples`` and
        ``examples`` are taken as sequences already. Thresholds are tokens
        when ``seq_len`` is given (use the same ``--seq-length`` in Megatron,
        which floors them to samples), else samples (only for a Megatron run
        without ``--seq-length``: with it Megatron reads them as tokens).
        Megatron's data counter moves in whole samples, so a threshold is
        rounded up to the next whole sample: the batch used at every
        reachable sample count is unchanged (a segment shorter than one
        sample is never used and is left out). Exact multiples of 1000**k
        take a K/M/B/T suffix (``250000000000 -> 250B``).

        With ``micro_batch_size`` and/or ``data_parallel_size`` (the other
        defaults to 1) every batch size must divide by their product (Megatron
        itself checks only the current batch, at run time). Raises
        ``ValueError`` (one line) when the schedule cannot be written exactly.
        """
        L = None if seq_len is None else positive_int("seq_len", seq_len)
        pairs = self._megatron_sample_pairs(L)
        if micro_batch_size is not None or data_parallel_size is not None:
            mbs = positive_int("micro_batch_size", 1 if micro_batch_size is None else micro_batch_size)
            dp = positive_int("data_parallel_size", 1 if data_parallel_size is None else data_parallel_size)
            for _, b in pairs:
                if b % (mbs * dp):
                    raise ValueError(
                        f"batch size {b} samples is not divisible by micro_batch_size {mbs} x "
                        f"data_parallel_size {dp} = {mbs * dp}"
                    )
        return " ".join(
            f"{megatron_text(t * (L or 1), 'threshold')}:{megatron_text(b, 'batch size')}" for t, b in pairs
        )

    def _megatron_sample_pairs(self, L):
        """``[(threshold, batch)]`` in whole samples for Megatron (thresholds rounded up, see above)."""
        if self.unit == "tokens" and L is None:
            raise ValueError(
                "the schedule is in tokens: pass seq_len (tokens per sample) to write Megatron's batch sizes in samples"
            )
        per = L if self.unit == "tokens" else 1
        pairs = []
        for a, b in self.segments:
            n = Fraction(b) / per
            if n.denominator != 1:
                raise ValueError(
                    f"batch size {b:.17g} {self.unit} is {float(n):.17g} samples"
                    + (f" at seq_len={L}" if per > 1 else "")
                    + ": Megatron's global batch must be a whole number of samples"
                )
            t = math.ceil(Fraction(a) / per)
            if pairs and pairs[-1][0] == t:
                pairs.pop()  # the earlier segment ends before one more whole sample: never used
            pairs.append((t, int(n)))
        return pairs

    def _horizon(self, horizon=None) -> float:
        """``horizon`` if given, else the one the schedule was built for, else 1.25x its last start."""
        if horizon is not None:
            return float(_positive("horizon", horizon))
        last, kept = self.starts[-1], self.params.get("horizon")
        if isinstance(kept, (int, float)) and not isinstance(kept, bool) and math.isfinite(kept) and kept > 0:
            return float(kept)
        return last * 1.25 if last > 0 else 1.0

    def _mismatch(self, other, horizon=None) -> float:
        """Data-weighted mean of ``|other(D)/self(D) - 1|`` over ``[0, horizon]``."""
        D = np.linspace(0, self._horizon(horizon), 4001)
        return float(np.mean(np.abs(other(D) / self(D) - 1)))


def olmo_core_applied(starts, sizes, horizon, unit="tokens") -> BatchSchedule:
    """The batch sizes OLMo-core's ``BatchSizeSchedulerCallback`` runs for ``batch_sizes=sizes`` at
    ``schedule=starts`` (integer factors, data units) over ``[0, horizon]``.

    Before each batch the callback takes the latest event due (its start at or below the data seen). A
    decrease applies at once; an increase by ``ratio`` only when the batches processed at the current size
    are a multiple of ``ratio`` (its data loader re-indexes by the new size). So ``48 -> 144`` due at 480
    tokens runs from 576 (12 batches of 48), and an event passed while waiting is skipped for the latest.
    Constant stretches are jumped in closed form: O(number of events) work.
    """
    starts_applied, sizes_applied = olmo_core_switches(starts, sizes, horizon)
    return BatchSchedule(starts_applied, sizes_applied, unit, kind="step", params={"olmo_core": True})


def parse_megatron_step_schedule(text, seq_len=None) -> BatchSchedule:
    """Read a ``--step-batch-size-schedule`` value the way Megatron-LM does.

    ``THRESHOLD:BATCH_SIZE`` pairs separated by spaces or commas, numbers with
    optional K/M/B/T suffixes, sorted by threshold. With ``seq_len``
    thresholds are tokens floored to whole samples (``tokens // seq_len``)
    and the result is in tokens (starts at the floored sample counts times
    ``seq_len``, batch sizes in samples times ``seq_len``); without it
    thresholds and the result are in samples. Where Megatron asserts (first
    threshold not 0, thresholds not strictly increasing after flooring, a
    batch size not positive) this raises ``ValueError`` in one line.
    """
    L = None if seq_len is None else positive_int("seq_len", seq_len)
    entries = str(text).strip().replace(",", " ").split()
    if not entries:
        raise ValueError("empty step batch-size schedule: give THRESHOLD:BATCH_SIZE pairs such as '0:768 250B:1536'")
    pairs = []
    for entry in entries:
        if ":" not in entry:
            raise ValueError(f"schedule entry {entry!r} is not THRESHOLD:BATCH_SIZE")
        t, b = (megatron_number(x) for x in entry.split(":", 1))
        pairs.append((t // L if L else t, b))
    pairs.sort(key=lambda p: p[0])
    if pairs[0][0] != 0:
        raise ValueError(f"the first threshold must be 0 samples; got {pairs[0][0]}")
    for (t0, _), (t1, _) in zip(pairs, pairs[1:]):
        if t1 <= t0:
            raise ValueError(f"thresholds must increase strictly in samples; got {t0} then {t1}")
    if any(b <= 0 for _, b in pairs):
        raise ValueError(f"batch sizes must be positive; got {[b for _, b in pairs]}")
    per = L or 1
    return BatchSchedule(
        tuple(float(t * per) for t, _ in pairs),
        tuple(float(b * per) for _, b in pairs),
        "tokens" if L else "samples",
        kind="step",
        params=dict(megatron_step_schedule=str(text).strip(), seq_len=L),
    )


def positive_int(name, value) -> int:
    """``value`` as a positive int (an integer-valued float is accepted); one-line error otherwise."""
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    ok = ok or (isinstance(value, float) and value.is_integer())
    if not ok or value < 1:
        raise ValueError(f"{name}={num(value)} must be a positive whole number")
    return int(value)


def _positive(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={num(value)} must be a number") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}={num(value)} must be positive and finite")
    return v


@renamed(B="batch_size")
def constant_batch(batch_size, unit="tokens", lr=None) -> BatchSchedule:
    """A fixed batch of ``batch_size`` (``unit``) for all data.

    >>> constant_batch(4e6)(1e12)
    4000000.0
    """
    return BatchSchedule(
        (0.0,), (_positive("batch_size", batch_size),), unit, lr=lr, kind="constant", params=dict(B=float(batch_size))
    )


def step_batch(boundaries, sizes, unit="tokens", lr=None) -> BatchSchedule:
    """``sizes[0]`` until ``boundaries[0]``, then ``sizes[1]``, ... (``len(sizes) = len(boundaries) + 1``).

    >>> s = step_batch([125e9, 250e9, 375e9], [2e6, 4e6, 5e6, 6e6])
    >>> s(100e9), s(300e9), s(400e9)
    (2000000.0, 5000000.0, 6000000.0)
    """
    bounds = [_positive("boundary", b) for b in boundaries]
    sizes = [_positive("batch size", s) for s in sizes]
    if len(sizes) != len(bounds) + 1:
        raise ValueError(f"need len(sizes) == len(boundaries) + 1; got {len(sizes)} and {len(bounds)}")
    return BatchSchedule(
        tuple([0.0] + bounds), tuple(sizes), unit, lr=lr, kind="step", params=dict(boundaries=bounds, sizes=sizes)
    )


def dynamic_batch(
    f,
    *,
    interval,
    momentum,
    initial,
    granularity,
    min_batch,
    max_batch,
    monotone=True,
    horizon=None,
    unit="tokens",
    lr=None,
) -> BatchSchedule:
    """The paper's dynamic batch-size schedule.

    At every ``D_k = k * interval`` (``k = 1, 2, ...``) the unrounded state
    moves toward the optimal-batch curve ``f``:

    .. math::

        b_k = b_{k-1} + m\\,(f(D_k) - b_{k-1}), \\qquad b_0 = \\text{initial},\\ m \\in (0, 1],

    so ``m = 1`` jumps straight to ``f(D_k)``. The batch used from ``D_k``
    on is ``b_k`` clamped to ``[min_batch, max_batch]`` and rounded to a
    multiple of ``granularity`` (e.g. micro-batch x sequence length x world
    size, in tokens); with ``monotone=True`` it never decreases. The state is
    kept unrounded, so rounding cannot stall the schedule.

    Parameters
    ----------
    f : callable
        ``Bopt(D)``, e.g. a :class:`~dbs_theory.measure.bopt_curve.BoptCurve`.
    interval : float
        Data between re-evaluations (the paper: 125B tokens).
    momentum : float
        Smoothing factor ``m`` in ``(0, 1]``.
    initial, granularity, min_batch, max_batch : float
        In ``unit``; ``min_batch <= max_batch``.
    horizon : float
        Data up to which segments are computed (the run's budget); the last
        batch holds beyond it.

    Returns
    -------
    BatchSchedule
    """
    interval, gran, lo, hi, b, horizon = _dynamic_args(
        f, interval, momentum, initial, granularity, min_batch, max_batch, horizon
    )

    def used(state, prev):
        q = max(gran, round(min(max(state, lo), hi) / gran) * gran)
        q = q if q <= hi else math.floor(hi / gran) * gran  # rounding up must not pass the maximum
        return max(q, prev) if monotone and prev is not None else q

    starts, sizes = [0.0], [used(b, None)]
    for k in range(1, int(math.ceil(horizon / interval - 1e-9))):  # re-evaluations before the horizon only
        D = k * interval
        target = float(f(D))
        if not math.isfinite(target):
            raise ValueError(f"f(D={D:g}) = {num(target)} is not finite")
        b = b + momentum * (target - b)
        q = used(b, sizes[-1])
        if q != sizes[-1]:
            starts.append(D)
            sizes.append(q)
    params = dict(
        interval=interval,
        momentum=momentum,
        initial=float(initial),
        granularity=gran,
        min_batch=lo,
        max_batch=hi,
        monotone=bool(monotone),
        horizon=horizon,
    )
    return BatchSchedule(tuple(starts), tuple(sizes), unit, lr=lr, kind="dynamic", params=params)


def _dynamic_args(f, interval, momentum, initial, granularity, min_batch, max_batch, horizon):
    """:func:`dynamic_batch`'s arguments checked (one line naming the bad value); the numbers back."""
    interval = _positive("interval", interval)
    gran = _positive("granularity", granularity)
    lo, hi = _positive("min_batch", min_batch), _positive("max_batch", max_batch)
    b = _positive("initial", initial)
    if not 0 < momentum <= 1:
        raise ValueError(f"momentum={num(momentum)} must lie in (0, 1]")
    if lo > hi:
        raise ValueError(f"min_batch={num(min_batch)} must not exceed max_batch={num(max_batch)}")
    if gran > hi:
        raise ValueError(f"granularity={gran:g} exceeds max_batch={hi:g}: no multiple of it fits")
    horizon = _positive("horizon", horizon if horizon is not None else 100 * interval)
    if horizon / interval > 1e6:
        raise ValueError(f"horizon/interval = {horizon / interval:.3g} updates; keep it under 1e6")
    if not callable(f):
        raise TypeError(f"f must be a callable of data D; got {type(f).__name__}")
    return interval, gran, lo, hi, b, horizon


def lr_rescale(policy="none", reference_batch=None):
    """Learning-rate rescaling on batch changes: ``lr * (B / B_ref)^p``.

    ``policy`` is ``none`` (``p = 0``, the paper's recommendation), ``sqrt``
    (``p = 1/2``) or ``linear`` (``p = 1``). Returns ``rescale(lr, B)``.

    >>> lr_rescale("sqrt", reference_batch=4)(1.0, 16)
    2.0
    """
    powers = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
    if policy not in powers:
        raise ValueError(f"policy={policy!r} must be one of {tuple(powers)}")
    p = powers[policy]
    if p and reference_batch is None:
        raise ValueError(f"policy={policy!r} needs reference_batch")
    ref = _positive("reference_batch", reference_batch) if p else 1.0

    def rescale(lr, batch):
        return lr * (float(batch) / ref) ** p

    return rescale
