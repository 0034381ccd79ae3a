"""Plain-text tables for the CLI (no dependency beyond the standard library)."""

from __future__ import annotations

import math

__all__ = ["format_table", "fmt"]


def fmt(value, digits=4):
    """A compact string for a number: ``inf``, integers as integers, else ``%.{digits}g``; a missing value
    (``None`` or NaN) is ``-`` (a table never shows ``nan`` to a user)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    v = float(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.{digits}g}"


def format_table(rows, columns, headers=None, digits=4):
    """Render ``rows`` (dicts) as an aligned text table of ``columns``."""
    headers = headers or columns
    cells = [[fmt(r.get(c), digits) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])
