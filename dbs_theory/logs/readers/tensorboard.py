"""TensorBoard event files: the ``tensorboard`` reader (see the package docstring)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from . import reader
from .common import LOSS_TAGS, REL_TOL, TOKEN_TAGS, log_part, run_name, walk

__all__ = ["read_tensorboard"]


def _is_events(name) -> bool:
    return name.startswith("events.out.tfevents.")


def _holds_events(path: Path) -> bool:
    return path.is_dir() and bool(walk(path, _is_events, quiet=True))


def _event_accumulator():
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise ValueError(
            'reading TensorBoard event files needs the tensorboard package: pip install "dbs-theory[tensorboard]"'
        ) from None
    return EventAccumulator


def _check_complete(f: Path) -> None:
    """Warn when an event file ends inside a record (TFRecord framing: 8-byte length, 4-byte CRC, data, CRC)."""
    size, at = f.stat().st_size, 0
    with open(f, "rb") as fh:
        while at < size:
            head = fh.read(8)
            if len(head) < 8 or at + 16 + int.from_bytes(head, "little") > size:
                warnings.warn(
                    f"{f} ends in a partial record at byte {at} of {size} (still being written, or cut "
                    "short): read the records before it",
                    stacklevel=4,
                )
                return
            at += 16 + int.from_bytes(head, "little")
            fh.seek(at)


@reader("tensorboard", _holds_events, ("batch_sizes", "loss_tag", "batch_tag"))
def read_tensorboard(folder, batch_sizes=None, loss_tag=None, batch_tag=None) -> list:
    """Runs of a TensorBoard log tree (module docstring) as load_runs parts."""
    folder, batch_sizes = Path(folder), batch_sizes or {}
    if not folder.is_dir():
        raise ValueError(f"{folder}: TensorBoard logs are a folder of events.out.tfevents.* files; give the folder")
    EventAccumulator = _event_accumulator()
    files = walk(folder, _is_events)
    if not files:
        raise ValueError(f"{folder}: no events.out.tfevents.* files under it")
    parts, counted = [], {}
    for d in sorted({f.parent for f in files}):
        for f in (f for f in files if f.parent == d):
            _check_complete(f)
        name = run_name(folder, d)
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        acc.Reload()
        part, counted[name] = _tb_run(acc, d, name, loss_tag, batch_tag, batch_sizes)
        parts.append(part)
    if len(set(counted.values())) > 1:
        warnings.warn(
            f"{folder}: data of run(s) {', '.join(n for n, c in counted.items() if c)} is their token "
            f"scalar, of run(s) {', '.join(n for n, c in counted.items() if not c)} step x batch: "
            "their batch sizes must be in tokens too",
            stacklevel=3,
        )
    return parts


def _tb_run(acc, d, name, loss_tag, batch_tag, batch_sizes):
    """``(part, counted)``: one run's part, and whether its data is a logged token count."""
    tags = set(acc.Tags().get("scalars", []))
    tag = loss_tag or next((t for t in LOSS_TAGS if t in tags), None)
    if tag is None or tag not in tags:
        raise ValueError(
            f"loss_tag: {d}: no loss scalar{f' {loss_tag!r}' if loss_tag else ''} in run {name!r}; "
            f"scalars present: {', '.join(sorted(tags)) or 'none'} (choose one)"
        )
    ev = acc.Scalars(tag)
    step = np.array([e.step for e in ev], float)
    batch, tokens = _tb_batch(acc, tags, name, d, batch_tag, batch_sizes, step)
    tok = next((t for t in TOKEN_TAGS if t in tags), None)
    if tok is not None:
        seen = {e.step: e.value for e in acc.Scalars(tok)}
        missing = [s for s in step if s not in seen]
        if missing:
            raise ValueError(
                f"{d}: run {name!r} logs {tok!r} at {step.size - len(missing)} of {step.size} loss "
                f"steps (not at step {missing[0]:g}): its data cannot be counted one way; log it with "
                "every loss"
            )
        tokens = np.array([seen[s] for s in step], float)
    part = log_part(name, batch, step, tokens, [e.value for e in ev], where=lambda i: f"{d}: step {step[i]:g}")
    return part, tok is not None


def _tb_batch(acc, tags, name, d, batch_tag, batch_sizes, step):
    """``(batch, tokens)``: the batch per loss step (the ``batch_tag`` scalar's last value at or before it: a
    value logged at step t is step t's batch) or the mapping's, and data as the batch summed over steps 1..s."""
    given = batch_sizes.get(name)
    if batch_tag is None or (given is not None and batch_tag not in tags):
        if given is None:
            raise ValueError(
                f"batch_sizes: {d}: no batch size for run {name!r}; give {name}=<global batch>, or name the "
                "scalar that holds it (batch_tag)"
            )
        return given, step * given
    if batch_tag not in tags:
        raise ValueError(
            f"batch_tag: {d}: run {name!r} has no scalar {batch_tag!r}; scalars present: {', '.join(sorted(tags))}"
        )
    ev = sorted(acc.Scalars(batch_tag), key=lambda e: e.step)
    at, value = np.array([e.step for e in ev], float), np.array([e.value for e in ev], float)
    k = np.searchsorted(at, step, side="right") - 1
    early = np.flatnonzero((k < 0) & (step > 0))
    if early.size:
        raise ValueError(
            f"{d}: run {name!r} logs its loss at step {step[early[0]]:g}, before its first "
            f"{batch_tag!r} (step {at[0]:g}): the batch there is unknown"
        )
    k = np.maximum(k, 0)
    if given is not None and np.any(np.abs(value / given - 1) > REL_TOL):
        raise ValueError(
            f"batch_sizes: {d}: {name}={given:g} contradicts the run's {batch_tag!r} "
            f"({', '.join(f'{v:g}' for v in np.unique(value)[:4])})"
        )
    before = np.r_[0.0, np.cumsum(value[:-1] * np.diff(at))] + value[0] * (at[0] - 1)  # data before step at[j]
    return value[k], before[k] + value[k] * (step - at[k] + 1)
