"""Checks every report figure must pass: labelled axes with units, log scales, readable legends."""

import math

import numpy as np


def _data(ax, axis):
    vals = []
    for line in ax.get_lines():
        d = np.asarray(line.get_xdata() if axis == "x" else line.get_ydata(), float)
        if d.size > 2:  # reference lines (axvline: 2 points) say nothing about the data's span
            vals.append(d)
    for coll in ax.collections:
        off = np.asarray(coll.get_offsets(), float)
        if off.ndim == 2 and off.shape[0] > 1:
            vals.append(off[:, 0 if axis == "x" else 1])
    v = np.concatenate(vals) if vals else np.array([])
    return v[np.isfinite(v)]


def decades(v):
    v = v[v > 0]
    return math.log10(v.max() / v.min()) if v.size > 1 else 0.0


def check_figure(fig, what=""):
    """Raise AssertionError naming the problem; returns the number of axes checked."""
    title = (fig._suptitle.get_text() if fig._suptitle else "") or " ".join(a.get_title() for a in fig.axes)
    assert title.strip(), f"{what}: no title"
    for ax in fig.axes:
        for axis in ("x", "y"):
            label = ax.get_xlabel() if axis == "x" else ax.get_ylabel()
            assert label.strip(), f"{what}: unlabelled {axis} axis"
            assert "(" in label and ")" in label, f"{what}: {axis} label {label!r} gives no unit"
            scale = ax.get_xscale() if axis == "x" else ax.get_yscale()
            d = _data(ax, axis)
            zoom = "zoom" in ax.get_title()
            if d.size and decades(d) >= 2 and not zoom:
                assert scale == "log", f"{what}: {axis} data spans {decades(d):.1f} decades on a {scale} axis"
        leg = ax.get_legend()
        labelled = [h for h in ax.get_legend_handles_labels()[1] if not h.startswith("_")]
        if leg is not None:
            assert all(t.get_fontsize() >= 7 for t in leg.get_texts()), f"{what}: legend text too small"
    assert any(a.get_legend() is not None for a in fig.axes) or not labelled, f"{what}: labelled lines, no legend"
    return len(fig.axes)
