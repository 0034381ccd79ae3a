"""``report.md`` and a self-contained ``report.html`` from any results folder.

A results folder is whatever ``dbs simulate``, ``dbs simulate schedule``,
``dbs fit``, ``dbs validate ...`` or ``dbs demo`` wrote. The folder is
searched (three levels deep) for the files each of those writes; every
recognised result becomes a section with its figures (PNG, under
``figures/``) and, for experiments, its verdict table. The HTML embeds the
images as base64, so it opens anywhere.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import figures as F
from .io import atomic_write

__all__ = ["Section", "build_report", "write_report", "markdown_to_html", "findings_table"]

_SKIP = {"runs", "logs", "configs", "figures", "schedules"}


@dataclass
class Section:
    """A report section: a title, markdown text, and ``(figure, file name, caption)`` entries."""

    title: str
    text: str = ""
    figures: list = field(default_factory=list)


def _json(path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None


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
    from .runs import load_runs

    return [load_runs(f)[0] for f in sorted((Path(d) / "logs").glob("*.csv"))]


def _es_section(d, title, unit):
    """E(S) panels and Bmin/Bopt vs target from ``fit.json`` + ``es_points.csv``."""
    fit = _json(d / "fit.json")
    pts = {}
    with open(d / "es_points.csv") as fh:
        for r in csv.DictReader(fh):
            pts.setdefault(float(r["target"]), []).append((float(r["S"]), float(r["E"])))
    panels = []
    for row in fit["rows"]:
        t = float(row["target"])
        SE = np.array(pts.get(t, []), float).reshape(-1, 2)
        laws = {name: F.law_from_params(name, p) for name, p in fit.get("laws", {}).get(str(t), {}).items()
                if name in ("three_phase", "hyperbolic")}
        panels.append(dict(target=t, S=SE[:, 0], E=SE[:, 1], laws=laws, bmin=row.get("bmin"), bopt=row.get("bopt")))
    col = lambda k: [r.get(k, math.nan) if r.get(k) is not None else math.nan for r in fit["rows"]]
    ci = lambda k: (col(f"{k}_lo"), col(f"{k}_hi")) if any(f"{k}_lo" in r for r in fit["rows"]) else None
    # the law-free estimators where they are identified at >= 2 targets, else the three-phase fit's
    best = lambda k, alt: alt if sum(alt in r for r in fit["rows"]) >= 2 else k
    kmin, kopt = best("bmin", "bmin_floor"), best("bopt", "bopt_envelope")
    source = f"Bmin from {'the loss floors' if kmin != 'bmin' else 'the three-phase fit'}, Bopt from " \
             f"{'the envelope' if kopt != 'bopt' else 'the three-phase fit'}"
    return [(F.es_panels([p for p in panels if len(p["S"])], unit, f"{title}: E(S) per target"), "es",
             "Data E vs steps S to reach each target: points from the runs, the fitted three-phase law "
             "(phases shaded: inverse red, quadratic yellow, linear green) and the hyperbola; Bmin and Bopt "
             "are the slopes of the lines through the origin."),
            (F.bmin_bopt(col("target"), col(kmin), col(kopt), ci(kmin), ci(kopt), unit,
                         f"{title}: Bmin and Bopt vs target"), "bmin-bopt",
             f"Bmin (smallest batch that reaches the target) and Bopt (data-optimal batch) per target loss, "
             f"with bootstrap intervals; {source}. Targets where a value is not identified are left out.")]


def _sweep(d, s):
    runs = _logs(d)
    fit = _json(d / "fit.json")
    figs = [(F.loss_curves([_run_curve(r, label=f"B = {r.batch_size:g}") for r in runs],
                           "Batch-size sweep at a constant LR: loss vs tokens", "tokens", fit.get("crossovers", [])),
             "loss", "Training loss (centred moving average) per batch size; crosses mark where a larger "
                     "batch overtakes a smaller one.")]
    figs += _es_section(d, "sweep", "tokens")
    if (d / "bopt_curve.json").exists():
        c = _json(d / "bopt_curve.json")
        figs.append((F.bopt_schedule(c["D"], c["B"], c["params"]), "bopt-curve",
                     "Bopt per target at the data Emin where it is optimal, and the power law fitted through them."))
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
    runs = _logs(d)
    curves = _curves_of(runs, "val_loss")
    for c in curves:
        c["style"] = "-" if c["label"].endswith("s0") else "--"
    figs = [(F.comparison(curves, "Dynamic vs fixed batch at equal tokens (validation loss)",
                          ylabel="validation loss (nats)"), "compare",
             "Held-out loss of the dynamic schedule and the fixed baselines; solid seed 0, dashed seed 1.")]
    sweep = d.parent / "sweep" / "bopt_curve.json"
    if sweep.exists():
        c, p = _json(sweep), s["plan"]
        figs.append((F.bopt_schedule(c["D"], c["B"], c["params"], (p["starts"], p["sizes"]),
                                     s["tier_config"]["budget"]), "schedule",
                     "The schedule used: the fitted Bopt(D) and the batch the dynamic schedule picks."))
    return figs


def _ablation(d, s):
    runs = _logs(d)
    marks, use, ylabel = [], "val_loss", "validation loss (nats)"
    if s["experiment"] == "seq-len":
        marks, use, ylabel = [(s["switch_tokens"], "batch doubles")], "loss", "training loss (nats, smoothed)"
    if s["experiment"] == "decay":
        marks = [(s["tier_config"]["budget"], "decay starts")]
    curves = _curves_of(runs, use)
    return [(F.comparison(curves, f"Ablation {s['experiment']}: the arms at equal tokens", ylabel=ylabel,
                          marks=marks), "compare", f"Ablation {s['experiment']}: each arm's loss curve.")]


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
    return [(fig, "curves", "Smoothed training loss of real runs (solid) and the calibrated NQM's prediction "
                            "(dashed), for the held-out and some calibration batch sizes.")]


def _simulate(d):
    meta = _json(d / "frontier.json")
    t = meta["targets"]
    pts = {}
    for p in meta["points"]:
        if p["S"] is not None and math.isfinite(p["S"]):
            pts.setdefault(p["target"], []).append((p["S"], p["E"]))
    panels = [dict(target=r["target"], S=[a for a, _ in pts.get(r["target"], [])],
                   E=[b for _, b in pts.get(r["target"], [])], bmin=r["bmin"], bopt=r["bopt"]) for r in t]
    panels = [p for p in panels if p["S"]][::max(1, len(panels) // 6)][:6]
    for p in panels:  # the paper's law fitted to the exact frontier, to show how well it describes it
        p["laws"] = {}
        try:
            from .fit import fit_es

            p["laws"]["three_phase"] = fit_es(p["S"], p["E"], "three_phase").law
        except (ValueError, RuntimeError):
            pass
    figs = [(F.es_panels(panels, "examples", "NQM: exact E(S) per target, with the three-phase law fitted"), "es",
             "Exact NQM frontier: data E vs steps S per target, the fitted three-phase law (phases shaded); "
             "Bmin and Bopt (exact) as lines through the origin."),
            (F.bmin_bopt([r["target"] for r in t], [r["bmin"] for r in t], [r["bopt"] for r in t], unit="examples",
                         title="NQM: Bmin and Bopt vs target"), "bmin-bopt",
             "Exact Bmin and Bopt of the NQM per target loss.")]
    if (d / "runs.csv").exists():
        from .runs import crossovers, load_runs

        runs = load_runs(d / "runs.csv")
        keep = runs[:: max(1, len(runs) // 10)]
        figs.insert(0, (F.loss_curves([dict(label=f"B = {r.batch_size:.3g}", D=r.tokens, loss=r.loss,
                                             batch=r.batch_size) for r in keep],
                                      "NQM: expected loss vs data per batch size", "examples",
                                      crossovers(keep), ylabel="expected loss (NQM units)"), "loss",
                        "NQM loss vs data for a range of batch sizes; crosses mark crossings."))
    return figs


def _simulate_schedule(d):
    data = _json(d / "schedule_eval.json")
    figs = []
    for r in data["results"]:
        b = r["budget"]
        if r.get("trajectories"):
            curves = [dict(label=k, D=v["D"], loss=v["loss"]) for k, v in r["trajectories"].items()]
            figs.append((F.comparison(curves, f"NQM: schedules at budget {b:.3g} examples",
                                      unit="examples", ylabel="expected loss (NQM units)"), f"compare-{b:.3g}",
                         "Expected loss of the best fixed batch, the paper's dynamic schedule and the best "
                         "8-piece schedule found."))
        c, dyn = r["curve"], r["dynamic"]
        segs = dyn["segments"]
        figs.append((F.bopt_schedule(c["D"], c["B"], c["params"], ([s["from"] for s in segs],
                                                                   [s["batch_size"] for s in segs]), b,
                                     "examples", f"NQM: Bopt(D) and the dynamic schedule (budget {b:.3g})"),
                     f"schedule-{b:.3g}", "The NQM's exact Bopt(D) points, the fitted curve and the schedule."))
    return figs


def _fit(d):
    return _es_section(d, "fit", "tokens")


def _sections_in(d: Path):
    out = []
    if (d / "summary.json").exists():
        s = _json(d / "summary.json")
        name = s.get("experiment")
        handler = {"sweep": _sweep, "schedule": _schedule, "predict": _predict}.get(name, _ablation)
        text = (d / "summary.md").read_text() if (d / "summary.md").exists() else ""
        out.append((f"validate {name} ({d})", _demote(text), handler(d, s)))
    elif (d / "fit.json").exists() and (d / "es_points.csv").exists():
        out.append((f"fit ({d})", "", _fit(d)))
    if (d / "frontier.json").exists():
        out.append((f"simulate ({d})", "", _simulate(d)))
    if (d / "schedule_eval.json").exists():
        out.append((f"simulate schedule ({d})", "", _simulate_schedule(d)))
    if (d / "schedule.json").exists() and (d / "exports.json").exists():
        out.append(_schedule_band(d))
    return out


def _schedule_band(d):
    """A ``dbs schedule`` folder: the measured Bopt band (opening past the measured range) and the schedule."""
    ex, sc = _json(d / "exports.json"), _json(d / "schedule.json")
    band, curve = ex.get("band"), ex.get("curve") or {}
    segs = sc.get("segments") or []
    steps = ([s["from"] for s in segs], [s["batch_size"] for s in segs])
    if not band:
        return (f"schedule ({d})", "No measured interval in the source (the band needs dbs fit's envelope).", [])
    text = (f"Measured up to D = {band['measured_to']:.4g} {sc.get('unit', 'tokens')}"
            + (f"; past it the schedule is extrapolated and the band opens to [{band['lo'][-1]:.4g}, "
               f"{band['hi'][-1]:.4g}] at the horizon." if band.get("beyond") else "."))
    fig = F.bopt_band(curve.get("D", []), curve.get("B", []), band, steps, sc.get("unit", "tokens"))
    return (f"schedule ({d})", text, [(fig, "bopt-band", "Envelope Bopt(D), its 90% band and the schedule.")])


def _demote(md):
    """Shift markdown headings down two levels so they nest under a section."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 2) + " ", md, flags=re.M)


