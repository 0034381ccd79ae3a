"""The NQM frontier as the presentation layer reads it: per-target (S, E) points and the paper's law fitted to them.

Both the report's NQM figures and the demo's verdict table fit the
three-phase law to the exact frontier that ``dbs simulate`` wrote
(``frontier.json``); this is the one place that does it.
"""

from __future__ import annotations

import math

from dbs_theory.measure.fit import fit_es

__all__ = ["frontier_points", "three_phase_fits"]


def frontier_points(meta: dict) -> dict:
    """``{target: [(S, E), ...]}`` of the reached points in a ``frontier.json`` record."""
    pts = {}
    for p in meta["points"]:
        if p["S"] is not None and math.isfinite(p["S"]):
            pts.setdefault(p["target"], []).append((p["S"], p["E"]))
    return pts


def three_phase_fits(meta: dict, targets=None, min_points: int = 3) -> dict:
    """``{target: FitResult}`` of the three-phase law at each target with at least ``min_points`` points
    (all targets unless ``targets`` is given); a target where the fit fails is left out."""
    out = {}
    for t, pts in frontier_points(meta).items():
        if (targets is not None and t not in targets) or len(pts) < min_points:
            continue
        try:
            out[t] = fit_es([s for s, _ in pts], [e for _, e in pts], "three_phase")
        except (ValueError, RuntimeError):
            pass
    return out
