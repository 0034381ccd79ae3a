"""Figures for reports: plain functions from data to a matplotlib ``Figure``.

No pyplot and no global backend: each function builds a
:class:`matplotlib.figure.Figure` directly, so it works headless (the PNG is
rendered by Agg on ``savefig``) and never touches a user's plotting state.
Data amounts are in the unit the caller names (tokens or examples); losses
are in nats.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
import matplotlib
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from dbs_theory.measure.curves import Crossover

__all__ = [
    "loss_curves",
    "es_panels",
    "bmin_bopt",
    "bopt_schedule",
    "bopt_band",
    "rule_schedules",
    "optimal_batches",
    "comparison",
    "dynamic_runs",
    "save",
]

_PHASE_COLORS = {"inverse": "#f4cccc", "quadratic": "#fff2cc", "linear": "#d9ead3"}


def _spans_decades(values, decades=1.5) -> bool:
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], float)
    return v.size > 1 and math.log10(v.max() / v.min()) >= decades


def _positive(D, L):
    """Drop points at D <= 0 (a log axis cannot show them, and clipping draws false flat lines)."""
    D, L = np.asarray(D, float), np.asarray(L, float)
    ok = D > 0
    return D[ok], L[ok]


def _compact(v, _pos=None):
    """``2e5``-style tick labels (short, so they never overlap)."""
    if v <= 0:
        return ""
    e = int(math.floor(math.log10(v) + 1e-9))
    m = v / 10**e
    return f"{m:.0f}e{e}" if abs(e) > 3 else f"{v:g}"


def _quiet_minor(ax):
    """Log axes: labelled decades, and minor labels at 2 and 5 only when a panel spans < 2 decades."""
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        axis.set_major_formatter(FuncFormatter(_compact))
        axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        narrow = lo > 0 and math.log10(hi / lo) < 2
        axis.set_minor_formatter(FuncFormatter(_compact) if narrow else NullFormatter())


def _legend(ax, **kw):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, framealpha=0.85, **kw)


def _finish(fig, ax, xlabel, ylabel, title):
    """Labels, title, grid, legend and tick labels of a one-panel figure; returns the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    _quiet_minor(ax)
    return fig


def save(fig: Figure, path) -> str:
    """Write ``fig`` as a PNG (Agg) at 120 dpi; returns the path."""
    fig.savefig(path, dpi=120)
    return str(path)