def build_report(directory):
    """Sections for every result found in ``directory`` (three levels deep). Raises if none."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no such results folder: {str(root)!r}")
    dirs = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not (_SKIP & set(p.relative_to(root).parts))
                           and len(p.relative_to(root).parts) <= 3)
    order = ["sweep", "schedule", "lr-scaling", "seq-len", "weight-decay", "decay", "cosine", "predict"]
    rank = lambda p: (len(p.relative_to(root).parts) > 0, str(p.parent), order.index(p.name) if p.name in order
                      else len(order), p.name)
    dirs = sorted(dirs, key=rank)
    sections = []
    for d in dirs:
        for title, text, figs in _sections_in(d):
            title = title.replace(f"({root}/", "(").replace(f"({root})", "(.)")
            sections.append(Section(title, text, figs))
    if not sections:
        raise ValueError(f"{root}: no results found (expected outputs of dbs simulate, fit, validate or demo)")
    return sections


def findings_table(directory) -> str:
    """Markdown table of every experiment's claims and verdicts under ``directory`` ('' if none)."""
    root = Path(directory)
    rows = []
    for f in sorted(root.rglob("summary.json")):
        if _SKIP & set(f.relative_to(root).parts):
            continue
        s = _json(f)
        for c in s.get("claims", []):
            rows.append((s.get("experiment", f.parent.name), s.get("wall_seconds", math.nan), c))
    if not rows:
        return ""
    order = ["sweep", "schedule", "lr-scaling", "seq-len", "weight-decay", "decay", "cosine", "predict"]
    rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    lines = ["| experiment | claim | our measurement | verdict |", "|---|---|---|---|"]
    cell = lambda t: str(t).replace("|", "\u2223")  # a literal | would split the table cell
    lines += [f"| `{e}` ({w / 60:.0f} min) | {cell(c['claim'])} | {cell(c['measured'])} | **{c['verdict']}** |"
              for e, w, c in rows]
    return "\n".join(lines)


