"""The experiments that check the paper's claims on real transformer runs (``dbs validate NAME``).

Each module has ``run(tier, root, jobs=None, progress=True)`` that trains
what it needs (cached under ``<root>/runs/``), writes ``<root>/<name>/``
with configs, logs, ``summary.json`` and ``summary.md``, and returns the
summary dict. :data:`REQUIRES` declares what each reads; :func:`ensure`
runs a missing prerequisite first (``schedule`` needs ``sweep``, ``growth`` the ``schedule``, the
ablations the ``schedule`` experiment's saved plan).
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = ["EXPERIMENTS", "REQUIRES", "get", "ensure"]

#: name -> module (relative to this package), in the order ``all`` runs them.
EXPERIMENTS = {
    "sweep": "sweep",
    "schedule": "schedule",
    "growth": "growth",
    "lr-scaling": "lr_scaling",
    "seq-len": "seq_len",
    "weight-decay": "weight_decay",
    "decay": "decay",
    "cosine": "cosine",
    "predict": "predict",
    "power": "power",
}


def get(name):
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} or all")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


#: name -> experiments whose results it reads.
REQUIRES = {
    "schedule": ("sweep",),
    "predict": ("sweep",),
    "growth": ("schedule",),
    **{name: ("schedule",) for name in ("lr-scaling", "seq-len", "weight-decay", "decay", "cosine")},
}


def ensure(name, tier, root, jobs=None, progress=True) -> Path:
    """Run experiment ``name`` (and, first, what it requires) unless its summary exists; its folder."""
    for dep in REQUIRES.get(name, ()):
        ensure(dep, tier, root, jobs, progress)
    folder = Path(root) / name
    if not (folder / "summary.json").exists():
        get(name).run(tier, root, jobs, progress)
    return folder
