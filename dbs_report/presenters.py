"""How each kind of result presents itself in a report: the files that mark it, and its sections.

A :class:`Presenter` names the files that identify a result in a folder and
turns that folder into report sections (title, markdown, figures). Each one
reads its result through the producer's own reader (``load_runs``,
``Arms.load``, ``BoptCurve.from_dict``, ``law_from_params``);
:func:`dbs_report.report.build_report` just asks every presenter about every
folder. Adding a result kind means adding a presenter here, nothing else.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dbs_theory.measure.bopt_curve import BoptCurve
from dbs_theory.measure.tabulate import chosen
from dbs_theory.theory.laws import law_from_params
from dbs_theory.logs.runs import load_runs
from validate.experiments import EXPERIMENTS
from validate.experiments.schedule import PLAN, Arms

from . import figures as F
from .simulate_sections import read_json, simulate_figures, simulate_optimal_sections, simulate_schedule_figures

__all__ = ["Presenter", "PRESENTERS", "experiment_rank"]


@dataclass(frozen=True)
class Presenter:
    """A result kind: ``marks`` (file names that must all be in the folder) and ``sections(folder)``,
    a list of ``(title, markdown, [(figure, file name, caption)])``."""

    name: str
    marks: tuple
    sections: Callable

    def finds(self, d: Path) -> bool:
        return all((d / m).exists() for m in self.marks)


def experiment_rank(name: str) -> int:
    """Where experiment ``name`` comes in a report: the order ``dbs validate all`` runs them."""
    order = list(EXPERIMENTS)
    return order.index(name) if name in order else len(order)


def _fit(d):
    """``fit.json`` of folder ``d``: :meth:`dbs_theory.measure.fit_table.BoptTable.load`."""
    from dbs_theory.measure.fit_table import BoptTable

    return BoptTable.load(Path(d) / "fit.json")


def _display(loss, frac=0.02):
    """A centred moving average for plotting (not monotone: it shows what the run did)."""
    loss = np.asarray(loss, float)
    k = max(1, int(round(frac * loss.size)))
    if k < 2:
        return loss
    pad = np.pad(loss, k, mode="edge")
    return np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")


def _thin(D, L, n=600):
    idx = np.unique(np.linspace(0, len(D) - 1, min(n, len(D))).astype(int))
    return np.asarray(D)[idx], np.asarray(L)[idx]


def _run_curve(run, use="loss", label=None):
    if use == "loss":
        D, L = run.tokens, _display(run.loss)
    else:
        v = run.extra.get(use)
        ok = np.isfinite(v) if v is not None else np.zeros(0, bool)
        D, L = run.tokens[ok], v[ok]
    D, L = _thin(D, L)
    return dict(label=label or run.name, D=D, loss=L, batch=run.batch_size)


def _logs(d):
    return [load_runs(f)[0] for f in sorted((Path(d) / "logs").glob("*.csv"))]


def _es_section(d, title, unit):
    """E(S) panels and Bmin/Bopt vs target from ``fit.json`` + ``es_points.csv``."""
    fit = _fit(d)
    pts = {}
    with open(d / "es_points.csv") as fh:
        reader = csv.DictReader(fh)
        if "target_index" not in (reader.fieldnames or []):
            raise ValueError(
                f"{d / 'es_points.csv'}: no target_index column (an older dbs fit wrote it); rerun dbs fit"
            )
        for r in reader:
            pts.setdefault(int(r["target_index"]), []).append((float(r["S"]), float(r["E"])))
    laws = fit.laws or [{}] * len(fit.rows)
    panels = []
    for i, (row, fitted) in enumerate(zip(fit.target_rows, laws)):
        SE = np.array(pts.get(i, []), float).reshape(-1, 2)
        shown = {name: law_from_params(name, p) for name, p in fitted.items() if name in ("three_phase", "hyperbolic")}
        panels.append(
            dict(
                target=row.target,
                S=SE[:, 0],
                E=SE[:, 1],
                laws=shown,
                bmin=row.bmin.value if row.bmin.identified else None,
                bopt=row.bopt.value if row.bopt.identified else None,
            )
        )
    est = {q: chosen(fit.rows, q) for q in ("bmin", "bopt")}  # the estimators the package chooses
    col = lambda q: [e.value if e.identified else math.nan for e in est[q]]
    ci = lambda q: ([e.lo for e in est[q]], [e.hi for e in est[q]]) if any(e.has_interval for e in est[q]) else None
    src = lambda q: est[q][0].source if est[q] else "three-phase fit"
    source = f"Bmin from the {src('bmin')}, Bopt from the {src('bopt')}"
    targets = [r.target for r in fit.target_rows]
    return [
        (
            F.es_panels([p for p in panels if len(p["S"])], unit, f"{title}: E(S) per target"),
            "es",
            "Data E vs steps S to reach each target: points from the runs, the fitted three-phase law "
            "(phases shaded: inverse red, quadratic yellow, linear green) and the hyperbola; Bmin and Bopt "
            "are the slopes of the lines through the origin.",
        ),
        (
            F.bmin_bopt(
                targets, col("bmin"), col("bopt"), ci("bmin"), ci("bopt"), unit, f"{title}: Bmin and Bopt vs target"
            ),
            "bmin-bopt",
            f"Bmin (smallest batch that reaches the target) and Bopt (data-optimal batch) per target loss, "
            f"with bootstrap intervals; {source}. Targets where a value is not identified are left out.",
        ),
    ]


def _sweep(d, s):
    runs = _logs(d)
    fit = _fit(d)
    figs = [
        (
            F.loss_curves(
                [_run_curve(r, label=f"B = {r.batch_size:g}") for r in runs],
                "Batch-size sweep at a constant LR: loss vs tokens",
                "tokens",
                fit.crossovers,
            ),
            "loss",
            "Training loss (centred moving average) per batch size; crosses mark where a larger "
            "batch overtakes a smaller one.",
        )
    ]
    figs += _es_section(d, "sweep", "tokens")
    if (d / "bopt_curve.json").exists():
        c = BoptCurve.from_dict(read_json(d / "bopt_curve.json"), extrapolate=True)
        figs.append(
            (
                F.bopt_schedule(c.D, c.B, c),
                "bopt-curve",
                "Bopt per target at the data Emin where it is optimal, and the power law fitted through them.",
            )
        )
    return figs


def _curves_of(runs, use):
    """One curve per run, labelled by run name (no batch colouring: arms are compared, not batches)."""
    out = []
    for r in runs:
        c = _run_curve(r, use)
        c.pop("batch")
        out.append(c)
    return out


def _schedule(d, s):
    runs = [r for r in _logs(d) if r.name.startswith("wsd-") and r.name.endswith(("-s0", "-s1"))]
    curves = _curves_of(runs, "val_loss")
    for c in curves:
        c["style"] = "-" if c["label"].endswith("s0") else "--"
    figs = [
        (
            F.comparison(
                curves,
                "Each rule and the best fixed batch under WSD at equal tokens (validation loss)",
                ylabel="validation loss (nats)",
            ),
            "compare",
            "Held-out loss of each rule's schedule and the best fixed batch; solid seed 0, dashed seed 1.",
        )
    ]
    if (d / PLAN).exists():
        p = Arms.load(d / PLAN)
        if p.rules:
            rules = [(k, (r["starts"], r["sizes"])) for k, r in p.rules.items()]
            figs.append(
                (
                    F.rule_schedules(rules, p.best_fixed, s["tier_config"]["budget"]),
                    "rules",
                    "The batch each rule hands out over the run, and the sweep's best fixed batch.",
                )
            )
    return figs


def _ablation(d, s):
    runs = _logs(d)
    marks, use, ylabel = [], "val_loss", "validation loss (nats)"
    if s["experiment"] == "seq-len":
        marks, use, ylabel = [(s["switch_tokens"], "batch doubles")], "loss", "training loss (nats, smoothed)"
    if s["experiment"] == "decay":
        marks = [(s["tier_config"]["budget"], "decay starts")]
    curves = _curves_of(runs, use)
    return [
        (
            F.comparison(curves, f"Ablation {s['experiment']}: the arms at equal tokens", ylabel=ylabel, marks=marks),
            "compare",
            f"Ablation {s['experiment']}: each arm's loss curve.",
        )
    ]


def _predict(d, s):
    curves = []
    for i, c in enumerate(s.get("curve_detail", [])):
        if not c["held_out"] and i % 3:
            continue  # every held-out run, a few calibration runs
        tag = "held out" if c["held_out"] else "calibration"
        curves.append(dict(label=f"B = {c['batch']:g} ({tag}) real", D=c["D"], loss=c["real"], batch=c["batch"]))
        curves.append(dict(label=f"B = {c['batch']:g} NQM", D=c["D"], loss=c["nqm"], batch=c["batch"], style="--"))
    if not curves:
        return []
    fig = F.loss_curves(curves, "NQM prediction vs real runs", "tokens", zoom=None)
    return [
        (
            fig,
            "curves",
            "Smoothed training loss of real runs (solid) and the calibrated NQM's prediction "
            "(dashed), for the held-out and some calibration batch sizes.",
        )
    ]


def _growth(d, s):
    """Per seed, the validation-loss lead of b3 over b2 along the data (positive: the larger batch ahead)."""
    b1, b2, b3 = s["batches"]
    D1, D2 = s["data"]
    # by log file name (the run's label here): a cached run keeps the name it was first trained under
    runs = {f.stem: load_runs(f)[0] for f in (Path(d) / "logs").glob("*.csv")}
    curves = []
    for seed in s["seeds"]:
        a, b = runs.get(f"b{b2:g}-d{D2:g}-s{seed}"), runs.get(f"b{b3:g}-d{D2:g}-s{seed}")
        if a is None or b is None:
            continue
        va, vb = (r.extra["val_loss"][np.isfinite(r.extra["val_loss"])] for r in (a, b))
        n = min(va.size, vb.size)
        D = a.tokens[np.isfinite(a.extra["val_loss"])][:n]
        curves.append(dict(label=f"seed {seed}", D=D, loss=va[:n] - vb[:n]))
    if not curves:
        return []
    grid = np.linspace(curves[0]["D"][0], D2, 50)
    curves.append(dict(label="tie", D=grid, loss=np.zeros_like(grid), style=":"))
    fig = F.comparison(
        curves,
        f"Loss of b2 = {b2:g} minus b3 = {b3:g} tokens per step (validation)",
        ylabel="L(b2) - L(b3) (nats)",
        marks=[(D1, "D1")],
        ylog=False,
    )
    return [
        (
            fig,
            "lead",
            "Per seed, how far the larger batch b3 is ahead of b2 (positive) or behind (negative) "
            "along the data: a crossing is where a curve passes zero. The last point of each run "
            "is on the large final slice.",
        )
    ]


def _schedule_band(d):
    """A ``dbs schedule`` folder: the measured Bopt band (opening past the measured range) and the schedule,
    read through the schemas ``dbs train`` and ``dbs schedule`` share (:mod:`dbs_theory.logs.schemas`)."""
    from dbs_theory.logs.schemas import ExportsFile, ScheduleFile, read

    ex, sched = read(d / "exports.json", ExportsFile), read(d / "schedule.json", ScheduleFile)
    steps = ([s.start for s in sched.segments], [s.batch_size for s in sched.segments])
    unit = sched.unit
    choice = ""
    if ex.recommendation and ex.rule not in ("late-switch", "fixed"):
        sizes = steps[1]
        what = (
            f"a dynamic schedule, {sizes[0]:.4g} -> {sizes[-1]:.4g} {unit} per step"
            if ex.recommendation == "dynamic"
            else f"a fixed batch, {sizes[0]:.4g} {unit} per step"
        )
        rule = f" (rule {ex.rule})" if ex.rule not in (None, "paper") else ""
        choice = f"**Recommended{rule}: {what}.** Why: {' '.join(str(ex.reason).split())}.\n\n"
    elif ex.rule not in (None, "paper"):
        steps_text = "; then ".join(f"{b:.4g} {unit} per step from D = {a:.4g}" for a, b in zip(*steps))
        choice = (
            f"**Rule {ex.rule}** (dbs schedule --rule, from the sweep's best fixed batch; "
            f"docs/optimal_schedules.md scores it): {steps_text}.\n\n"
        )
    band = ex.band
    if band is None:
        none = (
            ""
            if ex.rule not in (None, "paper")
            else ("No measured interval in the source (the band needs dbs fit's envelope).")
        )
        return (f"schedule ({d})", (choice + none).strip(), [])
    text = choice + (
        f"The sweep covers D up to {band.measured_to:.4g} {unit}"
        + (
            f"; past it the schedule is extrapolated and the band opens to [{band.lo[-1]:.4g}, "
            f"{band.hi[-1]:.4g}] at the horizon."
            if band.beyond
            else "."
        )
    )
    curve = ex.curve or {}
    fig = F.bopt_band(curve.get("D", []), curve.get("B", []), band.model_dump(), steps, unit)
    return (f"schedule ({d})", text, [(fig, "bopt-band", "Envelope Bopt(D), its 90% band and the schedule.")])


def _demote(md):
    """Shift markdown headings down two levels so they nest under a section."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 2) + " ", md, flags=re.M)


