"""``dbs simulate sweep``: the default NQM sweep: E(S) frontier, Bmin/Bopt per target, crossovers, and a
trainer-like log."""

from __future__ import annotations

from typing import Any, NamedTuple

from .common import build_nqm, default_batches, default_targets

__all__ = ["LogOptions", "SweepOutput", "sweep", "print_sweep", "run"]


class LogOptions(NamedTuple):
    """How ``--write-log`` logs each run: ``kind`` ``exact`` (expected loss) or ``mc`` (one Monte Carlo run,
    seeded ``seed + run index``); a row every ``every`` steps (None: a run's steps // 400) on a ``linear`` or
    ``log`` grid of steps."""

    kind: str = "exact"
    every: int | None = None
    spacing: str = "linear"
    seed: int = 0


class SweepOutput(NamedTuple):
    """What :func:`sweep` measured: the frontier, the crossings near each Bopt (dicts: target, b_small,
    b_large, data, loss) and the loss logs (``None`` without ``log``)."""

    frontier: Any
    crossings: list
    runs: list | None


def sweep(nqm, eta, out, *, targets=None, batches=None, log=None, progress=True) -> SweepOutput:
    """The NQM's E(S) frontier over ``batches`` (examples; default :func:`default_batches`) and ``targets``
    (losses; default :func:`default_targets`), the crossings, and with ``log`` (a :class:`LogOptions`) a
    trainer-like log per batch; writes frontier.csv, targets.csv, frontier.json, crossovers.csv and runs.csv
    into ``out``. ``eta`` is a learning rate or ``"tuned"`` (no crossings, no log)."""
    import numpy as np

    from dbs_theory.io import ensure_writable_dir, write_csv

    from ..sweep import es_frontier

    fixed_eta = 0.5 if eta == "tuned" else eta
    nqm.check_stable(fixed_eta)
    if targets is not None and not targets:
        raise ValueError("targets is empty: give target losses or None for the default ones")
    targets = _targets(targets, nqm, fixed_eta, eta)
    batches = batches or default_batches(nqm, fixed_eta, targets)
    if not all(np.isfinite(b) and b > 0 for b in batches):
        given = ", ".join(f"{b:g}" for b in batches)
        raise ValueError(f"batches: batch sizes must be positive and finite; got {given}")
    out = ensure_writable_dir(out)
    fr = es_frontier(nqm, eta, batches, targets, progress=progress)
    cross = [] if eta == "tuned" else _crossings(nqm, eta, fr)
    runs = _loss_logs(nqm, eta, fr, log, progress) if log is not None and eta != "tuned" else None
    fr.write(out)
    if runs:
        from dbs_theory.logs.runs import write_runs

        write_runs(runs, out / "runs.csv")
    if cross:
        write_csv(out / "crossovers.csv", cross)
    return SweepOutput(fr, cross, runs)


def print_sweep(nqm, eta, result: SweepOutput, out) -> None:
    """The per-target table, the crossings, the phase profile and the files written, for people."""
    from dbs_theory.table import format_table

    _print_summary(result.frontier, result.crossings, format_table)
    if eta != "tuned":
        _print_phase_profile(nqm, eta, result.frontier, format_table)
    print(
        f"\nwrote {out}/frontier.csv, targets.csv, frontier.json"
        + (", crossovers.csv" if result.crossings else "")
        + (", runs.csv" if result.runs else "")
    )


def run(args):
    """``dbs simulate``: the E(S) frontier, Bmin/Bopt per target and crossovers (see :func:`sweep`)."""
    eta = args.eta if args.eta == "tuned" else float(args.eta)
    nqm = build_nqm(args)
    if args.targets is not None and not args.targets:
        raise ValueError("--targets is empty: give target losses 'a,b,c' or leave the option out")
    log = LogOptions(args.log_kind, args.log_every, args.log_spacing, args.seed) if args.write_log else None
    result = sweep(nqm, eta, args.out, targets=args.targets, batches=args.batch_sizes, log=log,
                   progress=not args.quiet)  # fmt: skip
    print_sweep(nqm, eta, result, args.out)
    return 0


def _targets(given, nqm, fixed_eta, eta) -> list:
    """The given targets, or the default ones; each must lie between the loss floor and the initial loss."""
    L0 = nqm.initial_loss()
    targets = given if given is not None else default_targets(nqm, fixed_eta)
    if given is None and not all(nqm.L_irr < t < L0 for t in targets):
        raise ValueError(
            f"targets: at eta={eta} the noise floor is so high that the default targets (Bmin 1 to 64 "
            f"examples) lie above the initial loss {L0:.4g}; give targets below it or a smaller eta"
        )
    for t in targets:
        if not nqm.L_irr < t < L0:
            raise ValueError(
                f"target={t:g} must lie between the loss floor L_irr={nqm.L_irr:g} (no batch "
                f"reaches it) and the initial loss {L0:.4g}"
            )
    return targets


