"""W&B panel exports (``Step`` and ``<run> - <metric>`` columns): the ``wandb`` reader (see the package
docstring)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from . import reader
from .common import LOSS_TAGS, log_part

__all__ = ["read_wandb"]


def _holds_wandb(path: Path) -> bool:
    """A CSV whose header has W&B's ``Step`` and ``<run> - <metric>`` columns."""
    if not path.is_file() or path.suffix.lower() != ".csv":  # a FIFO is never opened (it could block forever)
        return False
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            head = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return "Step" in head and any(" - " in h for h in head)


def _wandb_rows(path: Path):
    """``(header, rows, lines)``: the export's cells as text and the line each row starts on."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows, lines = [], []
            for r in reader:
                if any(c.strip() for c in r):
                    rows.append(r + [""] * (len(header or []) - len(r)))
                    lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    if not header or "Step" not in header:
        raise ValueError(f"{path}: not a W&B export (no 'Step' column)")
    if not rows:
        raise ValueError(f"{path}: the W&B export has no rows")
    return header, rows, lines


def _wandb_cell(path, line, j, header, text) -> float:
    """One cell as a number, or one line naming the file, line and column (counted from 1)."""
    if not text.strip():
        raise ValueError(f"{path}:{line}: column {j + 1} ({header[j]!r}) is empty")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: column {j + 1} ({header[j]!r}) has a non-numeric value {text!r}") from None


def _wandb_names(path, header, cols) -> dict:
    """``{column: run name}``: the display name, or ``<name> (column K)`` where two columns share it."""
    by: dict = {}
    for j in cols:
        by.setdefault(header[j], []).append(j)
    names = {}
    for head, js in by.items():
        display = head.rsplit(" - ", 1)[0]
        names.update({j: display if len(js) == 1 else f"{display} (column {j + 1})" for j in js})
        if len(js) > 1:
            warnings.warn(
                f"{path}: {head!r} heads columns {' and '.join(str(j + 1) for j in js)}: two runs of one "
                f"display name, kept apart as {' and '.join(repr(names[j]) for j in js)} (give batch "
                f"sizes by these names, or by {display!r} for all)",
                stacklevel=4,
            )
    return names


def _wandb_loss_columns(path, header, loss_tag) -> list:
    """The loss column of each run: ``loss_tag``, else the first of :data:`LOSS_TAGS` the run logs (runs of one
    export may log under different names). A run with none is refused, naming it and what it logs."""
    cols = [j for j, h in enumerate(header) if " - " in h and not h.endswith(("__MIN", "__MAX"))]
    by_run: dict = {}
    for j in cols:
        run, metric = header[j].rsplit(" - ", 1)
        by_run.setdefault(run, {}).setdefault(metric, []).append(j)
    chosen, tags = [], set()
    for run, metrics in by_run.items():
        tag = (
            loss_tag
            if loss_tag in metrics
            else None
            if loss_tag
            else next((t for t in LOSS_TAGS if t in metrics), None)
        )
        if tag is None:
            want = f"metric {loss_tag!r}" if loss_tag else f"loss column ({', '.join(LOSS_TAGS)})"
            raise ValueError(
                f"loss_tag: {path}: run {run!r} has no {want} (name the metric every run logs); "
                f"metrics present: {', '.join(sorted(metrics))}"
            )
        chosen += metrics[tag]
        tags.add(tag)
    if not chosen:
        raise ValueError(f"{path}: no '<run> - <metric>' columns")
    if len(tags) > 1:
        warnings.warn(
            f"loss_tag: {path}: runs log their loss under different names ({', '.join(sorted(tags))}); each "
            f"run's is read (name one for all)",
            stacklevel=4,
        )
    return sorted(chosen)


@reader("wandb", _holds_wandb, ("batch_sizes", "loss_tag"))
def read_wandb(path, batch_sizes=None, loss_tag=None) -> list:
    """Runs of a W&B panel export (module docstring) as load_runs parts: one per column, never per name."""
    path, batch_sizes = Path(path), batch_sizes or {}
    header, rows, lines = _wandb_rows(path)
    cols = _wandb_loss_columns(path, header, loss_tag)
    names, si = _wandb_names(path, header, cols), header.index("Step")
    steps = [_wandb_cell(path, line, si, header, r[si]) for r, line in zip(rows, lines)]
    parts = []
    for j in cols:
        name = names[j]
        batch = batch_sizes.get(name, batch_sizes.get(header[j].rsplit(" - ", 1)[0]))
        if batch is None:
            raise ValueError(
                f"batch_sizes: {path}: no batch size for run {name!r}; give {name}=<global batch> "
                "(or, on the command line, a .json/.toml file for names holding ',' or '=')"
            )
        got = [i for i, r in enumerate(rows) if r[j].strip()]
        if not got:
            raise ValueError(f"{path}: run {name!r} has no {header[j].rsplit(' - ', 1)[1]} values")
        step = np.array([steps[i] for i in got])
        loss = [_wandb_cell(path, lines[i], j, header, rows[i][j]) for i in got]
        parts.append(
            log_part(name, batch, step, step * batch, loss, where=lambda k, got=got: f"{path}:{lines[got[k]]}")
        )
    return parts
