"""From a sweep's fit to the batch schedule of a run: the offline rules, and the choice each one makes.

:func:`schedule_from_fit` is what ``dbs schedule --from fit.json`` runs (and
what ``dbs simulate chain`` scores on the NQM). Every rule reads only what
``dbs fit`` measured -- the envelope in ``fit.json``: the batches, data
amounts, smoothed loss per batch and data, ``Bopt(D)`` -- plus the run's
horizon and learning-rate plan (:class:`~dbs_theory.schedules.lr_plan.LRPlan`). Each
rule is a module of :mod:`dbs_theory.rules` (``choose(ctx)``, keyed by its id):

``calibrated`` (the default)
    Fit the modal model family to the sweep's curves
    (:func:`dbs_theory.theory.calibrate.calibrate`), then optimise the batch per piece
    of the run on the fitted model under the plan
    (:func:`dbs_theory.theory.modal.optimise`). How sure: the fit is repeated with
    each batch of the sweep left out; the schedule is handed out only where it
    beats the best fixed batch under every refit by :data:`MARGIN`, else the
    closest geometric blend toward the fixed batch that does, else the fixed batch;
    and not at all where the model explains less than :data:`MIN_R2` of the
    differences between the sweep's batches (its curves are not this family's).
``stitch``
    At each point of the run, the batch whose sweep curve descends fastest per
    example at the run's current loss, read off the measured curves (the run's
    loss moves along that curve); never falling.
``paper``
    The paper's rule on the measured ``Bopt(D)``
    (:func:`dbs_theory.rules.envelope.schedule_from_envelope`).
``late-switch``
    Half the best fixed batch, then ``ratio`` times that at ``switch_at``
    (:func:`dbs_theory.rules.online.late_switch`).
``fixed``
    The sweep's best fixed batch at the horizon.

Units: the fit's (tokens or examples); batches per optimizer step.
"""

from __future__ import annotations

import dataclasses
import math

from ..schedules.batch_schedules import constant_batch
from ..schedules.lr_plan import LRPlan
from . import RULES, RuleContext, ScheduleChoice, rule_named
from .calibrated import BLENDS, EXTRAPOLATE, MARGIN, MAX_REFITS, MIN_R2, refit_batches, sure_blend
from .choice import batch_bounds, snap_batch
from .stitch import stitch

__all__ = [
    "RULES",
    "DEFAULT_RULE",
    "MARGIN",
    "BLENDS",
    "EXTRAPOLATE",
    "MIN_R2",
    "MAX_REFITS",
    "ScheduleChoice",
    "schedule_from_fit",
    "rule_context",
    "stitch",
    "sure_blend",
    "refit_batches",
    "envelope_of",
]

#: what dbs schedule runs unless told (chosen by dbs simulate rules: docs/optimal_schedules.md)
DEFAULT_RULE = "calibrated"


def envelope_of(fit) -> dict:
    """The envelope (a dict of columns) of a fit: a ``fit.json`` dict, a :class:`BoptTable`, or the envelope;
    its batches, data and per-batch losses checked for shape and type (one line naming the field)."""
    env = fit.get("envelope", fit) if isinstance(fit, dict) else getattr(fit, "envelope", fit)
    env = env.to_dict() if hasattr(env, "to_dict") else env
    if not isinstance(env, dict) or not env.get("by_batch"):
        raise ValueError(
            "the fit holds no sweep envelope with per-batch losses (a fit.json from dbs fit on a "
            "sweep of >= 3 batch sizes)"
        )
    batches, data = _numbers(env, "batches", positive=True), _numbers(env, "data", positive=True)
    for key in ("by_batch", "mean_by_batch"):
        rows = env.get(key)
        if rows is None and key == "mean_by_batch":
            continue
        if not isinstance(rows, list) or len(rows) != len(batches):
            raise ValueError(f"envelope.{key} must hold one row per batch ({len(batches)}) in envelope.batches")
        for i, row in enumerate(rows):
            if (
                not isinstance(row, list)
                or len(row) != len(data)
                or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in row)
            ):
                raise ValueError(f"envelope.{key}[{i}] must hold a number (or null) per data amount ({len(data)})")
    return env


def _numbers(env, key, positive=False):
    """``env[key]`` as a list of finite numbers (positive where asked); one line naming the field otherwise."""
    v = env.get(key)
    ok = (
        isinstance(v, list)
        and v
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
            for x in v
        )
    )
    if not ok:
        raise ValueError(f"envelope.{key} must be a list of {'positive ' if positive else ''}finite numbers")
    return v


def schedule_from_fit(
    fit,
    horizon: float,
    rule: str = DEFAULT_RULE,
    lr_plan: LRPlan = LRPlan(),
    *,
    unit: str = "tokens",
    granularity: float = 1.0,
    min_batch: float = 1.0,
    max_batch: float = math.inf,
    extrapolate: bool = False,
    lr=None,
    interval=None,
    momentum: float = 1.0,
    switch_at=None,
    switch_ratio: float = 4.0,
) -> ScheduleChoice:
    """The batch schedule ``rule`` (module doc) makes for a run of ``horizon`` data under ``lr_plan``.

    ``fit``: a ``fit.json`` dict, :class:`~dbs_theory.measure.tabulate.BoptTable` or its envelope. Batches are
    whole multiples of ``granularity`` within ``[min_batch, max_batch]``. A horizon past the sweep's data
    is refused unless ``extrapolate``. ``interval``, ``momentum``: the paper's rule; ``switch_at`` (default
    0.75 of the stable phase's data: the horizon's, less a WSD decay), ``switch_ratio``: late switch.
    """
    choose = rule_named(rule).choose
    ctx = rule_context(fit, horizon, lr_plan, unit=unit, granularity=granularity, min_batch=min_batch,
                       max_batch=max_batch, extrapolate=extrapolate, lr=lr)  # fmt: skip
    options = dict(interval=interval, momentum=momentum, switch_at=switch_at, switch_ratio=switch_ratio,
                   extrapolate=extrapolate)  # fmt: skip
    return choose(dataclasses.replace(ctx, options=options))


def rule_context(fit, horizon, lr_plan, *, unit, granularity, min_batch, max_batch, extrapolate, lr) -> RuleContext:
    """The checked inputs every rule reads (:class:`RuleContext`): the envelope, the horizon (refused past
    the sweep's data unless ``extrapolate``, and before it), the best fixed batch there, and the batch bounds."""
    from .envelope import best_fixed_batch, check_horizon

    env = envelope_of(fit)
    measured_to = check_horizon(env, horizon, extrapolate)
    at = min(horizon, measured_to)
    best = best_fixed_batch(env, at)[0]
    lo, hi = batch_bounds(granularity, min_batch, min(max_batch, horizon))
    snapped = snap_batch(best, granularity, lo, hi)
    note = (
        ""
        if snapped == best
        else (
            f"the sweep's best batch {best:.4g} is run as {snapped:.4g}, the nearest "
            "multiple of the granularity within the batch bounds"
        )
    )
    return RuleContext(env, horizon, lr_plan, unit, lr, granularity, min_batch, max_batch, lo, hi, best, at,
                       measured_to, constant_batch(snapped, unit, lr), note)  # fmt: skip
