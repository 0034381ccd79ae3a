"""Machine description printed by every benchmark."""

import os
import platform

__all__ = ["describe"]


def describe() -> str:
    """One line: CPU model, cores, Python, numpy and numba versions."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import numba

        nb = numba.__version__
    except ImportError:
        nb = "absent"
    return f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; numpy {np.__version__}; numba {nb}"