def _crossings(nqm, eta, fr) -> list:
    """Per target with a finite Bopt: where the loss curves of Bopt/2 and 2 Bopt cross (data, loss)."""
    import numpy as np

    from ..crossover import crossover

    out = []
    for row in fr.target_rows():
        if np.isfinite(row["bopt"]):
            c = crossover(nqm, eta, row["bopt"] / 2, row["bopt"] * 2)
            nan = float("nan")
            out.append(dict(target=row["target"], b_small=row["bopt"] / 2, b_large=row["bopt"] * 2,
                            data=c.data if c else nan, loss=c.loss if c else nan))  # fmt: skip
    return out


def _print_summary(fr, cross, format_table):
    print(f"NQM: d={fr.meta['d']} modes, L0={fr.meta['initial_loss']:.4g}, eta={fr.meta['eta']}")
    print("\nPer target (B in examples, S in steps, E in examples):")
    print(
        format_table(
            fr.target_rows(),
            ["target", "smin", "bmin", "bopt", "sopt", "emin"],
            ["L*", "Smin", "Bmin", "Bopt", "Sopt", "Emin"],
        )
    )
    if cross:
        print("\nCrossovers of loss-vs-data curves at Bopt/2 and 2 Bopt:")
        print(
            format_table(
                cross,
                ["target", "b_small", "b_large", "data", "loss"],
                ["L*", "B small", "B large", "D at crossing", "loss there"],
            )
        )


def _print_phase_profile(nqm, eta, fr, format_table):
    """The three phases at the middle target, on a batch grid dense near Bmin."""
    import numpy as np

    from ..frontier import steps_to_target
    from ..sweep import FrontierResult

    k = fr.targets.size // 2
    t = fr.targets[k]
    B = fr.bmin[k] * (1 + np.geomspace(1e-4, 3e3, 15))
    S = steps_to_target(nqm, eta, B[:, None], np.array([t]))
    one = FrontierResult(
        B,
        np.array([t]),
        S,
        B[:, None] * S,
        np.full(S.shape, eta),
        fr.smin[k : k + 1],
        fr.bmin[k : k + 1],
        fr.bopt[k : k + 1],
        fr.sopt[k : k + 1],
        fr.emin[k : k + 1],
    )
    ph = one.phases()[:, 0]
    slope = np.gradient(one.E[:, 0], S[:, 0])
    rows = [
        dict(B=B[i], ratio=B[i] / fr.bmin[k], S=S[i, 0], E=one.E[i, 0], slope=slope[i], phase=ph[i])
        for i in range(B.size)
    ]
    print(f"\nThe three phases of E(S) at L* = {t:.4g} (Bmin = {fr.bmin[k]:.4g}, Bopt = {fr.bopt[k]:.4g}):")
    print(
        format_table(
            rows,
            ["B", "ratio", "S", "E", "slope", "phase"],
            ["B", "B/Bmin", "S (steps)", "E (examples)", "dE/dS", "phase"],
        )
    )


def _loss_logs(nqm, eta, fr, log: LogOptions, progress):
    """One run per batch size, long enough to reach the lowest target it can (x1.3), logged as a trainer
    logs (``log``)."""
    import math

    import numpy as np
    from tqdm.auto import tqdm

    from dbs_theory.logs.runs import Run

    from ..trainer_logs import exact_log, mc_log

    finite = np.where(np.isfinite(fr.S), fr.S, np.nan)
    longest = np.nanmax(finite) if np.any(np.isfinite(finite)) else 1000.0
    runs = []
    for b, B in enumerate(tqdm(fr.batch_sizes, desc="loss logs", disable=not progress)):
        S_b = np.nanmax(finite[b]) if np.any(np.isfinite(finite[b])) else longest
        steps = int(math.ceil(1.3 * S_b)) + 2
        how = dict(every=log.every, spacing=log.spacing)
        if log.kind == "exact":
            runs.append(exact_log(nqm, eta, float(B), steps=steps, name=f"B{B:.6g}", **how))
            continue
        step, D, loss = mc_log(nqm, eta, float(B), steps, replicas=1, seed=log.seed + b, **how)
        runs.append(Run(f"B{B:.6g}", float(B), step, D, loss[0], {"lr": np.full(step.size, float(eta))}))
    return runs
