"""The one schedule type: a function of data consumed, made of pieces.

Batch sizes, learning rates and sequence lengths all change with data ``D``
(tokens, samples or examples), never with steps, so a resumed run needs only
its data counter and a batch change never stretches a warmup. A
:class:`Piecewise` holds the starts of its pieces and, for each, either a
number (a constant piece) or a callable ``f(x)`` of the offset ``x = D -
start`` into the piece (a varying piece, vectorised over numpy arrays).

The protocol every schedule in the package follows:

- ``s(D)``: the value at ``D`` (scalar or array);
- ``s.next_change(D)``: the smallest ``D' > D`` where the value may change,
  or ``D`` itself inside a varying piece (simulators jump constant stretches);
- ``s.segments``: ``[(start, value), ...]`` when every piece is constant;
- :func:`join`: schedules one after another, each restarted at its boundary
  (as optax's ``join_schedules``).

One string grammar writes a piecewise-constant schedule: ``"D0:V0,D1:V1,..."``
with strictly increasing ``D``; :meth:`Piecewise.parse` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..messages import num

__all__ = ["Piecewise", "join", "UNITS"]

UNITS = ("tokens", "samples", "examples")


@dataclass(frozen=True)
class Piecewise:
    """A schedule in data units: piece ``k`` holds on ``[starts[k], starts[k+1])``.

    Attributes
    ----------
    starts : tuple of float   Data at which each piece begins; ``starts[0] == 0``.
    values : tuple            A number (constant piece) or ``f(x)`` of the offset into the piece.
    unit : str                ``tokens``, ``samples`` or ``examples`` (of ``D``; of the values too for batches).
    label : str               What it is, for people (``wsd(peak=...)``).
    """

    starts: tuple
    values: tuple
    unit: str = "tokens"
    label: str = ""

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit={self.unit!r} must be one of {UNITS}")
        if any(not math.isfinite(a) for a in self.starts):
            raise ValueError(f"segment starts must be finite numbers; got {list(self.starts)}")
        if not self.starts or self.starts[0] != 0:
            raise ValueError("a schedule's first segment must start at D = 0")
        if len(self.starts) != len(self.values):
            raise ValueError("starts and values must have the same length")
        if any(b <= a for a, b in zip(self.starts, self.starts[1:])):
            raise ValueError(f"segment starts must increase strictly; got {list(self.starts)}")
        if any(not callable(v) and not math.isfinite(v) for v in self.values):
            raise ValueError(f"constant values must be finite; got {[v for v in self.values if not callable(v)]}")

    @classmethod
    def constant(cls, value, unit="tokens", label="") -> "Piecewise":
        return cls((0.0,), (float(value),), unit, label or f"constant({float(value):g})")

    @classmethod
    def parse(cls, text: str, first=None, what="schedule", unit="tokens", cast=float) -> "Piecewise":
        """Read ``"D0:V0,D1:V1,..."``; with ``first`` (the value from 0) the pairs start after 0, else at 0.

        ``cast`` converts each value (``int`` for sequence lengths); ``what``
        names the option in the one-line error.

        >>> Piecewise.parse("0:2e6,125e9:4e6").segments
        [(0.0, 2000000.0), (125000000000.0, 4000000.0)]
        >>> Piecewise.parse("2e6:128", first=64, cast=int).segments
        [(0.0, 64), (2000000.0, 128)]
        """
        pairs = [] if first is None else [(0.0, cast(first))]
        for item in str(text).split(",") if text else []:
            try:
                d, v = item.split(":")
                pairs.append((float(d), cast(float(v))))
            except ValueError:
                raise ValueError(
                    f"{what} must look like '{'' if first is not None else '0:V0,'}D1:V1,D2:V2' "
                    f"(data:value pairs); got {text!r}"
                ) from None
        if not pairs or pairs[0][0] != 0 or (first is not None and len(pairs) > 1 and pairs[1][0] <= 0):
            raise ValueError(
                f"{what} {text!r} must start at D = 0"
                if first is None
                else f"{what} {text!r}: switch points must be > 0 (the value from 0 is {first})"
            )
        try:
            return cls(tuple(d for d, _ in pairs), tuple(v for _, v in pairs), unit, what)
        except ValueError as exc:
            raise ValueError(f"{what} {text!r}: {exc}") from None

    def __call__(self, D):
        """The value at data ``D`` (scalar or array)."""
        D = np.asarray(D, float)
        idx = np.maximum(np.searchsorted(np.asarray(self.starts), D, side="right") - 1, 0)
        if all(not callable(v) for v in self.values):
            out = np.asarray(self.values)[idx]
        else:
            out = np.empty(D.shape)
            for k in np.unique(idx):
                sel = idx == k
                v = self.values[k]
                out[sel] = v(D[sel] - self.starts[k]) if callable(v) else v
        return out.item() if out.ndim == 0 else out

    def next_change(self, data: float) -> float:
        """Smallest data ``> data`` where the value may change; ``data`` itself inside a varying piece."""
        k = int(np.searchsorted(np.asarray(self.starts), data, side="right"))
        if callable(self.values[max(k - 1, 0)]):
            return float(data)
        return float(self.starts[k]) if k < len(self.starts) else math.inf

    @property
    def constant_pieces(self) -> bool:
        return not any(callable(v) for v in self.values)

    @property
    def segments(self) -> list:
        """``[(start, value), ...]`` of a piecewise-constant schedule."""
        if not self.constant_pieces:
            raise TypeError(f"{self.label or 'this schedule'} has varying pieces: evaluate it, not its segments")
        return list(zip(self.starts, self.values))

    def scaled(self, factor: float, unit: str) -> "Piecewise":
        """``D`` (and constant values) times ``factor``, in ``unit``: samples -> tokens with the sequence length."""
        if not self.constant_pieces:
            raise TypeError("only a piecewise-constant schedule can change unit")
        return Piecewise(
            tuple(a * factor for a in self.starts), tuple(v * factor for v in self.values), unit, self.label
        )

    def text(self) -> str:
        """The schedule in the grammar :meth:`parse` reads."""
        return ",".join(f"{a:.17g}:{v:.17g}" for a, v in self.segments)  # exact: parse(text()) round-trips


def join(schedules, boundaries, unit="tokens", label="") -> Piecewise:
    """``schedules[0]`` until ``boundaries[0]``, then ``schedules[1]`` restarted at 0, and so on.

    A number stands for a constant schedule. ``len(boundaries) == len(schedules) - 1``;
    boundaries must not decrease (an empty stretch is dropped).

    >>> s = join([Piecewise((0.0,), (lambda x: x / 10,)), 1.0], [10.0])
    >>> s(5.0), s(50.0), s.next_change(5.0), s.next_change(50.0)
    (0.5, 1.0, 5.0, inf)
    """
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"need one boundary fewer than schedules; got {len(boundaries)} and {len(schedules)}")
    edges = [0.0, *map(float, boundaries), math.inf]
    if any(b < a for a, b in zip(edges, edges[1:])) or any(not math.isfinite(b) or b < 0 for b in edges[1:-1]):
        raise ValueError(f"boundaries must be finite, >= 0 and non-decreasing; got {num(list(boundaries))}")
    starts, values = [], []
    for s, lo, hi in zip(schedules, edges, edges[1:]):
        s = s if isinstance(s, Piecewise) else Piecewise.constant(s, unit)
        for a, v in zip(s.starts, s.values):
            if lo + a < hi:
                starts.append(lo + a)
                values.append(v)
    return Piecewise(tuple(starts), tuple(values), unit, label)
