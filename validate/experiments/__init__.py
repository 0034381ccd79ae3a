"""The experiments that check the paper's claims on real transformer runs (``dbs validate NAME``).

Each module has ``run(tier, root, jobs=None, progress=True)`` that trains
what it needs (cached under ``<root>/runs/``), writes ``<root>/<name>/``
with configs, logs, ``summary.json`` and ``summary.md``, and returns the
summary dict. ``schedule`` and the ablations read the ``sweep`` result, so
they run it first if it is missing.
"""
from __future__ import annotations

import importlib

__all__ = ["EXPERIMENTS", "get"]

#: name -> module (relative to this package), in the order ``all`` runs them.
EXPERIMENTS = {
    "sweep": "sweep",
    "schedule": "schedule",
    "lr-scaling": "lr_scaling",
    "seq-len": "seq_len",
    "weight-decay": "weight_decay",
    "decay": "decay",
    "cosine": "cosine",
    "predict": "predict",
}


def get(name):
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} or all")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")