def _experiment(d):
    s = read_json(d / "summary.json")
    name = s.get("experiment")
    handler = {"sweep": _sweep, "schedule": _schedule, "predict": _predict, "growth": _growth}.get(name, _ablation)
    text = (d / "summary.md").read_text() if (d / "summary.md").exists() else ""
    return [(f"validate {name} ({d})", _demote(text), handler(d, s))]


def _fit_folder(d):
    if (d / "summary.json").exists():
        return []  # an experiment's own fit: presented with the experiment
    figs = _es_section(d, "fit", "tokens")
    dyn = _fit(d).dynamic_runs
    if dyn:
        figs.append(
            (
                F.dynamic_runs(dyn),
                "dynamic-runs",
                f"{len(dyn)} run(s) whose batch changes ({', '.join(r['name'] for r in dyn)}): drawn with "
                "their batch steps, left out of every fixed-batch estimate above.",
            )
        )
    return [(f"fit ({d})", "", figs)]


#: Every result kind a report knows, in the order their sections appear within a folder.
PRESENTERS = [
    Presenter("validate experiment", ("summary.json",), _experiment),
    Presenter("dbs fit", ("fit.json", "es_points.csv"), _fit_folder),
    Presenter("dbs simulate", ("frontier.json",), lambda d: [(f"simulate ({d})", "", simulate_figures(d))]),
    Presenter(
        "dbs simulate schedule",
        ("schedule_eval.json",),
        lambda d: [(f"simulate schedule ({d})", "", simulate_schedule_figures(d))],
    ),
    Presenter("dbs simulate optimal", ("optimal.json",), simulate_optimal_sections),
    Presenter("dbs schedule", ("schedule.json", "exports.json"), lambda d: [_schedule_band(d)]),
]
