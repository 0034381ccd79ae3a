"""``dbs schedule``: build a batch-size schedule from a fit result or explicit options."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..schedules.exports import megatron_ramp, megatron_step, warn_past_the_grid
from ..rules.inputs import bopt_band_record, load_envelope, load_points, sweep_envelope
from .schedule_print import print_band, print_choice, print_exports, time_optimal_lines

from ..rules.online import ONLINE
from ..rules.from_fit import DEFAULT_RULE, RULES

__all__ = ["HELP", "add_arguments", "run", "load_points", "load_envelope", "FLAGS"]

#: the arguments of the library calls behind this command -> the flags that set them
FLAGS = {"extrapolate": "--extrapolate", "max_batch": "--max-batch", "min_batch": "--min-batch", "horizon": "--horizon"}

HELP = "build a dynamic batch-size schedule (JSON, Megatron, OLMo-core) from a fit or a curve"
EXAMPLES = """examples:
  dbs schedule --from results/fit/fit.json --horizon 6e6 --granularity 512 --out results/schedule
  dbs schedule --curve 0.5,0.4 --horizon 1e9 --seq-len 2048 --unit tokens
  dbs schedule --steps 0:2e6,125e9:4e6 --horizon 5e11
  dbs schedule --from results/fit/fit.json --horizon 6e6 --decay 0.2 --out results/wsd
  dbs schedule --from results/fit/fit.json --rule late-switch --horizon 6e6 --out results/late"""


def add_arguments(p):
    _source_and_rule_options(p)
    _batch_options(p)


def _source_and_rule_options(p):
    """Where Bopt comes from, the horizon, the rule and the run's LR plan."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", help="fit.json (dbs fit) or frontier.json (dbs simulate)")
    src.add_argument("--curve", help="an explicit power law Bopt(D) = k D^alpha, as 'k,alpha'")
    src.add_argument("--steps", help="a step schedule 'D0:B0,D1:B1,...' (D0 = 0)")
    p.add_argument("--horizon", type=float, required=True, help="total data of the run (tokens)")
    p.add_argument(
        "--rule",
        choices=RULES + ONLINE,
        default=None,
        help="with --from a sweep's fit.json: calibrated (default: optimise the batch on a loss model "
        "fitted to the sweep, under the run's LR plan), stitch (the batch whose curve descends fastest "
        "at the run's loss), paper (follow Bopt(D); the default for --curve and for fits without a "
        "sweep envelope), late-switch (half the sweep's best fixed batch, then --switch-ratio times "
        "that from --switch-at) or fixed (the best fixed batch); noise-scale and floor-ratio are "
        "decided during the run: dbs train --batch-rule (docs/optimal_schedules.md)",
    )
    p.add_argument(
        "--decay",
        type=float,
        default=0.0,
        help="the run's LR plan: fraction of --horizon in a "
        "final linear (WSD) decay, 0 for a constant rate (default 0); the calibrated rule "
        "optimises for it",
    )
    p.add_argument(
        "--lr-shape",
        choices=("wsd", "cosine"),
        default="wsd",
        help="the run's LR shape: wsd (stable, "
        "then --decay; default) or cosine (from the peak to --final-lr over the whole run)",
    )
    p.add_argument(
        "--final-lr",
        type=float,
        default=0.1,
        help="the rate at the end of the decay, as a multiple of the peak (default 0.1)",
    )
    p.add_argument(
        "--switch-at",
        type=float,
        default=None,
        help="late-switch: data of the switch (default 0.75 "
        "x --horizon; for a WSD run, 0.75 x the stable phase's data, as the NQM study scored it)",
    )
    p.add_argument(
        "--switch-ratio", type=float, default=4.0, help="late-switch: batch after / before the switch (default 4)"
    )


