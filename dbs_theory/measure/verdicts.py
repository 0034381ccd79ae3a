"""The one verdict rule for a claimed effect, its interval, and how many seeds a comparison needs.

Every comparison of the validation experiments is a paired difference: two
arms that share the data order and initialisation seed and differ in one
thing, so most seed-to-seed noise cancels in the difference. Over ``n``
seeds the mean difference gets a Student-t interval; the claim then

- **holds** when the interval excludes zero in the claimed direction,
- **does not hold** when it excludes zero the other way, or when it lies
  wholly below the claimed effect size (an effect that large is ruled out),
- is **inconclusive** otherwise, or when no interval can be formed (one seed
  and no spread measured elsewhere).

Units are whatever the differences are in (nats of validation loss in the
experiments). :func:`seeds_needed` is the matching power computation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = [
    "VERDICTS",
    "LEVEL",
    "Interval",
    "paired_interval",
    "interval_from_se",
    "verdict",
    "negate",
    "all_of",
    "Claim",
    "seeds_needed",
    "power",
    "R2_MIN",
    "fit_verdict",
    "error_verdict",
]

VERDICTS = ("holds", "does not hold", "inconclusive")
LEVEL = 0.95
#: The one R^2 bar (log data; the paper reports about 0.99): a per-target fit below it supports no Bmin/Bopt
#: (:func:`dbs_theory.measure.tabulate.bopt_table`), and a law whose median over targets is below it does not
#: "describe" the E(S) points (:func:`fit_verdict`).
R2_MIN = 0.9


@dataclass(frozen=True)
class Interval:
    """A mean difference with its two-sided ``level`` interval over ``n`` seeds (NaN bounds: none)."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL

    @property
    def identified(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def text(self, digits: int = 4, unit: str = "seed") -> str:
        """``+0.0123 [+0.0010, +0.0236] (95%, 3 seeds)``, or why there is no interval; ``unit`` names what
        ``n`` counts (seeds, targets, held-out runs)."""
        seeds = f"{self.n} {unit}{'s' * (self.n != 1)}"
        if not math.isfinite(self.mean):
            return f"not identified: no finite difference ({seeds})"
        if not self.identified:
            return f"{self.mean:+.{digits}f} (no interval: one {unit} and no measured spread)"
        return f"{self.mean:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] ({self.level:.0%}, {seeds})"


def _t(level, dof):
    return (
        float(stats.t.ppf(0.5 + level / 2, dof))
        if dof and math.isfinite(dof)
        else float(stats.norm.ppf(0.5 + level / 2))
    )


def paired_interval(diffs, level: float = LEVEL, sd: float | None = None, dof: float | None = None) -> Interval:
    """The ``level`` interval of the mean of paired differences ``diffs`` (one per seed).

    With two or more finite differences the interval uses their own standard
    deviation and ``n - 1`` degrees of freedom. With one, it needs ``sd``: the
    standard deviation of a single paired difference measured elsewhere (from
    ``dof`` degrees of freedom; ``None`` reads it as known exactly). Without
    either the bounds are NaN and :func:`verdict` says inconclusive.
    """
    d = np.asarray(diffs, float).ravel()
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    mean = float(d.mean())
    k: float | None
    if n >= 2:
        s, k = float(d.std(ddof=1)), n - 1
    elif sd is not None and math.isfinite(sd) and sd >= 0:
        s, k = float(sd), dof
    else:
        return Interval(mean, math.nan, math.nan, n, level)
    half = _t(level, k) * s / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def interval_from_se(mean: float, se: float, n: int, level: float = LEVEL, dof: float | None = None) -> Interval:
    """An interval from an estimate and its standard error (normal unless ``dof`` is given)."""
    if not (math.isfinite(mean) and math.isfinite(se) and se >= 0):
        return Interval(float(mean), math.nan, math.nan, n, level)
    half = _t(level, dof) * se
    return Interval(float(mean), mean - half, mean + half, n, level)


def verdict(iv: Interval, expect_positive: bool = True, effect: float | None = None) -> str:
    """The one rule (module docstring): ``holds`` / ``does not hold`` / ``inconclusive``.

    ``expect_positive``: the claimed direction of the difference. ``effect``:
    the claimed effect size (> 0, in the claimed direction); an interval wholly
    below it rules the claim out even when it contains zero.
    """
    if not iv.identified:
        return "inconclusive"
    lo, hi = (iv.lo, iv.hi) if expect_positive else (-iv.hi, -iv.lo)
    if lo > 0:
        return "holds"
    if hi < 0 or (effect is not None and hi < effect):
        return "does not hold"
    return "inconclusive"


def negate(v: str) -> str:
    """The verdict of the opposite claim ("X does not help" from "X helps")."""
    return {"holds": "does not hold", "does not hold": "holds"}.get(v, v)


def all_of(*verdicts: str) -> str:
    """The verdict of "A and B": holds when every part holds, does not hold when any part does not."""
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


@dataclass(frozen=True)
class Claim:
    """One row of an experiment's summary: the paper's claim, our measurement, the verdict, its interval."""

    claim: str
    measured: str
    verdict: str
    interval: Interval | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    def as_dict(self) -> dict:
        out: dict = dict(claim=self.claim, measured=self.measured, verdict=self.verdict)
        if self.interval is not None:
            out["interval"] = asdict(self.interval)
        return out


def power(n: int, sd: float, effect: float, level: float = LEVEL) -> float:
    """Chance that ``n`` paired seeds give an interval excluding zero when the true mean difference is
    ``effect`` and one difference has standard deviation ``sd`` (non-central t, one side)."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0
    crit = _t(level, n - 1)
    return float(stats.nct.sf(crit, n - 1, effect * math.sqrt(n) / sd))


def seeds_needed(sd: float, effect: float, level: float = LEVEL, want: float = 0.8, max_n: int = 100_000) -> int:
    """Fewest paired seeds (>= 2) whose ``level`` interval excludes zero with chance ``want`` at ``effect``.

    ``sd``: standard deviation of one paired difference; ``effect``: the effect
    to resolve, same units. Raises ``ValueError`` when ``max_n`` seeds do not suffice.
    """
    if not (math.isfinite(sd) and sd >= 0 and math.isfinite(effect) and effect > 0):
        raise ValueError(f"seeds_needed needs sd >= 0 and effect > 0; got sd={sd!r}, effect={effect!r}")
    lo, hi = 2, 2
    while power(hi, sd, effect, level) < want:
        lo, hi = hi, hi * 2
        if hi > max_n:
            raise ValueError(f"more than {max_n} seeds would be needed (sd {sd:g}, effect {effect:g})")
    while lo < hi:  # power grows with n: bisect for the first n that reaches it
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(mid, sd, effect, level) < want else (lo, mid)
    return hi


def fit_verdict(r2_three_phase, r2_hyperbolic=None, min_r2: float = R2_MIN) -> str:
    """ "E(S) follows the three-phase law (not the hyperbola)" from per-target R^2 (log data).

    With the hyperbola's R^2 at the same targets: ``holds`` when the three-phase
    median reaches ``min_r2`` and it is at least as good at more than half the
    targets, ``does not hold`` when it is worse at more than half, else
    ``inconclusive``. Without it: ``holds`` when the median reaches ``min_r2``.
    Targets with a missing value are skipped; none left: ``inconclusive``.
    """
    r3 = np.asarray(r2_three_phase, float)
    rh = np.full_like(r3, np.nan) if r2_hyperbolic is None else np.asarray(r2_hyperbolic, float)
    use = np.isfinite(r3) & (np.isfinite(rh) if r2_hyperbolic is not None else True)
    if not use.any():
        return "inconclusive"
    good = float(np.median(r3[use])) >= min_r2
    if r2_hyperbolic is None:
        return "holds" if good else "inconclusive"
    wins, n = int(np.sum(r3[use] >= rh[use])), int(use.sum())
    if good and 2 * wins > n:
        return "holds"
    return "does not hold" if 2 * wins < n else "inconclusive"


def error_verdict(error, good: float, bad: float) -> str:
    """A prediction error against its tolerances: ``holds`` below ``good``, ``does not hold`` at or above
    ``bad`` (``>= good``), ``inconclusive`` between them or when the error is not finite.

    ``error`` is a number or an :class:`Interval` of the mean error; an interval
    holds only when its upper end is below ``good`` and fails only when its lower
    end reaches ``bad`` (no bounds: inconclusive).
    """
    if isinstance(error, Interval):
        if not error.identified:
            return "inconclusive"
        return "holds" if error.hi < good else ("does not hold" if error.lo >= bad else "inconclusive")
    if not math.isfinite(error):
        return "inconclusive"
    if error < good:
        return "holds"
    return "does not hold" if error >= bad else "inconclusive"
