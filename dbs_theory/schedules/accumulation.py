"""Gradient accumulation that follows a batch-size schedule, step by step (no framework).

A trainer with a fixed micro-batch (``micro_batch_size`` samples per process
per forward pass) and ``world_size`` data-parallel processes can only take
global batches that are whole multiples of ``micro_batch_size x world_size``
samples (the *granularity*). :class:`AccumulationPlan` turns a
:class:`~dbs_theory.schedules.batch_schedules.BatchSchedule` into, for every optimizer
step, the number of micro-batches each process accumulates, the samples and
tokens the step consumes, and the learning rate at the step's start.

Rules (docs/conventions.md, "Accumulation plan"):

- a step's batch is the schedule's batch at the data consumed *before* the
  step (a step that crosses a boundary keeps the old batch; the next one
  takes the new);
- that batch, in samples (a schedule in tokens is divided by ``seq_len``;
  ``samples`` and ``examples`` are sequences already), is rounded to the
  nearest whole number ``n`` of granules, ties upward: ``n = floor(b / g + 1/2)``
  with ``g = micro_batch_size x world_size`` (exact rational arithmetic). A
  schedule whose batches are multiples of ``g`` is therefore followed exactly;
- a schedule with any batch below one granule (``b < g``) is refused, so
  ``n >= 1`` always (never 0).

The plan's whole state is the data consumed -- ``tokens``, ``samples`` and
optimizer ``steps`` -- so a resumed run that restores :meth:`state_dict`
takes exactly the steps an uninterrupted run would.
"""

from __future__ import annotations

import bisect
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral

from .batch_schedules import positive_int
from .piecewise import Piecewise

__all__ = ["AccumulationPlan", "Step"]

_STATE_KEYS = ("tokens", "samples", "steps")


@dataclass(frozen=True)
class Step:
    """One optimizer step of an :class:`AccumulationPlan`.

    Attributes
    ----------
    index : int            Optimizer steps taken before this one (0 for the first).
    micro_batches : int    Micro-batches each process accumulates (forward/backward passes).
    samples : int          Global samples (sequences) the step consumes: ``micro_batches x micro x world``.
    tokens : int           Global tokens the step consumes: ``samples x seq_len``.
    tokens_before : int    Tokens consumed before the step (where the schedule and LR are read).
    samples_before : int   Samples consumed before the step.
    lr : float or None     The LR schedule at ``tokens_before`` (``None`` without one).
    """

    index: int
    micro_batches: int
    samples: int
    tokens: int
    tokens_before: int
    samples_before: int
    lr: float | None = None


