"""What ``dbs schedule`` prints about its choice: the rule's recommendation and why, the exports' settings, the
measured band of ``Bopt`` past the sweep's data, and the time-optimal batch per target (``--step-time``)."""

from __future__ import annotations

import math

__all__ = ["print_choice", "print_band", "print_exports", "time_optimal_lines"]


def print_choice(c, horizon):
    if c.rule in ("late-switch", "fixed"):
        return
    if not c.lr_plan.constant:
        print(
            f"the run's LR plan: {c.lr_plan.describe()}"
            + (" (this rule does not use it)" if c.rule != "calibrated" else "")
        )
    if c.recommendation == "fixed":
        print(
            f"warning: {c.reason}. schedule.json holds that fixed batch"
            + (
                ""
                if c.dynamic is None
                else f"; the dynamic schedule it replaces ({c.dynamic.sizes[0]:.4g} -> "
                f"{c.dynamic.sizes[-1]:.4g}) is in exports.json"
            )
        )
    else:
        print(f"dynamic schedule: {c.reason} (best fixed batch {c.best_fixed:.4g} at D={c.best_fixed_at:.4g})")
    if horizon > c.measured_to * (1 + 1e-9) and c.recommendation == "dynamic" and c.curve is not None:
        print(
            f"past the sweep's data (D > {c.measured_to:.4g}) Bopt is held at "
            f"{max(float(c.curve(c.measured_to)), c.best_fixed):.4g}, the larger of its last measured value and "
            "the best fixed batch there: it does not fall as D grows, and how far it keeps growing is not "
            "measured"
        )


def print_band(band):
    import numpy as np

    edge = band["measured_to"]
    D = np.asarray(band["D"])
    print(
        f"\nPast the measured range (D > {edge:.4g}) the schedule extrapolates; the 90% band of Bopt opens "
        "(lower edge held, upper edge at the steepest measured slope):"
    )
    for j in np.unique(np.linspace(np.searchsorted(D, edge), D.size - 1, 4).astype(int)):
        print(f"  D = {D[j]:.4g}: Bopt in [{band['lo'][j]:.4g}, {band['hi'][j]:.4g}]")


def print_exports(step, meg, olmo) -> None:
    """The Megatron-LM flags (step schedule, then the ramp) and OLMo-core's callback settings, with the batch
    each one actually runs."""
    print(
        "\nMegatron-LM: "
        + (f"{step['megatron_args']}  ({step['megatron_note']})" if step["megatron"] else step["megatron_note"])
    )
    if "args" in meg or step["megatron"]:  # a missing --seq-len is said once, above
        print(
            f"Megatron-LM before --step-batch-size-schedule: {meg.get('args', meg.get('note'))}"
            + (f"  (mean relative batch error {meg['error']:.1%})" if "error" in meg else "")
        )
    runs = " -> ".join(f"{x['batch_size']:g} from {x['from']:g}" for x in olmo["applied"][1:]) or "one batch"
    print(
        f"OLMo-core BatchSizeSchedulerCallback: batch_sizes={olmo['batch_sizes']}, "
        f"schedule at {[s['value'] for s in olmo['schedule']]} {olmo['schedule'][0]['unit']} "
        f"(it runs {runs}: batch error {olmo['error']:.1%} over [0, {olmo['horizon']:.4g}] from integer factors "
        "and its switching rule; note it rescales the LR by sqrt(ratio))"
    )


def time_optimal_lines(args, laws) -> list[str]:
    """The lines of the time-optimal batch per target (``--step-time a,b``): a bad value, or a source with no
    fitted law, is refused before the schedule is written."""
    from ..theory.es_laws import ThreePhaseES
    from ..schedules.wallclock import StepTimeModel, time_optimal_batch

    try:
        a, b = (float(x) for x in args.step_time.split(","))
    except ValueError:
        raise ValueError(f"--step-time must be 'a,b'; got {args.step_time!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0 and a + b > 0):
        raise ValueError(f"--step-time={args.step_time!r}: a and b must be finite seconds >= 0, not both 0")
    if not laws:
        raise ValueError("--step-time needs fitted laws: use --from with a dbs fit fit.json")
    model = StepTimeModel(a, b, args.devices)
    lines = [f"\nTime-optimal batch per target (step time {a:g} + {b:g} B / {args.devices} s):"]
    fitted = [(t, per_law["three_phase"]) for t, per_law in laws if per_law.get("three_phase")]
    if not fitted:
        lines.append(
            "  none: no target of this fit has a three-phase E(S) law (dbs fit fits one where a target is "
            "reached by enough runs)"
        )
    for target, p in fitted:
        best = time_optimal_batch(ThreePhaseES.c1(**p), model, args.max_overhead)
        lines.append(
            f"  L*={float(target):.4g}: B={best['batch_size']:.4g}, {best['seconds']:.4g} s, "
            f"data overhead {best['data_overhead']:.1%} over Emin"
        )
    return lines