def loss_curves(curves, title, unit="tokens", crossovers=(), ylabel="training loss (nats, smoothed)", zoom=30.0):
    """Loss vs data, one line per run coloured by batch size, crossings marked.

    Parameters
    ----------
    curves : list of dict
        ``label``, ``D`` (data, ``unit``), ``loss``, optional ``batch`` (``unit`` per step)
        and ``style`` (a matplotlib line style).
    crossovers : list of Crossover (or its dict, as ``fit.json`` stores it)
        Each crossing of two curves.
    zoom : float or None
        Add a second panel over the last ``1/zoom`` of the data range (log), where
        the curves bunch together and cross; ``None`` for one panel.
    """
    allD0 = np.concatenate([np.asarray(c["D"], float) for c in curves]) if curves else np.array([1.0])
    if zoom and not _spans_decades(allD0, math.log10(zoom) + 0.5):
        zoom = None  # the whole run already is the zoom
    fig = Figure(figsize=(12.5 if zoom else 7.5, 4.8), layout="constrained")
    axes = fig.subplots(1, 2) if zoom else [fig.add_subplot()]
    fig.suptitle(title)
    batches = [c.get("batch") for c in curves]
    logb = [math.log(b) for b in batches if b]
    cmap = matplotlib.colormaps["viridis"]
    allD = np.concatenate([np.asarray(c["D"], float) for c in curves]) if curves else np.array([1.0])
    allL = np.concatenate([np.asarray(c["loss"], float) for c in curves]) if curves else np.array([1.0])
    Dmax = float(np.nanmax(allD))
    for k, ax in enumerate(axes):
        for c in curves:
            color = None
            if c.get("batch") and len(logb) > 1:
                color = cmap((math.log(c["batch"]) - min(logb)) / (max(logb) - min(logb) + 1e-12) * 0.9)
            ax.plot(*_positive(c["D"], c["loss"]), lw=1.3, color=color, ls=c.get("style", "-"), label=c["label"])
        if crossovers:
            cs = [c if isinstance(c, Crossover) else Crossover.from_dict(c) for c in crossovers]
            ax.scatter(
                [c.data for c in cs],
                [c.loss for c in cs],
                marker="x",
                color="crimson",
                s=30,
                zorder=5,
                label=f"crossings ({len(crossovers)})",
            )
        if _spans_decades(allD):
            ax.set_xscale("log")
        if _spans_decades(allL, 1.5):
            ax.set_yscale("log")
        if k == 1:
            lo = Dmax / zoom
            sel = allD >= lo
            ylo, yhi = np.nanmin(allL[sel]), np.nanmax(allL[sel])
            ax.set_xlim(lo, Dmax * 1.05)
            if ax.get_yscale() == "log":
                ax.set_ylim(ylo / 1.05, yhi * 1.05)
            else:
                ax.set_ylim(ylo - 0.03 * (yhi - ylo), yhi + 0.03 * (yhi - ylo))
            ax.set_title(f"zoom: the last {math.log10(zoom):.1f} decades of data", fontsize=10)
        else:
            ax.set_title("whole run", fontsize=10)
            _legend(ax, ncol=2 if len(curves) > 8 else 1)
        ax.set_xlabel(f"data consumed ({unit})")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        _quiet_minor(ax)
    return fig