class AccumulationPlan:
    """Per optimizer step: micro-batches to accumulate, tokens and samples consumed, and the LR.

    Parameters
    ----------
    schedule : BatchSchedule
        Piecewise-constant batch size as a function of data consumed, in
        ``tokens`` (``D`` and ``B`` in tokens) or ``samples``/``examples``
        (both in sequences of ``seq_len`` tokens).
    micro_batch_size : int
        Samples per process per forward pass.
    seq_len : int
        Tokens per sample.
    world_size : int
        Data-parallel processes (default 1).
    lr : callable, optional
        Learning rate as a function of tokens consumed (e.g.
        :func:`dbs_theory.schedules.lr_schedules.wsd` built in tokens).

    Raises
    ------
    ValueError
        One line: a size that is not a positive whole number, a schedule
        with varying pieces, or a batch below one micro-batch x world size.
    """

    def __init__(self, schedule, micro_batch_size, seq_len, world_size=1, lr=None):
        if not isinstance(schedule, Piecewise) or not schedule.constant_pieces:
            raise ValueError(
                "schedule must be a piecewise-constant BatchSchedule (dbs_theory.schedules.batch_schedules)"
            )
        if lr is not None and not callable(lr):
            raise ValueError(f"lr must be a callable of tokens consumed; got {type(lr).__name__}")
        self.schedule, self.lr = schedule, lr
        self.micro_batch_size = positive_int("micro_batch_size", micro_batch_size)
        self.seq_len = positive_int("seq_len", seq_len)
        self.world_size = positive_int("world_size", world_size)
        self._starts = [float(a) for a in schedule.starts]
        self._micro = [self._granules(a, b) for a, b in schedule.segments]
        self._warn_rounding()
        self.tokens = self.samples = self.steps = 0

    def _warn_rounding(self):
        """One warning naming the segment whose batch moves most when rounded to whole micro-batches."""
        per = self.seq_len if self.schedule.unit == "tokens" else 1
        off = [
            (abs(n * self.granularity * per / b - 1), b, n * self.granularity * per, a)
            for (a, b), n in zip(self.schedule.segments, self._micro)
        ]
        worst = max(off)
        if worst[0] > 1e-12:
            warnings.warn(
                f"the schedule's batch {worst[1]:.6g} {self.schedule.unit} from D={worst[3]:.6g} is not a "
                f"whole number of micro-batches of micro_batch_size {self.micro_batch_size} x world_size "
                f"{self.world_size}: each such step takes {worst[2]:.6g} ({worst[0]:+.1%}); choose sizes "
                "that divide the schedule's batches to follow it exactly",
                stacklevel=3,
            )

    @property
    def granularity(self) -> int:
        """Samples per micro-batch across all processes: ``micro_batch_size x world_size``."""
        return self.micro_batch_size * self.world_size

    def _granules(self, start, batch) -> int:
        """Micro-batches per process for a segment's batch (nearest, ties up); refuse a batch below one granule."""
        per = self.seq_len if self.schedule.unit == "tokens" else 1
        b = Fraction(batch) / per  # samples, exact
        g = self.granularity
        if b < g:
            raise ValueError(
                f"the schedule's batch {batch:.17g} {self.schedule.unit} from D={start:.17g} is "
                f"{float(b):.6g} samples, below one micro_batch_size {self.micro_batch_size} x "
                f"world_size {self.world_size} = {g} samples"
            )
        return math.floor(b / g + Fraction(1, 2))

    def _data(self, tokens, samples):
        """Data consumed in the schedule's unit."""
        return tokens if self.schedule.unit == "tokens" else samples

    def micro_batches_at(self, data) -> int:
        """Micro-batches per process for a step that starts at ``data`` consumed (the schedule's unit)."""
        return self._micro[max(bisect.bisect_right(self._starts, data) - 1, 0)]

    def peek(self) -> Step:
        """The next optimizer step, without taking it."""
        n = self.micro_batches_at(self._data(self.tokens, self.samples))
        samples = n * self.granularity
        lr = None if self.lr is None else float(self.lr(self.tokens))
        return Step(self.steps, n, samples, samples * self.seq_len, self.tokens, self.samples, lr)

    def advance(self) -> Step:
        """Take the next optimizer step: return it (as :meth:`peek`) and count its tokens and samples."""
        step = self.peek()
        self.tokens += step.tokens
        self.samples += step.samples
        self.steps += 1
        return step

    def __iter__(self):
        """Steps without end (:meth:`advance` each time); stop with ``itertools.islice`` or a token budget."""
        while True:
            yield self.advance()

    def total_steps(self, horizon, unit="tokens", start=None) -> int:
        """Optimizer steps until at least ``horizon`` data is consumed (closed form per segment).

        ``horizon`` is in ``unit`` (``tokens``, or ``samples``/``examples``);
        counting starts from ``start`` (``state_dict()``-style dict; default:
        nothing consumed), so the answer does not depend on the current state
        unless asked. The last step may overshoot ``horizon``. Use it to size
        a step-indexed LR schedule for a run of ``horizon`` tokens.
        """
        if unit not in ("tokens", "samples", "examples"):
            raise ValueError(f"unit={unit!r} must be tokens, samples or examples")
        st = _check_state(start if start is not None else dict(tokens=0, samples=0, steps=0))
        tokens, samples, count = st["tokens"], st["samples"], 0
        h = Fraction(horizon)
        per = self.seq_len if self.schedule.unit == "tokens" else 1  # schedule units per sample
        while (tokens if unit == "tokens" else samples) < h:
            D = self._data(tokens, samples)
            k = max(bisect.bisect_right(self._starts, D) - 1, 0)
            step = self._micro[k] * self.granularity  # samples per step in this segment
            left = h - (tokens if unit == "tokens" else samples)
            left = left / self.seq_len if unit == "tokens" else left  # samples to the horizon
            if k + 1 < len(self._starts):  # ... or to the next boundary, whichever comes first
                left = min(left, (Fraction(self._starts[k + 1]) - D) / per)
            m = max(1, math.ceil(left / step))
            count, samples, tokens = count + m, samples + m * step, tokens + m * step * self.seq_len
        return count

    def state_dict(self) -> dict:
        """``{"tokens", "samples", "steps"}`` (plain ints, the plan's whole state) plus what they are counted in
        (``seq_len``, the schedule's ``unit`` and ``segments``), JSON-serialisable."""
        return dict(
            tokens=self.tokens,
            samples=self.samples,
            steps=self.steps,
            seq_len=self.seq_len,
            unit=self.schedule.unit,
            segments=[[float(a), float(b)] for a, b in self.schedule.segments],
        )

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`'s counters (a different ``world_size`` is allowed: data position is kept).

        Refused in one line: a state saved with another schedule or sequence length (the steps after it would
        not be the run's), or counters that contradict each other (tokens != samples x seq_len).
        """
        st = _check_state(state)
        if "segments" in state and (
            state.get("unit") != self.schedule.unit
            or [[float(a), float(b)] for a, b in state["segments"]]
            != [[float(a), float(b)] for a, b in self.schedule.segments]
        ):
            raise ValueError(
                f"this state was saved with another batch schedule ({state.get('unit')}: "
                f"{_pairs(state['segments'])}; this plan: {self.schedule.unit}: "
                f"{_pairs(self.schedule.segments)}): resume with the plan it was saved with"
            )
        if state.get("seq_len", self.seq_len) != self.seq_len:
            raise ValueError(f"this state was saved with seq_len {state['seq_len']}; this plan's is {self.seq_len}")
        if st["tokens"] != st["samples"] * self.seq_len:
            raise ValueError(
                f"state tokens {st['tokens']} != samples {st['samples']} x seq_len {self.seq_len}: "
                "not a state this plan saved"
            )
        self.tokens, self.samples, self.steps = st["tokens"], st["samples"], st["steps"]

    def __repr__(self):
        return (
            f"AccumulationPlan(micro_batch_size={self.micro_batch_size}, seq_len={self.seq_len}, "
            f"world_size={self.world_size}, unit={self.schedule.unit!r}, state={self.state_dict()})"
        )


def _pairs(segments) -> str:
    return ",".join(f"{float(a):g}:{float(b):g}" for a, b in segments)


def _check_state(state) -> dict:
    """The counters of a state dict as ints >= 0; one-line ``ValueError`` naming a missing or bad key."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict with keys {_STATE_KEYS}; got {type(state).__name__}")
    out = {}
    for key in _STATE_KEYS:
        if key not in state:
            raise ValueError(f"state has no {key!r} (needs {', '.join(_STATE_KEYS)})")
        v = state[key]
        ok = isinstance(v, Integral) and not isinstance(v, bool)
        ok = ok or (isinstance(v, float) and v.is_integer())
        if not ok or v < 0:
            raise ValueError(f"state[{key!r}]={v!r} must be a whole number >= 0")
        out[key] = int(v)
    return out
