"""Run the ``dbs`` command in this process, as the console script would run it in its own.

A subprocess per CLI case costs an interpreter start, the package's imports
and numba's compilation every time; the quick suite ran ~100 of them. Here
``main`` runs in-process with its output captured and its exit code
returned (argparse's ``SystemExit`` included), and what ``main`` changes for
the process (the warning printer) is put back. Tests where a process
boundary is the point (signals, locks, torchrun) keep a subprocess.
"""

import contextlib
import io
import os
import warnings
from dataclasses import dataclass

__all__ = ["Result", "dbs"]


@dataclass
class Result:
    """What a finished ``dbs`` command left: like :class:`subprocess.CompletedProcess`."""

    args: list
    returncode: int
    stdout: str
    stderr: str


def dbs(*args, cwd=None) -> Result:
    """``dbs ARGS`` in-process (``cwd``: the folder it runs in); ``Result(args, returncode, stdout, stderr)``."""
    from dbs_theory.cli import main

    argv = [str(a) for a in (args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args)]
    out, err = io.StringIO(), io.StringIO()
    shown, filters = warnings.showwarning, list(warnings.filters)
    try:
        with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse: a usage error (2) or --help (0)
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        warnings.showwarning = shown
        warnings.filters[:] = filters
    return Result(argv, int(rc), out.getvalue(), err.getvalue())