def es_panels(panels, unit="tokens", title="E(S): data vs steps to reach each target"):
    """One panel per target: the (S, E) points, fitted laws, phases shaded, Bmin and Bopt lines.

    Parameters
    ----------
    panels : list of dict
        ``target``, ``S`` (steps), ``E`` (``unit``), optional ``laws``
        (``{name: law}``), ``bmin`` and ``bopt`` (``unit`` per step).
    """
    n = max(1, min(len(panels), 6))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    fig.suptitle(title)
    for i, p in enumerate(panels[:6]):
        ax = fig.add_subplot(rows, cols, i + 1)
        S, E = np.asarray(p["S"], float), np.asarray(p["E"], float)
        ax.scatter(S, E, s=18, color="k", zorder=5, label="runs")
        if S.size:
            grid = np.geomspace(S.min() / 1.5, S.max() * 1.5, 400)
            law = (p.get("laws") or {}).get("three_phase")
            if law is not None:
                g = grid[grid > law.smin]
                ax.plot(g, law(g), color="C0", lw=1.6, label="three-phase fit")
                lo, hi = grid[0], grid[-1]
                ax.axvspan(max(law.smin, lo), law.s1, color=_PHASE_COLORS["inverse"], alpha=0.6, lw=0)
                ax.axvspan(law.s1, law.s2, color=_PHASE_COLORS["quadratic"], alpha=0.6, lw=0)
                ax.axvspan(law.s2, hi, color=_PHASE_COLORS["linear"], alpha=0.6, lw=0)
            hyp = (p.get("laws") or {}).get("hyperbolic")
            if hyp is not None:
                g = grid[grid > hyp.smin * 1.001]
                ax.plot(g, hyp(g), color="C3", ls="--", lw=1.2, label="hyperbolic fit")
            for key, style in (("bmin", ":"), ("bopt", "-.")):
                b = p.get(key)
                if b and math.isfinite(b):
                    ax.plot(
                        grid,
                        b * grid,
                        color="C2" if key == "bmin" else "C1",
                        ls=style,
                        lw=1.2,
                        label=f"E = {'Bmin' if key == 'bmin' else 'Bopt'}·S ({b:.3g})",
                    )
            ax.set_xlim(grid[0], grid[-1])
            ax.set_ylim(E.min() / 1.6, E.max() * 1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps S (optimizer steps)")
        ax.set_ylabel(f"data E ({unit})")
        ax.set_title(f"L* = {p['target']:.4g}", fontsize=10)
        _quiet_minor(ax)
        ax.grid(alpha=0.3, which="both")
        if i == 0:
            _legend(ax, loc="upper right")
    return fig


def bmin_bopt(targets, bmin, bopt, bmin_ci=None, bopt_ci=None, unit="tokens", title="Bmin and Bopt vs target loss"):
    """``Bmin`` and ``Bopt`` against the target loss (falling to the right), with intervals."""
    fig = Figure(figsize=(6.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    t = np.asarray(targets, float)
    for vals, ci, name, color in ((bmin, bmin_ci, "Bmin", "C2"), (bopt, bopt_ci, "Bopt", "C1")):
        v = np.asarray(vals, float)
        ok = np.isfinite(v)
        if not ok.any():
            continue
        if ci is not None:
            lo, hi = (np.asarray(x, float) for x in ci)
            yerr = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
            ax.errorbar(
                t[ok],
                v[ok],
                yerr=np.clip(yerr[:, ok], 0, None),
                marker="o",
                color=color,
                capsize=3,
                label=f"{name} (bootstrap interval)",
            )
        else:
            ax.plot(t[ok], v[ok], marker="o", color=color, label=name)
    if _spans_decades(t, 1.5):
        ax.set_xscale("log")
    ax.invert_xaxis()
    allv = np.concatenate([np.asarray(bmin, float), np.asarray(bopt, float)])
    if _spans_decades(allv, 0.5):
        ax.set_yscale("log")
    return _finish(
        fig, ax, "target loss L* (nats; training proceeds to the right)", f"batch size ({unit} per step)", title
    )


def bopt_schedule(
    D, B, curve=None, schedule=None, horizon=None, unit="tokens", title="Bopt(D) and the dynamic schedule built from it"
):
    """Per-target optima ``(Emin, Bopt)``, the fitted curve, and the schedule as a step line.

    ``curve``: a :class:`~dbs_theory.measure.bopt_curve.BoptCurve` (drawn over the whole axis, so it must allow
    extrapolation); ``schedule``: ``(starts, sizes)``.
    """
    fig = Figure(figsize=(6.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    D, B = np.asarray(D, float), np.asarray(B, float)
    ok = np.isfinite(D) & np.isfinite(B) & (D > 0) & (B > 0)
    ax.scatter(D[ok], B[ok], color="k", zorder=5, label="(Emin, Bopt) per target")
    hi = horizon or (D[ok].max() * 2 if ok.any() else 1.0)
    lo = min(D[ok].min() / 2 if ok.any() else hi / 100, hi / 100)
    if schedule is not None:
        starts, sizes = list(schedule[0]), list(schedule[1])
        lo = min(lo, starts[1] / 2) if len(starts) > 1 else lo
        xs = [max(s, lo) for s in starts] + [hi]
        ax.step(xs, sizes + sizes[-1:], where="post", color="C1", lw=2, label="dynamic schedule")
    if curve is not None:
        g = np.geomspace(lo, hi, 200)
        p = curve.params
        label = f"fit Bopt = {p['k']:.3g} D^{p['alpha']:.2f}" if curve.form == "power" else "fitted Bopt(D)"
        ax.plot(g, curve(g), color="C0", ls="--", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, f"data consumed D ({unit})", f"batch size ({unit} per step)", title)


def bopt_band(D, B, band, schedule=None, unit="tokens", title="Measured Bopt(D), its 90% band, and the schedule"):
    """The envelope's ``(D, Bopt)`` points, the band from :func:`dbs_theory.measure.bopt_curve.bopt_band`
    (shaded darker where measured, lighter where extrapolated), and the schedule as a step line."""
    fig = Figure(figsize=(6.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    g, lo, hi = (np.asarray(band[k], float) for k in ("D", "lo", "hi"))
    inside = g <= band["measured_to"] * (1 + 1e-9)
    ax.fill_between(g, lo, hi, where=inside, color="C0", alpha=0.3, lw=0, label="90% band (measured)")
    if (~inside).any():
        ax.fill_between(
            g,
            lo,
            hi,
            where=g >= band["measured_to"],
            color="C0",
            alpha=0.12,
            lw=0,
            label="band past the measured range",
        )
        ax.axvline(band["measured_to"], color="0.4", ls=":", lw=1)
    ax.scatter(D, B, color="k", zorder=5, s=14, label="envelope Bopt")
    if schedule is not None:
        starts, sizes = list(schedule[0]), list(schedule[1])
        xs = [max(s, g[0]) for s in starts] + [g[-1]]
        ax.step(xs, sizes + sizes[-1:], where="post", color="C1", lw=2, label="schedule")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, f"data consumed D ({unit})", f"batch size ({unit} per step)", title)


def _steps(ax, starts, sizes, lo, hi, **kw):
    """A batch schedule ``(starts, sizes)`` as a step line from ``lo`` to ``hi`` (a start at 0 is drawn at lo)."""
    starts, sizes = list(starts), list(sizes)
    xs = [max(x, lo) for x in starts] + [hi]
    ax.step(xs, sizes + sizes[-1:], where="post", **kw)


def rule_schedules(rules, best, horizon, unit="tokens", title="The batch each rule runs, and the best fixed batch"):
    """Each rule's batch schedule ``(name, (starts, sizes))`` as a step line over ``[0, horizon]`` (log batch,
    linear data, as a run sees it), with the sweep's best fixed batch ``best`` dashed."""
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, sched) in enumerate(rules):
        _steps(ax, *sched, 0.0, horizon, color=f"C{k + 1}", lw=1.8, label=name)
    ax.axhline(best, color="k", ls="--", lw=1.2, label=f"best fixed ({_compact(best)})")
    ax.set_yscale("log")
    return _finish(fig, ax, f"data consumed D ({unit})", f"batch size ({unit} per step)", title)


def optimal_batches(
    optimal,
    along,
    bopt=None,
    rules=(),
    horizon=None,
    unit="examples",
    title="The optimal batch schedule, Bopt(D), Bmin(L(D)), B_noise(D) and the rules",
):
    """The loss-optimal batch schedule against the data, log-log, with the batches it is compared with.

    ``optimal``: ``(starts, sizes)``; ``along``: dict of arrays ``D``, ``bmin``, ``b_noise`` (along the
    optimum: ``Bmin`` of its current loss and McCandlish's noise scale of its state); ``bopt``: dict with
    the envelope's ``(Emin, Bopt)`` points ``D``, ``B`` and the fitted ``curve_D``, ``curve_B`` (or None);
    ``rules``: ``(name, (starts, sizes))`` drawn as thin step lines. Data and batches in ``unit``.
    """
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    D = np.asarray(along["D"], float)
    hi = horizon or float(D.max())
    lo = min(float(D[D > 0].min()), hi / 1e3)
    colors = ["C1", "C4", "C5", "C6", "C7", "C8", "C9"]  # C0, C2, C3: the Bopt, Bmin and B_noise curves
    for k, (name, sched) in enumerate(rules):
        _steps(
            ax,
            *sched,
            lo,
            hi,
            color=colors[k % len(colors)],
            lw=1.0,
            alpha=0.8,
            ls="-" if k < len(colors) else "--",
            label=name,
        )
    for key, name, style in (
        ("bmin", "Bmin(L(D)) along the optimum", ":"),
        ("b_noise", "B_noise(D) along the optimum", "-."),
    ):
        v = np.asarray([np.nan if x is None else x for x in along[key]], float)
        ok = np.isfinite(v) & (v > 0) & (D > 0)
        ax.plot(D[ok], v[ok], color="C2" if key == "bmin" else "C3", ls=style, lw=1.6, label=name)
    if bopt and bopt.get("curve_D"):
        ax.plot(bopt["curve_D"], bopt["curve_B"], color="C0", ls="--", lw=1.4, label="Bopt(D) (envelope fit)")
        ax.scatter(bopt["D"], bopt["B"], color="C0", s=16, zorder=5, label="(Emin, Bopt) per target")
    _steps(ax, *optimal, lo, hi, color="k", lw=2.4, label="optimal schedule")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    return _finish(fig, ax, f"data consumed D ({unit})", f"batch size ({unit} per step)", title)


def dynamic_runs(runs, unit="tokens", title="Dynamic-batch runs (left out of the fixed-batch estimates)"):
    """Runs whose batch changes: loss vs data above, the batch they ran at (a step line) below, one colour
    per run and a dotted line at each batch change. ``runs``: dicts with ``name``, ``tokens``, ``loss``,
    ``batch`` (fit.json's ``dynamic_runs``)."""
    fig = Figure(figsize=(7.5, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    fig.suptitle(title)
    for k, r in enumerate(runs):
        D, L, B = (np.asarray(r[key], float) for key in ("tokens", "loss", "batch"))
        top.plot(*_positive(D, L), lw=1.2, color=f"C{k % 10}", label=r["name"])
        bottom.step(D, B, where="post", lw=1.8, color=f"C{k % 10}", label=r["name"])
        for x in D[1:][np.diff(B) != 0]:
            top.axvline(x, color=f"C{k % 10}", ls=":", lw=0.8, alpha=0.6)
    allD = np.concatenate([np.asarray(r["tokens"], float) for r in runs]) if runs else np.array([1.0])
    if _spans_decades(allD):
        top.set_xscale("log")
    bottom.set_yscale("log")
    top.set_ylabel("training loss (nats)")
    top.grid(alpha=0.3, which="both")
    _legend(top)
    _quiet_minor(top)
    return _finish(fig, bottom, f"data consumed D ({unit})", f"batch size ({unit} per step)", "")


def comparison(curves, title, unit="tokens", ylabel="loss (nats)", zoom_from=0.5, marks=(), ylog=True):
    """Two panels: whole loss curves, and the last part zoomed (where schedules differ by little).

    ``curves``: ``label``, ``D``, ``loss`` (and optional ``style``); ``marks``:
    ``(D, text)`` vertical lines (e.g. a batch switch or the start of a decay).
    ``ylog``: a log loss axis where the values span a decade (False for signed values, e.g. differences).
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(1, 2)
    Dmax = max(max(np.asarray(c["D"], float)) for c in curves) if curves else 1.0
    for k, ax in enumerate(axes):
        lo_y, hi_y = np.inf, -np.inf
        for i, c in enumerate(curves):
            D, L = _positive(c["D"], c["loss"])
            sel = D >= (zoom_from * Dmax if k else 0)
            ax.plot(D[sel], L[sel], lw=1.4, color=f"C{i}", ls=c.get("style", "-"), label=c["label"])
            if k and sel.any():
                lo_y, hi_y = min(lo_y, np.nanmin(L[sel])), max(hi_y, np.nanmax(L[sel]))
        for x, text in marks:
            ax.axvline(x, color="gray", ls=":", lw=1)
            ax.annotate(
                text,
                (x, 0.97),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                ha="right",
                va="top",
                rotation=90,
                color="gray",
            )
        if k == 0:
            allD = np.concatenate([np.asarray(c["D"], float) for c in curves])
            if _spans_decades(allD[allD > 0]):
                ax.set_xscale("log")
            if ylog and _spans_decades(np.concatenate([np.asarray(c["loss"], float) for c in curves]), 1.0):
                ax.set_yscale("log")
            ax.set_title("whole run", fontsize=10)
        else:
            if np.isfinite(lo_y):
                pad = 0.05 * (hi_y - lo_y + 1e-9)
                ax.set_ylim(lo_y - pad, hi_y + pad)
            ax.set_title(f"last {1 - zoom_from:.0%} of the data (zoom)", fontsize=10)
        ax.set_xlabel(f"data consumed ({unit})")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        _legend(ax)
        _quiet_minor(ax)
    return fig
