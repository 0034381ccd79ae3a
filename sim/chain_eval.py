"""The main path end to end: a realistic NQM sweep, ``dbs fit``, ``dbs schedule``, scored exactly.

A sweep is logged as trainers log it: one run per batch size (``k`` runs with
different seeds for ``k`` seeds per batch), every run to the same budget in
examples, a row every ``S/2000`` steps. It goes through the package's main
path with the paper's rule -- ``dbs fit`` (:func:`dbs_theory.measure.tabulate.bopt_table`
with ``bootstrap=200, seed=0``) then ``dbs schedule --from fit.json --horizon
BUDGET --unit examples --rule paper``, by the library function the command
calls (:func:`dbs_theory.rules.from_fit.schedule_from_fit`; every rule end to
end: :mod:`sim.rule_chain`) -- and the schedule it hands out is scored by
its exact expected loss at the budget against:

(a) the sweep's best fixed batch: the grid batch with the lowest exact loss
    at the budget (an oracle; with noisy logs a user without the package picks
    the batch whose logged loss is lowest, "the logs' own pick", which the
    Monte Carlo bar is measured against: the "what the user would pick
    without the package");
(b) the paper's rule on the NQM's exact ``Bopt(D)`` (as
    :func:`sim.schedule_eval.compare_schedules` builds it);
(c) the best 8-piece schedule found (:func:`sim.schedule_eval.best_k_piece`).

Scores: ``gain = 1 - L_pkg / L_a`` (> 0 beats the best grid batch),
``of_paper = gain / (1 - L_b / L_a)`` (the fraction of (b)'s gain reached) and
``gap_closed = (L_a - L_pkg) / (L_a - L_c)``.

Units: data and batch sizes in examples, steps are optimizer steps, ``eta``
the fixed learning rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .nqm import NQM

__all__ = [
    "SPECTRA",
    "GRIDS",
    "LOGS",
    "ROWS_PER_RUN",
    "MC_MAX_BUDGET",
    "BARS",
    "sweep_logs",
    "references",
    "package_schedule",
    "grid_losses",
    "score_schedule",
    "score_sweep",
    "chain_case",
    "study",
    "summarize",
    "markdown_table",
    "losing_sweeps",
]

#: name -> NQM constructor of ``d`` modes
SPECTRA = {
    "zhang2019": lambda d: NQM.zhang2019(d),
    "power law 1.5": lambda d: NQM.power_law(d, alpha=1.5),
    "power law 2.0": lambda d: NQM.power_law(d, alpha=2.0),
}
#: name -> (grid ratio, number of batch sizes, smallest batch): both span 1..1024 examples
GRIDS = {"2x": (2.0, 11, 1.0), "sqrt2": (math.sqrt(2), 21, 1.0)}
#: name -> (log kind, seeds per batch size, replicate sweeps)
LOGS = {"exact": ("exact", 1, 1), "MC 1 seed": ("mc", 1, 4), "MC 3 seeds": ("mc", 3, 2)}
#: rows a run logs: one every ``S // ROWS_PER_RUN`` steps (``S`` the run's steps)
ROWS_PER_RUN = 2000
#: Monte Carlo logs cost d x steps; on 2 shared cores a 1e6 sweep takes about an hour per spectrum
MC_MAX_BUDGET = 3e5
#: the bars the main path is held to (docs/main_path.md says what each one measures)
BARS = dict(exact_of_paper=0.8, mc_worse_share=0.10, mc_worst_loss=0.02)
#: fractions of the budget where the envelope's Bopt(D) is compared with the exact one
PROBES = (1 / 50, 1 / 10, 1 / 3, 1.0)


def sweep_logs(nqm: NQM, eta, batches, budget, log_kind="exact", seeds_per_batch=1, sweeps=1, seed=0):
    """``sweeps`` sweeps (lists of :class:`Run`), each run to ``budget`` examples, logged linearly.

    Exact logs: one run per batch size (``sweeps`` is 1). Monte Carlo logs:
    ``seeds_per_batch`` runs per batch size, each its own SGD replica (one
    stream per replica), every replica of every sweep distinct.
    """
    from dbs_theory.logs.runs import Run

    from .trainer_logs import exact_log, mc_log

    out = [[] for _ in range(sweeps)]
    for i, B in enumerate(np.asarray(batches, float)):
        steps = max(1, int(math.ceil(budget / B - 1e-9)))
        every = max(1, steps // ROWS_PER_RUN)
        if log_kind == "exact":
            run = exact_log(nqm, eta, B, steps=steps, every=every, name=f"b{B:.6g}")
            for sweep in out:
                sweep.append(run)
            continue
        if log_kind != "mc":
            raise ValueError(f"log_kind={log_kind!r} must be 'exact' or 'mc'")
        st, D, loss = mc_log(nqm, eta, B, steps, replicas=sweeps * seeds_per_batch, seed=seed + 7919 * i, every=every)
        lr = {"lr": np.full(st.size, float(eta))}
        for r in range(sweeps * seeds_per_batch):
            s, k = divmod(r, seeds_per_batch)
            name = f"b{B:.6g}" + (f"-seed{k}" if seeds_per_batch > 1 else "")
            out[s].append(Run(name, float(B), st, D, loss[r], dict(lr)))
    return out


def references(nqm: NQM, eta, budget, K=8) -> dict:
    """The exact answers at one budget: best fixed batch, (b) the paper's rule on the exact Bopt(D),
    (c) the best ``K``-piece schedule, and the exact Bopt at :data:`PROBES` x budget (the expensive part:
    compute once per spectrum and budget)."""
    from dbs_theory.schedules.batch_schedules import constant_batch

    from .schedule_eval import paper_schedule, nqm_best_fixed_batch, best_k_piece, loss_at_budget, nqm_bopt_curve

    B_opt, L_opt = nqm_best_fixed_batch(nqm, eta, budget)
    paper = paper_schedule(nqm_bopt_curve(nqm, eta, budget), budget)
    kp, L_c = best_k_piece(nqm, eta, budget, [constant_batch(B_opt, "examples"), paper], K=K)
    probes = [float(budget * f) for f in PROBES]
    return dict(
        budget=float(budget),
        B_opt=B_opt,
        L_opt=L_opt,
        paper=paper,
        L_b=loss_at_budget(nqm, eta, paper, budget),
        k_piece=kp,
        L_c=L_c,
        probes=probes,
        bopt_exact=[nqm_best_fixed_batch(nqm, eta, D)[0] for D in probes],
    )


def package_schedule(runs, budget, workdir=None, rule="paper") -> dict:
    """What ``dbs fit`` (defaults) then ``dbs schedule --from fit.json --horizon BUDGET --unit examples --rule
    RULE`` hand out, by the library functions they call (:func:`dbs_theory.measure.tabulate.bopt_table`,
    :func:`dbs_theory.rules.from_fit.schedule_from_fit`): ``schedule`` (a BatchSchedule, ``None`` when
    refused), ``exports`` (exports.json's record of the choice, with the followed ``curve``), ``envelope``
    (fit.json's), ``error`` (the refusal's message). ``workdir``: where fit.json is written, if anywhere."""
    from dbs_theory.measure.tabulate import bopt_table
    from dbs_theory.rules.from_fit import schedule_from_fit

    table = bopt_table(runs, bootstrap=200, seed=0)
    if workdir is not None:
        table.write(Path(workdir))
    fit = table.to_dict()
    env = fit.get("envelope")
    try:
        choice = schedule_from_fit(fit, float(budget), rule, unit="examples", lr=fit.get("lr"))
    except ValueError as exc:
        return dict(schedule=None, exports={}, envelope=env, error=str(exc).splitlines()[0])
    exports = dict(choice.record(), curve=None if choice.curve is None else choice.curve.to_dict())
    return dict(schedule=choice.schedule, exports=exports, envelope=env, error="")


def _noisy_pick(runs, budget):
    """The batch whose logged loss at ``budget`` (mean over its seeds, linear in data between rows) is lowest."""
    by = {}
    for r in runs:
        by.setdefault(r.batch_size, []).append(float(np.interp(budget, r.tokens, r.loss)))
    return min(by, key=lambda b: np.mean(by[b]))


def _readings(got, ref):
    """The followed curve's and the raw envelope's Bopt at the reference's probe data (NaN where absent)."""
    from dbs_theory.measure.bopt_curve import BoptCurve

    curve = got["exports"].get("curve")
    c = BoptCurve.from_dict(curve, extrapolate=True) if curve else None
    env = got["envelope"] or {}
    D = np.array([np.nan if v is None else v for v in env.get("data") or []], float)
    B = np.array([np.nan if v is None else v for v in env.get("bopt") or []], float)
    ok = np.isfinite(B) & np.asarray(env.get("identified") or [], bool) if D.size else np.array([], bool)
    raw = [float(B[ok][np.argmin(np.abs(np.log(D[ok] / p)))]) if ok.any() else math.nan for p in ref["probes"]]
    return dict(bopt_curve=[float(c(p)) if c else math.nan for p in ref["probes"]], bopt_readings=raw)


def grid_losses(nqm: NQM, eta, batches, budget) -> dict:
    """``{batch: exact expected loss at budget}`` for each fixed batch of the grid (examples)."""
    from .schedule_eval import loss_at_budget

    return {float(B): loss_at_budget(nqm, eta, float(B), budget) for B in batches}


def score_schedule(nqm: NQM, eta, schedule, budget, ref, losses, fallback=None) -> dict:
    """Score one schedule (a BatchSchedule; ``None``, a refusal, is scored as the fixed batch ``fallback``)
    against (a) the best fixed batch of the grid ``losses`` (``{batch: exact loss}``), (b) and (c) of ``ref``.

    ``gain = 1 - L / L_a``; ``of_paper = gain / gain_b`` (NaN when (b) does not beat (a));
    ``gap_closed = (L_a - L) / (L_a - L_c)``; ``excess = L / L_a - 1`` (> 0: worse than (a)).
    """
    from .schedule_eval import loss_at_budget

    B_a = min(losses, key=losses.get)
    L_a = losses[B_a]
    L = losses[fallback] if schedule is None else loss_at_budget(nqm, eta, schedule, budget)
    gain, gain_b, gain_c = 1 - L / L_a, 1 - ref["L_b"] / L_a, 1 - ref["L_c"] / L_a
    return dict(
        L_pkg=L,
        B_a=B_a,
        L_a=L_a,
        L_b=ref["L_b"],
        L_c=ref["L_c"],
        gain=gain,
        gain_b=gain_b,
        gain_c=gain_c,
        of_paper=gain / gain_b if gain_b > 0 else math.nan,
        gap_closed=gain / gain_c if gain_c > 0 else math.nan,
        excess=L / L_a - 1,
        worse=bool(L > L_a * (1 + 1e-9)),
    )


def score_sweep(nqm: NQM, eta, runs, budget, ref, losses) -> dict:
    """Run one sweep through the main path (:func:`package_schedule`) and score what it hands out.

    A refusal is scored as the batch the sweep's logs pick (what the user is left with), flagged ``refused``.
    """
    got = package_schedule(runs, budget)
    sched, ex = got["schedule"], got["exports"]
    noisy = _noisy_pick(runs, budget)
    out = score_schedule(nqm, eta, sched, budget, ref, losses, fallback=noisy)
    out.update(
        noisy_pick=noisy,
        L_noisy=losses[noisy],
        refused=sched is None,
        error=got["error"],
        recommendation=ex.get("recommendation", "refused" if sched is None else "per-target"),
        reason=ex.get("reason", got["error"]),
        best_fixed=ex.get("best_fixed", math.nan),
        schedule=None if sched is None else [list(map(float, s)) for s in sched.segments],
        first=math.nan if sched is None else float(sched.sizes[0]),
        last=math.nan if sched is None else float(sched.sizes[-1]),
        probes=ref["probes"],
        bopt_exact=ref["bopt_exact"],
        **_readings(got, ref),
    )
    return out


def chain_case(nqm: NQM, eta, batches, budget, log_kind="exact", seeds_per_batch=1, seed=0, ref=None) -> dict:
    """One sweep (batch sizes ``batches``, every run to ``budget`` examples, ``log_kind`` logs with
    ``seeds_per_batch`` seeds per batch) through ``dbs fit`` + ``dbs schedule``, scored exactly
    (:func:`score_sweep`); ``ref`` from :func:`references` (computed when not given)."""
    ref = ref or references(nqm, eta, budget)
    runs = sweep_logs(nqm, eta, batches, budget, log_kind, seeds_per_batch, 1, seed)[0]
    return score_sweep(nqm, eta, runs, budget, ref, grid_losses(nqm, eta, batches, budget))


def _cases(spectra, grids, logs, budgets):
    """The grid of cases, in run order; Monte Carlo logs only at budgets <= :data:`MC_MAX_BUDGET`."""
    return [
        (s, b, g, l)
        for b in budgets
        for s in spectra
        for g in grids
        for l in logs
        if LOGS[l][0] == "exact" or b <= MC_MAX_BUDGET * (1 + 1e-9)
    ]


def study(
    d=1000,
    eta=0.5,
    budgets=(1e5,),
    spectra=None,
    grids=None,
    logs=None,
    seed=0,
    K=8,
    progress=False,
    on_row=None,
    done=(),
):
    """Every case of budgets x spectra x grids x logs through the main path; ``(rows, cases)``.

    ``rows``: one per sweep (:func:`score_sweep` plus the case's names and
    ``replicate``), each also passed to ``on_row`` as it is made (partial
    results of a long study); ``cases``: :func:`summarize`. The references
    (the expensive K-piece search) are computed once per spectrum and budget.
    ``done``: rows of an interrupted study with the same arguments; its
    complete cases are reused (passed to ``on_row`` again), not rerun.
    """
    from tqdm.auto import tqdm

    from .identify import design_batches

    spectra, grids, logs = list(spectra or SPECTRA), list(grids or GRIDS), list(logs or LOGS)
    cases = _cases(spectra, grids, logs, budgets)
    bar = tqdm(total=sum(LOGS[c[3]][2] for c in cases), desc="chain sweeps", disable=not progress)
    rows, refs, prior = [], {}, {}
    for r in done:
        prior.setdefault((r["spectrum"], r["budget"], r["grid"], r["logs"]), []).append(r)
    for n, (spec, budget, grid, log) in enumerate(cases):
        old = prior.get((spec, float(budget), grid, log), [])
        if len(old) == LOGS[log][2]:
            rows += old
            for r in old if on_row is not None else ():
                on_row(r)
            bar.update(len(old))
            continue
        nqm = SPECTRA[spec](d)
        bar.set_postfix_str(f"{spec}, {budget:g}, {grid}, {log}")
        if (spec, budget) not in refs:
            refs[spec, budget] = references(nqm, eta, budget, K)
        batches = design_batches(*GRIDS[grid])
        losses = grid_losses(nqm, eta, batches, budget)
        kind, per, reps = LOGS[log]
        for r, runs in enumerate(sweep_logs(nqm, eta, batches, budget, kind, per, reps, seed + 100_003 * n)):
            rows.append(
                dict(
                    spectrum=spec,
                    grid=grid,
                    logs=log,
                    budget=float(budget),
                    replicate=r,
                    **score_sweep(nqm, eta, runs, budget, refs[spec, budget], losses),
                )
            )
            if on_row is not None:
                on_row(rows[-1])
            bar.update()
    bar.close()
    return rows, summarize(rows)


def _passes(kind, rows):
    """``(ok, text)`` against :data:`BARS` for sweeps of one log kind."""
    worse = sum(r["worse"] for r in rows)
    worst = max(0.0, max(r["excess"] for r in rows))
    if kind == "exact":
        low = _nan(np.nanmin, [r["of_paper"] for r in rows])
        ok = worse == 0 and (math.isnan(low) or low >= BARS["exact_of_paper"])  # NaN: (b) does not beat (a)
        return ok, ("pass" if ok else "FAIL") + f" (never worse; >= {BARS['exact_of_paper']:.0%} of (b)'s gain)"
    # noisy logs: (a) is what the user picks without the package, the batch the sweep's own logs pick
    worse = sum(r["L_pkg"] > r["L_noisy"] * (1 + 1e-9) for r in rows)
    worst = max(0.0, max(r["L_pkg"] / r["L_noisy"] - 1 for r in rows))
    ok = worse <= BARS["mc_worse_share"] * len(rows) and worst <= BARS["mc_worst_loss"]
    return ok, ("pass" if ok else "FAIL") + (
        f" (worse than the logs' own pick in <= {BARS['mc_worse_share']:.0%}, by <= {BARS['mc_worst_loss']:.0%})"
    )


def _nan(f, values):
    """``f`` over the finite values, NaN when there are none."""
    v = np.asarray(values, float)
    return float(f(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def _summary(name, rows):
    g = np.array([r["gain"] for r in rows])
    kind = "exact" if all(LOGS[r["logs"]][0] == "exact" for r in rows) else "mc"
    ok, text = _passes(kind, rows)
    return dict(
        **name,
        sweeps=len(rows),
        gain_median=float(np.median(g)),
        gain_min=float(g.min()),
        gain_max=float(g.max()),
        worse=int(sum(r["worse"] for r in rows)),
        worst=float(max(0.0, max(r["excess"] for r in rows))),
        of_paper=_nan(np.median, [r["of_paper"] for r in rows]),
        of_paper_min=_nan(np.min, [r["of_paper"] for r in rows]),
        gap_closed=_nan(np.median, [r["gap_closed"] for r in rows]),
        gain_b=float(np.median([r["gain_b"] for r in rows])),
        gain_c=float(np.median([r["gain_c"] for r in rows])),
        pick_gain_median=float(np.median([1 - r["L_noisy"] / r["L_a"] for r in rows])),
        pick_gain_min=float(min(1 - r["L_noisy"] / r["L_a"] for r in rows)),
        beats_pick=int(sum(r["L_pkg"] < r["L_noisy"] * (1 - 1e-9) for r in rows)),
        worse_pick=int(sum(r["L_pkg"] > r["L_noisy"] * (1 + 1e-9) for r in rows)),
        worst_pick=float(max(0.0, max(r["L_pkg"] / r["L_noisy"] - 1 for r in rows))),
        dynamic=int(sum(r["recommendation"] == "dynamic" for r in rows)),
        refused=int(sum(r["refused"] for r in rows)),
        ok=ok,
        bar=text,
    )


def summarize(rows) -> list:
    """Per case (spectrum, grid, logs, budget) and overall per log kind: the gain over (a) (median, min,
    max), how often and by how much at worst the schedule loses to (a), the median fraction of (b)'s gain
    reached and of the (a)-to-(c) gap closed, how many sweeps got a dynamic schedule, and the bar."""
    keys = ("spectrum", "grid", "logs", "budget")
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = [_summary(dict(zip(keys, k)), g) for k, g in groups.items()]
    for log in dict.fromkeys(r["logs"] for r in rows):
        sub = [r for r in rows if r["logs"] == log]
        out.append(_summary(dict(spectrum="all", grid="all", logs=log, budget=math.nan), sub))
    mc = [r for r in rows if LOGS[r["logs"]][0] == "mc"]
    if mc:
        out.append(_summary(dict(spectrum="all", grid="all", logs="all MC", budget=math.nan), mc))
    return out


def _pct(x, sign=True):
    return "-" if x is None or math.isnan(x) else (f"{100 * x:+.1f}%" if sign else f"{100 * x:.0f}%")


def markdown_table(cases) -> str:
    """:func:`summarize`'s rows as a markdown table (gains relative to (a), the grid's best fixed batch)."""
    head = [
        "spectrum",
        "grid",
        "logs",
        "budget",
        "sweeps",
        "dynamic",
        "gain over (a): median [min, max]",
        "worse than (a) (worst)",
        "(b) gain",
        "share of (b)'s gain",
        "(c) gain",
        "(a)->(c) gap closed",
        "logs' own pick: gain over (a), median [min]",
        "package beats the logs' pick",
        "worse than the logs' pick (worst)",
        "bar",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        cells = [
            c["spectrum"],
            c["grid"],
            c["logs"],
            "all" if math.isnan(c["budget"]) else f"{c['budget']:.0e}",
            str(c["sweeps"]),
            f"{c['dynamic']}/{c['sweeps']}" + (f" ({c['refused']} refused)" if c["refused"] else ""),
            f"{_pct(c['gain_median'])} [{_pct(c['gain_min'])}, {_pct(c['gain_max'])}]",
            f"{c['worse']}/{c['sweeps']}" + (f" ({_pct(c['worst'])})" if c["worse"] else ""),
            _pct(c["gain_b"]),
            _pct(c["of_paper"], False) + (f" (min {_pct(c['of_paper_min'], False)})" if c["sweeps"] > 1 else ""),
            _pct(c["gain_c"]),
            _pct(c["gap_closed"], False),
            f"{_pct(c['pick_gain_median'])} [{_pct(c['pick_gain_min'])}]",
            f"{c['beats_pick']}/{c['sweeps']}",
            f"{c['worse_pick']}/{c['sweeps']}" + (f" ({_pct(c['worst_pick'])})" if c["worse_pick"] else ""),
            c["bar"].split(" ")[0],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def losing_sweeps(rows) -> str:
    """Markdown lines, one per sweep whose schedule loses to (a) (or fails the exact bar): losses, the
    schedule handed out, and the followed curve's Bopt(D) against the exact Bopt(D) at the probe data."""
    out = []
    for r in rows:
        weak = LOGS[r["logs"]][0] == "exact" and r["of_paper"] < BARS["exact_of_paper"]  # NaN: no bar
        if not (r["worse"] or weak):
            continue
        probes = ", ".join(
            f"D={D:.3g}: {c:.3g} (envelope {e:.3g}) vs {x:.3g}"
            for D, c, e, x in zip(r["probes"], r["bopt_curve"], r["bopt_readings"], r["bopt_exact"])
        )
        out.append(
            f"- {r['spectrum']}, {r['grid']}, {r['logs']} #{r['replicate']}, budget {r['budget']:.0e}: "
            f"L={r['L_pkg']:.4g} vs (a) {r['L_a']:.4g} ({100 * r['excess']:+.2f}%; B={r['B_a']:.4g}; logs "
            f"pick {r['noisy_pick']:.4g}), "
            f"{r['recommendation']} {r['first']:.4g} -> {r['last']:.4g}; Bopt followed vs exact: {probes}"
        )
    return "\n".join(out)
