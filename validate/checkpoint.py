"""Checkpoints that load without executing code and refuse silent corruption.

A checkpoint is a ``torch.save`` file of plain data only -- tensors, numbers,
strings, lists, tuples and dicts -- so it loads with
``torch.load(..., weights_only=True)``, which refuses any pickled object that
would run code. It holds::

    {"format": "dbs-theory-ckpt/2", "sha256": <hex>, "payload": {
        "model": state_dict, "opt": state_dict, "step": int, "tokens": float,
        "config": {TrainConfig fields}, "rng": {"torch", "numpy", "python"},
        "schedule_sha256": str or None}}

``sha256`` is a digest of every tensor's bytes (with dtype and shape) and
every other value of the payload, taken in a fixed order; a file whose
payload does not match it (flipped bits, a half-copied file) is refused.
Any file that is not such a checkpoint -- an old-format or foreign pickle, a
truncated zip -- is refused with one line, and nothing in it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "digest", "rng_state", "set_rng_state"]

FORMAT = "dbs-theory-ckpt/2"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: foreign, corrupted, or written by another config."""


def digest(obj) -> str:
    """SHA-256 of a nested payload: tensors by dtype, shape and bytes; other leaves by ``repr``."""
    h = hashlib.sha256()

    def walk(path, x):
        if isinstance(x, dict):
            for k in sorted(x, key=repr):
                walk(f"{path}/{k!r}", x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"{path}:{type(x).__name__}[{len(x)}]".encode())
            for i, v in enumerate(x):
                walk(f"{path}/{i}", v)
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"{path}:{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        else:
            h.update(f"{path}={x!r}".encode())

    walk("", obj)
    return h.hexdigest()


def rng_state() -> dict:
    """The torch, numpy and Python RNG states as plain data (tensors, ints, floats, tuples)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            key=torch.from_numpy(key.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss), gauss=float(gauss)
        ),
        python=random.getstate(),
    )


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: the old file stays intact unless the new one is whole.

    A failed write (disk full, file-size limit) removes its temporary file and
    raises ``OSError`` with one line naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(dict(format=FORMAT, sha256=digest(payload), payload=payload), tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch wraps a failed write in RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise OSError(f"cannot write checkpoint {str(path)!r}: {reason}; the previous checkpoint is kept") from None
    except BaseException:  # Ctrl-C in the middle of a write: no temporary file is left
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load_checkpoint(path) -> dict:
    """The payload of a checkpoint written by :func:`save_checkpoint`.

    Loads with ``weights_only=True`` (nothing in the file can execute) and
    checks the digest. Raises :class:`CheckpointError` (a ``ValueError``)
    naming the file when it is missing, foreign, old-format or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(
            f"refusing checkpoint {str(path)!r}: not a checkpoint file (truncated, corrupted or foreign)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we refuse anyway
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many kinds (Unpickling, zip, runtime)
        kind = (
            "not a dbs-theory checkpoint (a foreign or unsafe pickle; nothing in it was run)"
            if "weights_only" in str(exc)
            else f"unreadable or corrupted ({exc.__class__.__name__})"
        )
        raise CheckpointError(f"refusing checkpoint {str(path)!r}: {kind}") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or not isinstance(ck.get("payload"), dict):
        raise CheckpointError(
            f"refusing checkpoint {str(path)!r}: not a {FORMAT} checkpoint (foreign or written by an older dbs-theory)"
        )
    if digest(ck["payload"]) != ck.get("sha256"):
        raise CheckpointError(
            f"refusing checkpoint {str(path)!r}: corrupted (its contents do not match the stored checksum)"
        )
    return ck["payload"]