def write_report(directory, sections=None, intro=""):
    """Render figures to ``figures/`` and write ``report.md`` and ``report.html``; returns their paths."""
    root = Path(directory)
    sections = sections if sections is not None else build_report(root)
    table = findings_table(root)
    if table:
        intro = (intro + "\n\n" if intro else "") + "### Verdicts of the experiments\n\n" + table
    (root / "figures").mkdir(exist_ok=True)
    md = ["# dbs-theory report", "", intro, ""] if intro else ["# dbs-theory report", ""]
    pngs = {}
    for i, sec in enumerate(sections):
        md += [f"## {sec.title}", ""]
        if sec.text:
            md += [sec.text, ""]
        for fig, name, caption in sec.figures:
            fname = f"figures/{i:02d}-{_slug(sec.title)}-{name}.png"
            F.save(fig, root / fname)
            pngs[fname] = root / fname
            md += [f"![{caption}]({fname})", "", f"*{caption}*", ""]
    text = "\n".join(md) + "\n"
    with atomic_write(root / "report.md") as fh:
        fh.write(text)
    with atomic_write(root / "report.html") as fh:
        fh.write(markdown_to_html(text, {k: v.read_bytes() for k, v in pngs.items()}))
    return root / "report.md", root / "report.html"


def _slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40]