def _batch_options(p):
    """How the batch follows Bopt (interval, limits, unit), the exports, and the time-optimal batch."""
    p.add_argument("--interval", type=float, default=None, help="re-evaluation interval (default horizon/50)")
    p.add_argument("--momentum", type=float, default=1.0, help="smoothing factor in (0, 1] (default 1)")
    p.add_argument("--initial", type=float, default=None, help="initial batch (default Bopt(interval))")
    p.add_argument(
        "--granularity", type=float, default=1.0, help="batch multiple: micro-batch x seq-len x world size (default 1)"
    )
    p.add_argument("--min-batch", type=float, default=1.0, help="smallest batch, in --unit (default 1)")
    p.add_argument(
        "--max-batch",
        type=float,
        default=float("inf"),
        help="largest batch, in --unit (default: no limit but the horizon)",
    )
    p.add_argument(
        "--unit",
        choices=("tokens", "samples", "examples"),
        default="tokens",
        help="unit of data and batch sizes in the schedule (default tokens)",
    )
    p.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="sequence length (tokens per sample), for the "
        "Megatron exports: with it --step-batch-size-schedule thresholds count tokens",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate the run will use (warns if it differs from the one the fit was measured at)",
    )
    p.add_argument("--extrapolate", action="store_true", help="allow Bopt(D) outside the fitted range")
    p.add_argument(
        "--step-time",
        default=None,
        help="'a,b': step time a + b B / devices seconds, "
        "to report the time-optimal batch per target (needs --from fit.json)",
    )
    p.add_argument("--devices", type=int, default=1, help="accelerators sharing each step, for --step-time (default 1)")
    p.add_argument(
        "--max-overhead",
        type=float,
        default=None,
        help="data overhead allowed over Emin for the time-optimal batch (e.g. 0.1)",
    )
    p.add_argument("--out", default="results/schedule", help="output directory")


def _build(args):
    """``(schedule, Bopt curve or None, fitted laws, band points or None)`` from --steps, --curve or --from."""
    import math

    from ..schedules.batch_schedules import step_batch
    from ..schedules.piecewise import Piecewise
    from ..measure.bopt_curve import BoptCurve, check_lr, fit_bopt_curve

    laws, band, points = [], None, None
    if args.steps:
        pairs = Piecewise.parse(args.steps, what="--steps", unit=args.unit).segments
        try:
            sched = step_batch([d for d, _ in pairs[1:]], [b for _, b in pairs], args.unit, args.lr)
        except ValueError as exc:
            raise ValueError(f"--steps {args.steps!r}: {exc}") from None
        if pairs[-1][0] >= args.horizon:
            raise ValueError(
                f"--steps {args.steps!r}: its last change, at {pairs[-1][0]:g}, lies at or past --horizon "
                f"{args.horizon:g}: the run never reaches it"
            )
        curve = None
    else:
        if args.curve:
            try:
                k, alpha = (float(x) for x in args.curve.split(","))
            except ValueError:
                raise ValueError(f"--curve must be 'k,alpha'; got {args.curve!r}") from None
            if not (math.isfinite(k) and math.isfinite(alpha) and k > 0):
                raise ValueError(f"--curve {args.curve!r}: k must be a positive number and alpha a finite one")
            import numpy as np

            curve = BoptCurve(
                "power",
                dict(k=k, alpha=alpha),
                np.array([args.horizon / 100, args.horizon]),
                np.array([1.0, 1.0]),
                None,
                math.nan,
                args.lr,
                True,
            )
        else:
            if load_envelope(args.source) is not None:
                return _from_fit(args, "paper")
            D, B, lr, laws, lo, hi = load_points(args.source)
            if sum(math.isfinite(b) for b in B) < 2:
                return _one_point(args, D, B, lr, laws)
            curve = fit_bopt_curve(D, B, lr=lr, extrapolate=args.extrapolate)
            check_lr(curve.lr, args.lr, "Bopt curve")
            if lo is not None:
                band = (D, B, lo, hi)
            points = (D, B, lo, hi)
        curve(args.horizon)  # a horizon past the data is refused (--extrapolate), never a fixed batch
        try:
            sched, why = _dynamic(args, curve), None
        except ValueError as exc:  # from a table: the fixed-batch fallback says why no schedule was derived
            if points is None:
                raise
            sched, why = None, str(exc).splitlines()[0]
    choice = None if points is None else _points_gate(args, sched, curve, points, why)
    return sched if choice is None else choice.schedule, curve, laws, band, choice


def _warn_short_segments(sched, horizon):
    """Say when a segment of a schedule the user wrote (--curve, --steps) is shorter than one step of its batch:
    the run then takes that batch once at most, and the schedule is not what it reads as."""
    import warnings

    ends = [*sched.starts[1:], horizon]
    short = [(s, e - s, b) for s, e, b in zip(sched.starts, ends, sched.sizes) if e - s < b]
    if short:
        s, n, b = short[0]
        warnings.warn(
            f"{len(short)} segment(s) are shorter than one step of their batch (first: from {s:g}, {n:g} of "
            f"batch {b:g}): the run takes each such batch once at most; lengthen --interval, or space the "
            "changes wider",
            stacklevel=2,
        )


