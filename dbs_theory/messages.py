"""Numbers in messages people read: ``0.5``, not ``array(0.5)`` or ``np.float64(0.5)``."""

from __future__ import annotations

__all__ = ["num"]


def num(x) -> str:
    """``x`` as a short number (``%g``) when it is one (Python, numpy scalar or 0-d array), else ``repr``.

    >>> import numpy as np
    >>> num(np.float64(0.25)), num(np.array(3.0)), num("abc")
    ('0.25', '3', "'abc'")
    """
    try:
        return f"{float(x):g}"
    except (TypeError, ValueError):
        return repr(x)
