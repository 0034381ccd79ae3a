"""Atomic file writes: a file appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

__all__ = [
    "atomic_write",
    "write_csv",
    "ensure_writable_dir",
    "check_writable",
    "json_default",
    "folder_lock",
    "folder_holder",
    "FolderLocked",
]


def write_csv(path, rows):
    """Write ``rows`` (dicts with the same keys, the first row's order) as CSV, atomically."""
    import csv

    with atomic_write(path) as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def ensure_writable_dir(directory) -> Path:
    """Create ``directory`` if needed and check it is writable; ``OSError`` otherwise."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output directory {str(path)!r}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise OSError(f"output directory {str(path)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_write(path, mode="w", newline=""):
    """Open a temporary file beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kwargs = {} if "b" in mode else dict(encoding="utf-8", newline=newline)
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(directory) -> Path:
    """Check, without creating anything, that ``directory`` exists writable or can be created."""
    path = Path(directory).absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"lies under the file {str(probe)!r}"
        raise OSError(f"output directory {str(directory)!r} {where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OSError(f"output directory {str(directory)!r} is not writable")
    return Path(directory)


def json_default(x):
    """``json.dump(default=...)`` for numpy scalars and arrays and dataclasses (as dicts)."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.asdict(x)
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot serialise {type(x).__name__}")


class FolderLocked(OSError):
    """Another process holds the folder's lock (an ``OSError``: one line, exit code 2)."""


def folder_holder(directory, name=".lock"):
    """Who holds :func:`folder_lock` on ``directory`` now (its pid line), or ``None`` (free, or no folder);
    takes nothing: a lock it gets is released at once."""
    import fcntl

    path = Path(directory) / name
    if not path.is_file():
        return None
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            return fh.read().strip() or "another process"
        return None


@contextlib.contextmanager
def folder_lock(directory, name=".lock"):
    """Hold an exclusive lock on ``directory`` (a ``.lock`` file in it) for the ``with`` block.

    A second process that asks for it while it is held gets :class:`FolderLocked`
    at once, naming the holder (pid, host, start time). The lock is an
    ``fcntl.flock``: the operating system drops it when the holder dies, so a
    killed run never leaves a stale lock behind.
    """
    import fcntl

    path = Path(directory) / name
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise FolderLocked(f"{str(directory)!r} is in use by {holder}; wait for it or use another folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield path
    finally:
        fh.close()  # closing the file releases the lock
