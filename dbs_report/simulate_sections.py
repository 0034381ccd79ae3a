"""The report's sections for ``dbs simulate`` results: the exact frontier (frontier.json), the schedule
comparison (schedule_eval.json) and the optimal schedule against every rule (optimal.json)."""

from __future__ import annotations

import json
from pathlib import Path


from dbs_theory.schedules.batch_schedules import BatchSchedule
from dbs_theory.measure.bopt_curve import BoptCurve
from dbs_theory.logs.runs import load_runs
from dbs_theory.measure.curves import crossovers

from . import figures as F
from .nqm import frontier_points, three_phase_fits

__all__ = ["read_json", "simulate_figures", "simulate_schedule_figures", "simulate_optimal_sections"]


def read_json(path):
    """The JSON in a results file; a malformed one is one line naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a record this package wrote") from None


def simulate_figures(d):
    from dbs_theory.logs.schemas import FrontierFile, read

    read(d / "frontier.json", FrontierFile)  # a hand-edited file is one line naming the key, not a traceback
    meta = read_json(d / "frontier.json")
    t = meta["targets"]
    pts = frontier_points(meta)
    panels = [
        dict(
            target=r["target"],
            S=[a for a, _ in pts.get(r["target"], [])],
            E=[b for _, b in pts.get(r["target"], [])],
            bmin=r["bmin"],
            bopt=r["bopt"],
        )
        for r in t
    ]
    panels = [p for p in panels if p["S"]][:: max(1, len(panels) // 6)][:6]
    fits = three_phase_fits(meta, [p["target"] for p in panels])
    for p in panels:  # the paper's law fitted to the exact frontier, to show how well it describes it
        p["laws"] = {"three_phase": fits[p["target"]].law} if p["target"] in fits else {}
    figs = [
        (
            F.es_panels(panels, "examples", "NQM: exact E(S) per target, with the three-phase law fitted"),
            "es",
            "Exact NQM frontier: data E vs steps S per target, the fitted three-phase law (phases shaded); "
            "Bmin and Bopt (exact) as lines through the origin.",
        ),
        (
            F.bmin_bopt(
                [r["target"] for r in t],
                [r["bmin"] for r in t],
                [r["bopt"] for r in t],
                unit="examples",
                title="NQM: Bmin and Bopt vs target",
            ),
            "bmin-bopt",
            "Exact Bmin and Bopt of the NQM per target loss.",
        ),
    ]
    if (d / "runs.csv").exists():
        runs = load_runs(d / "runs.csv")
        keep = runs[:: max(1, len(runs) // 10)]
        figs.insert(
            0,
            (
                F.loss_curves(
                    [dict(label=f"B = {r.batch_size:.3g}", D=r.tokens, loss=r.loss, batch=r.batch_size) for r in keep],
                    "NQM: expected loss vs data per batch size",
                    "examples",
                    crossovers(keep),
                    ylabel="expected loss (NQM units)",
                ),
                "loss",
                "NQM loss vs data for a range of batch sizes; crosses mark crossings.",
            ),
        )
    return figs


def simulate_schedule_figures(d):
    data = read_json(d / "schedule_eval.json")
    figs = []
    for r in data["results"]:
        b = r["budget"]
        if r.get("trajectories"):
            curves = [dict(label=k, D=v["D"], loss=v["loss"]) for k, v in r["trajectories"].items()]
            figs.append(
                (
                    F.comparison(
                        curves,
                        f"NQM: schedules at budget {b:.3g} examples",
                        unit="examples",
                        ylabel="expected loss (NQM units)",
                    ),
                    f"compare-{b:.3g}",
                    "Expected loss of the best fixed batch, the paper's dynamic schedule and the best "
                    "8-piece schedule found.",
                )
            )
        c, dyn = BoptCurve.from_dict(r["curve"], extrapolate=True), r["dynamic"]
        segs = dyn["segments"]
        figs.append(
            (
                F.bopt_schedule(
                    c.D,
                    c.B,
                    c,
                    ([s["from"] for s in segs], [s["batch_size"] for s in segs]),
                    b,
                    "examples",
                    f"NQM: Bopt(D) and the dynamic schedule (budget {b:.3g})",
                ),
                f"schedule-{b:.3g}",
                "The NQM's exact Bopt(D) points, the fitted curve and the schedule.",
            )
        )
    return figs


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def simulate_optimal_sections(d):
    """A ``dbs simulate optimal`` folder: per budget, the rules' table and the optimal schedule's figure."""

    data = read_json(d / "optimal.json")
    steps = lambda js: (lambda s: (s.starts, s.sizes))(BatchSchedule.from_json(json.dumps(js)))
    inputs = "measured" if data.get("measured") else "exact"
    text, figs = [], []
    for r in data["results"]:
        b, rows = r["budget"], r["rows"]
        text += [
            f"**Budget {b:.3g} examples** (LR {data['lr_schedule']}, {data['pieces']} pieces, {inputs} inputs "
            "for the rules; gap closed = share of the best-fixed-to-optimal loss gap):",
            "",
            "| rule | final loss | gap closed | note |",
            "|---|---|---|---|",
        ]
        text += [
            f"| {x.get('title', x['rule'])} | {_fmt(x['loss'], '.5g')} | {_fmt(x['gap_closed'], '.0%')} | {x['note']} |"
            for x in rows
        ]
        text.append("")
        opt = next(x for x in rows if x["rule"] == "optimal")
        others = [
            (x.get("title", x["rule"]), steps(x["schedule"])) for x in rows if x["rule"] != "optimal" and x["schedule"]
        ]
        bopt = r.get("bopt") if r.get("bopt", {}).get("curve_D") else None
        figs.append(
            (
                F.optimal_batches(
                    steps(opt["schedule"]),
                    r["along_optimal"],
                    bopt,
                    others,
                    r["horizon"],
                    title=f"NQM: the optimal batch schedule (budget {b:.3g}, LR {data['lr_schedule']})",
                ),
                f"optimal-{b:.3g}",
                "The loss-optimal batch schedule (black) against the data, with the NQM's exact Bopt(D) "
                "(envelope at the peak rate), Bmin of the optimum's current loss and McCandlish's noise scale "
                "of its state, and each rule's schedule (thin steps)."
                + ("" if bopt else f" No Bopt(D) here: {r.get('bopt', {}).get('error', 'not written')}."),
            )
        )
    return [(f"simulate optimal ({d})", "\n".join(text), figs)]