def markdown_to_html(md, images=None) -> str:
    """A small markdown subset to standalone HTML: headings, tables, code blocks, images (embedded)."""
    images = images or {}
    out, table, code = [], [], None

    def inline(t):
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        return re.sub(r"(?<!\*)\*([^*]+)\*(?!\*)", r"<i>\1</i>", t)

    def flush():
        if table:
            rows = [r for r in table if not re.match(r"^\|[-| :]+\|$", r)]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{inline(c)}</{'th' if i == 0 else 'td'}>"
                                 for c in row) + "</tr>" for i, row in enumerate(cells)) + "</table>")
            table.clear()

    for line in md.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif line.startswith("|"):
            table.append(line)
        else:
            flush()
            m = re.match(r"^(#{1,6}) (.*)", line)
            img = re.match(r"^!\[(.*)\]\((.*)\)$", line)
            if m:
                n = len(m.group(1))
                out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
            elif img:
                data = images.get(img.group(2))
                src = f"data:image/png;base64,{base64.b64encode(data).decode()}" if data else img.group(2)
                out.append(f'<img alt="{html.escape(img.group(1))}" src="{src}">')
            elif line.strip():
                out.append(f"<p>{inline(line)}</p>")
    flush()
    # Wide tables scroll inside their own box instead of running past the page's edge; a phone
    # gets the device width (viewport) and tighter cells.
    style = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;display:block;max-width:100%;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3}"
             "pre{background:#f7f7f7;padding:8px;overflow-x:auto}img{max-width:100%;border:1px solid #eee;"
             "margin:0.5em 0}@media (max-width:600px){body{margin:1em auto}td,th{padding:2px 4px;font-size:90%}}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'><title>dbs-theory report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