def _dynamic(args, curve):
    """The paper's rule along ``curve`` under the command's flags."""
    import math

    from ..schedules.batch_schedules import dynamic_batch

    interval = args.interval if args.interval is not None else args.horizon / 50
    initial = args.initial if args.initial is not None else float(curve(interval))
    max_batch = args.max_batch if math.isfinite(args.max_batch) else args.horizon
    return dynamic_batch(
        curve,
        interval=interval,
        momentum=args.momentum,
        initial=initial,
        granularity=args.granularity,
        min_batch=args.min_batch,
        max_batch=max_batch,
        horizon=args.horizon,
        unit=args.unit,
        lr=curve.lr,
    )


def _fixed_batch(args, b):
    """``b`` as a fixed batch under the flags: a whole multiple of --granularity, at least --min-batch."""
    g = args.granularity or 1.0
    return max(args.min_batch or 0.0, g * max(1.0, round(b / g)))


def _one_point(args, D, B, lr, laws):
    """The fixed-batch fallback of a source that identifies Bopt at one target only (no curve through one
    point); refused, naming why, where it identifies none."""
    from ..schedules.batch_schedules import constant_batch
    from ..measure.bopt_curve import check_lr
    from ..rules.from_fit import ScheduleChoice

    check_lr(lr, args.lr, "Bopt table")
    got = [(d, b) for d, b in zip(D, B) if b == b]
    if not got:
        raise ValueError(
            f"{args.source}: no target identifies Bopt (dbs fit's table says why per target): no "
            "schedule and no fixed batch can be read from it"
        )
    d, b = got[0]
    fixed = _fixed_batch(args, b)
    sched = constant_batch(fixed, args.unit, lr)
    choice = ScheduleChoice(
        sched,
        "paper",
        "fixed",
        f"only one target identifies Bopt ({b:.4g} at D={d:.4g}): no curve through one point, so a fixed batch at it",
        best_fixed=fixed,
        best_fixed_at=d,
        measured_to=d,
    )
    return sched, None, laws, None, choice


def _points_gate(args, sched, curve, points, failed=None):
    """The gate a sweep's schedule passes (:func:`dbs_theory.rules.envelope.growth_resolved`), on the Bopt
    points of a table without curves: the dynamic schedule only where they resolve that Bopt grows over the
    run, else a fixed batch at the curve's Bopt where the measured points end (one line says why)."""
    from ..schedules.batch_schedules import constant_batch
    from ..rules.from_fit import ScheduleChoice
    from ..rules.envelope import growth_resolved

    import math

    keep = [i for i, (d, b) in enumerate(zip(*points[:2])) if math.isfinite(d) and math.isfinite(b)]
    D, B, lo, hi = ([p[i] for i in keep] if p is not None else None for p in points)
    env = dict(data=D, bopt=B, lo=lo, hi=hi, identified=[True] * len(D))
    ok, why = growth_resolved(env, min(D), args.horizon)
    why = why.replace("the envelope does not identify", "the table does not give")
    if failed is not None:
        ok, why = False, f"no dynamic schedule along its Bopt curve: {failed}"
    end = min(args.horizon, max(D))
    fixed = _fixed_batch(args, float(curve(end)))
    base = dict(
        rule="paper", best_fixed=fixed, best_fixed_at=end, measured_to=float(max(D)), dynamic=sched, curve=curve
    )
    if ok:
        return ScheduleChoice(
            sched, recommendation="dynamic", reason=f"the table resolves that Bopt grows ({why})", **base
        )
    return ScheduleChoice(
        constant_batch(fixed, args.unit, curve.lr),
        recommendation="fixed",
        reason=f"the table does not resolve that Bopt grows over the run ({why}); a fixed batch at Bopt({end:.4g})",
        **base,
    )


def _from_fit(args, rule):
    """:func:`_build` for a sweep's ``fit.json``: the library's choice
    (:func:`dbs_theory.rules.from_fit.schedule_from_fit`) under the run's LR plan (``--decay``)."""
    from ..measure.bopt_curve import check_lr
    from ..rules.from_fit import schedule_from_fit
    from ..rules.envelope import measured_range, past_measured

    if rule in ONLINE:
        raise ValueError(
            f"--rule {rule} is decided during the run from what the run measures: train with "
            f"dbs train --batch-rule {rule}" + (" --rule-fit FIT.json" if rule == "floor-ratio" else " --gns-every N")
        )
    if not args.source:
        raise ValueError(f"--rule {rule} needs --from fit.json (a dbs fit of a sweep: it reads the sweep's curves)")
    env, lr, laws = load_envelope(args.source) if rule == "paper" else sweep_envelope(args.source)
    check_lr(lr, args.lr, "Bopt curve" if rule == "paper" else "sweep")
    measured_to = measured_range(env)
    if past_measured(env, args.horizon) and not args.extrapolate:
        raise ValueError(
            f"--horizon {args.horizon:g} lies past the sweep's data (measured to {measured_to:g}); "
            "run the sweep longer, or allow it with --extrapolate ("
            + (
                "Bopt is then held at its last measured value)"
                if rule == "paper"
                else "the rule then holds what the sweep measured last)"
            )
        )
    choice = schedule_from_fit(
        dict(envelope=env),
        args.horizon,
        rule,
        _lr_plan(args),
        unit=args.unit,
        granularity=args.granularity,
        min_batch=args.min_batch,
        max_batch=args.max_batch,
        extrapolate=args.extrapolate,
        lr=lr,
        interval=args.interval,
        momentum=args.momentum,
        switch_at=args.switch_at,
        switch_ratio=args.switch_ratio,
    )
    band = None
    if rule == "paper":
        ok = env["identified"]
        lo = [v for v, k in zip(env["lo"], ok) if k]
        hi = [v for v, k in zip(env["hi"], ok) if k]
        pts = [(d, b) for d, b, k in zip(env["data"], env["bopt"], ok) if k]
        band = ([d for d, _ in pts], [b for _, b in pts], lo, hi) if None not in lo + hi else None
    elif rule in ("late-switch", "fixed"):
        print(f"{rule} rule from the sweep's best fixed batch {choice.best_fixed:.4g} at D={choice.best_fixed_at:.4g}")
    warn_past_the_grid(choice.schedule, env)
    return choice.schedule, choice.curve, laws, band, choice


def _lr_plan(args):
    """The run's :class:`~dbs_theory.schedules.lr_plan.LRPlan` from --lr-shape, --decay and --final-lr."""
    from ..schedules.lr_plan import LRPlan

    if args.lr_shape == "cosine":
        return LRPlan(shape="cosine", final=args.final_lr)
    return LRPlan(decay=args.decay, final=args.final_lr)


def _resolve_rule(args):
    """The rule to run: ``--rule``, else the default for the source (the calibrated rule for a sweep's fit.json
    with per-batch curves, the paper's rule otherwise)."""
    if args.rule is not None:
        return args.rule
    if args.source:
        try:
            sweep_envelope(args.source)
            return DEFAULT_RULE
        except (OSError, ValueError):
            pass  # no sweep envelope: the paper's rule on what the file holds (load_points names what is wrong)
    return "paper"


def _source_file(source):
    """``--from``: a file, or the folder ``dbs fit`` / ``dbs simulate`` wrote it into (its fit.json or
    frontier.json; one holding both, or neither, is refused in one line)."""
    if source is None or not Path(source).is_dir():
        return source
    held = [Path(source) / n for n in ("fit.json", "frontier.json") if (Path(source) / n).is_file()]
    if len(held) != 1:
        what = "both fit.json and frontier.json" if held else "neither fit.json nor frontier.json"
        raise ValueError(f"--from {source} is a folder holding {what}: name the file")
    return str(held[0])


def run(args):
    from ..io import atomic_write, check_writable, ensure_writable_dir

    args.source = _source_file(args.source)
    args.rule = _resolve_rule(args)
    _check_args(args)
    check_writable(args.out)
    sched, curve, laws, band_points, chosen = _build(args) if args.rule == "paper" else _from_fit(args, args.rule)
    timed = time_optimal_lines(args, laws) if args.step_time else []  # refused here, before anything is written
    if args.curve or args.steps:
        _warn_short_segments(sched, args.horizon)
    out = ensure_writable_dir(args.out)
    meg, step = megatron_ramp(sched, args.seq_len, args.horizon), megatron_step(sched, args.seq_len)
    olmo = sched.to_olmo_core(horizon=args.horizon)
    with atomic_write(out / "schedule.json") as fh:
        fh.write(sched.to_json())
    band = bopt_band_record(curve, band_points, args.horizon, None if chosen is None else chosen.measured_to)
    with atomic_write(out / "exports.json") as fh:
        json.dump(
            dict(
                **step,
                megatron_rampup=meg,
                olmo_core=olmo,
                curve=None if curve is None else curve.to_dict(),
                band=band,
                **(dict(rule=args.rule) if chosen is None else chosen.record()),
            ),
            fh,
            indent=1,
        )
    if chosen is not None:
        print_choice(chosen, args.horizon)
    print(
        f"{sched.kind} schedule, {len(sched.sizes)} segments, unit {sched.unit}"
        + ("" if sched.lr is None else f", derived at learning rate {sched.lr:g}")
    )
    if curve is not None and curve.form == "power":
        print(
            f"Bopt(D) = {curve.params['k']:.4g} * D^{curve.params['alpha']:.4f}"
            + ("" if math.isnan(curve.r2_log) else f"  (R2 log {curve.r2_log:.3f})")
        )
    print(sched.step_list())
    print_exports(step, meg, olmo)
    if band and band["beyond"]:
        print_band(band)
    if timed:
        print("\n".join(timed))
    print(f"\nwrote {out}/schedule.json, exports.json")
    return 0


def _check_args(args):
    """Refuse values no schedule can honour, naming the option (nothing is replaced silently)."""
    import math

    for name in ("horizon", "interval", "initial", "granularity", "min_batch", "max_batch", "lr"):
        v = getattr(args, name)
        if v is not None and not (v > 0 and (math.isfinite(v) or name == "max_batch")):
            raise ValueError(f"--{name.replace('_', '-')}={v:g} must be a positive finite number")
    if not (math.isfinite(args.decay) and 0 <= args.decay < 1):
        raise ValueError(f"--decay={args.decay:g} must be the fraction of the run in the LR decay, in [0, 1)")
    if not (math.isfinite(args.final_lr) and 0 <= args.final_lr <= 1):
        raise ValueError(f"--final-lr={args.final_lr:g} must be a multiple of the peak rate in [0, 1]")
    if (args.decay or args.lr_shape != "wsd" or args.final_lr != 0.1) and not args.source:
        raise ValueError(
            "--decay, --lr-shape and --final-lr describe the run for a rule read from a sweep "
            "(--from fit.json); an explicit --curve or --steps schedule does not use them"
        )
    if args.final_lr != 0.1 and args.lr_shape == "wsd" and not args.decay:
        raise ValueError(f"--final-lr={args.final_lr:g} is the end of a decay: give --decay F or --lr-shape cosine")
    if args.lr_shape == "cosine" and args.decay:
        raise ValueError(f"--decay={args.decay:g} is WSD's: a --lr-shape cosine run decays over the whole run")
    if not 0 < args.momentum <= 1:
        raise ValueError(f"--momentum={args.momentum:g} must lie in (0, 1]")
    if args.devices < 1:
        raise ValueError(f"--devices={args.devices} must be >= 1")
    if args.max_overhead is not None and not args.max_overhead >= 0:
        raise ValueError(f"--max-overhead={args.max_overhead:g} must be >= 0")
    if args.seq_len is not None and args.seq_len < 1:
        raise ValueError(f"--seq-len={args.seq_len} must be >= 1")
    if args.switch_at is not None and not (math.isfinite(args.switch_at) and 0 < args.switch_at < args.horizon):
        raise ValueError(f"--switch-at={args.switch_at:g} must lie inside the run (0 < D < --horizon)")
    if not (math.isfinite(args.switch_ratio) and args.switch_ratio >= 1):
        raise ValueError(f"--switch-ratio={args.switch_ratio:g} must be a finite number >= 1")
    if args.rule != "late-switch" and (args.switch_at is not None or args.switch_ratio != 4.0):
        raise ValueError(f"--switch-at/--switch-ratio apply to --rule late-switch only (not {args.rule})")
    paper_only = [
        f"--{k}"
        for k, default in (("interval", None), ("momentum", 1.0), ("initial", None))
        if getattr(args, k) != default
    ]
    if args.rule != "paper" and paper_only:
        raise ValueError(f"{', '.join(paper_only)} apply to the paper's rule only (not --rule {args.rule})")
    if args.min_batch > args.max_batch:
        raise ValueError(f"--min-batch={args.min_batch:g} exceeds --max-batch={args.max_batch:g}")
    if args.granularity > args.max_batch:
        raise ValueError(
            f"--granularity={args.granularity:g} exceeds --max-batch={args.max_batch:g}: no batch "
            "that is a multiple of the granularity fits under the maximum"
        )
