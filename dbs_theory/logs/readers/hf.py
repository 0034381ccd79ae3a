"""Hugging Face ``Trainer`` output folders (``trainer_state.json``): the ``hf`` reader (see the package
docstring)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from . import reader
from .common import REL_TOL, is_number, log_part, one_batch, per_step, run_name, walk

__all__ = ["read_hf"]


def _is_state(name) -> bool:
    return name == "trainer_state.json"


def _holds_hf(path: Path) -> bool:
    return path.name == "trainer_state.json" if not path.is_dir() else bool(walk(path, _is_state, quiet=True))


def _hf_states(path: Path) -> dict:
    """``{run folder: [trainer_state.json, ...]}``: its own state and its checkpoints' (or the file given)."""
    files = [path] if path.is_file() else walk(path, _is_state)
    runs: dict = {}
    for f in files:
        run_dir = f.parent.parent if f.parent.name.startswith("checkpoint-") else f.parent
        runs.setdefault(run_dir, []).append(f)
    return runs


def _load_state(f: Path) -> dict:
    try:
        state = json.loads(f.read_text(encoding="utf-8-sig"))
        if not isinstance(state, dict) or not isinstance(state["log_history"], list):
            raise TypeError("log_history is not a list")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"log_format: {f}: not a Trainer state (a trainer_state.json with a log_history list; "
            f"{exc.__class__.__name__}); name the reader of this path"
        ) from None
    return state


def _last_step(state) -> float:
    """A state's ``global_step``, or its last logged step where it has none."""
    g = state.get("global_step")
    if is_number(g):
        return float(g)
    return max(
        (e["step"] for e in state["log_history"] if isinstance(e, dict) and is_number(e.get("step"))), default=-math.inf
    )


def _pick_state(run_dir: Path, files: list):
    """``(file, state)``: of the run folder's own state and its latest ``checkpoint-N``'s, the one with the
    largest ``global_step`` (the folder's own on a tie), with a warning when a checkpoint's is newer."""

    def number(f):
        tail = f.parent.name.split("-")[-1]
        return int(tail) if tail.isdigit() else -1

    own = [f for f in files if f.parent == run_dir]
    ckpt = max((f for f in files if f.parent != run_dir), key=number, default=None)
    got = [(f, _load_state(f)) for f in own + ([ckpt] if ckpt else [])]
    best = max(got, key=lambda fs: (_last_step(fs[1]), fs[0].parent == run_dir))
    if own and best[0] != own[0]:
        warnings.warn(
            f"{best[0]} (global_step {_last_step(best[1]):g}) is newer than {own[0]} (global_step "
            f"{_last_step(got[0][1]):g}): read {best[0].parent.name}'s",
            stacklevel=4,
        )
    return best


@reader("hf", _holds_hf, ("batch_sizes",))
def read_hf(folder, batch_sizes=None) -> list:
    """Runs of a Hugging Face ``Trainer`` output folder, or of ``trainer_state.json`` files (module docstring),
    as load_runs parts."""
    folder, batch_sizes = Path(folder), batch_sizes or {}
    groups = _hf_states(folder)
    if not groups:
        raise ValueError(f"{folder}: no trainer_state.json under it (not a Hugging Face Trainer output)")
    parts = []
    for run_dir, files in sorted(groups.items()):
        name = run_name(folder, run_dir)
        f, state = _pick_state(run_dir, files)
        parts.append(_hf_run(f, state, name, batch_sizes.get(name)))
    return parts


def _hf_entries(f, state, name) -> list:
    """``[(entry number, entry)]`` of the loss entries in step order; step and loss checked to be numbers."""
    logs = [(k, e) for k, e in enumerate(state["log_history"]) if isinstance(e, dict) and "loss" in e and "step" in e]
    if not logs:
        raise ValueError(f"{f}: log_history has no training loss entries (run {name!r})")
    for k, e in logs:
        for key in ("step", "loss"):
            if not is_number(e[key]):
                raise ValueError(f"{f}: log_history entry {k}: {key!r} is {e[key]!r}, not a number")
    ordered = sorted(logs, key=lambda ke: ke[1]["step"])
    if ordered != logs:
        warnings.warn(f"{f}: log_history is not in step order; sorted it (run {name!r})", stacklevel=4)
    return ordered


def _hf_run(f, state, name, batch):
    """One run's part from its chosen Trainer state; the batch from its token count or ``batch``."""
    logs = _hf_entries(f, state, name)
    step = np.array([e["step"] for _, e in logs], float)
    tokens, batch = _hf_tokens(f, logs, name, batch, step)
    lr = [e.get("learning_rate") if is_number(e.get("learning_rate")) else math.nan for _, e in logs]
    where = lambda i: f"{f}: log_history entry {logs[i][0]} (step {step[i]:g})"
    return log_part(name, batch, step, tokens, [e["loss"] for _, e in logs], lr, where)


def _hf_tokens(f, logs, name, batch, step):
    """``(tokens, batch)``: ``num_input_tokens_seen`` when every loss entry has it (the batch read from it, or
    checked against the one given), else step x the batch given."""
    have = ["num_input_tokens_seen" in e for _, e in logs]
    if not all(have):
        if batch is None and any(have):
            k, e = logs[have.index(False)]
            raise ValueError(
                f"batch_sizes: {f}: num_input_tokens_seen is in {sum(have)} of {len(have)} loss entries (not "
                f"in entry {k}, step {e['step']:g}) of run {name!r}: its data cannot be counted one way; "
                f"give {name}=<global batch> to count it as step x batch"
            )
        if batch is None:
            raise ValueError(
                f"batch_sizes: {f}: no global batch size for run {name!r}: the log has no "
                f"num_input_tokens_seen and gradient accumulation and world size live in training_args.bin, "
                f"a pickle dbs does not open; give {name}=<global batch>"
            )
        if any(have):
            warnings.warn(
                f"{f}: num_input_tokens_seen is in only {sum(have)} of {len(have)} loss entries of run "
                f"{name!r}: its data is step x the given batch size {batch:g}",
                stacklevel=4,
            )
        return step * batch, batch
    for k, e in logs:
        v = e["num_input_tokens_seen"]
        if not (is_number(v) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{f}: log_history entry {k}: 'num_input_tokens_seen' is {v!r}, not a count")
    tokens = np.array([e["num_input_tokens_seen"] for _, e in logs], float)
    falls = np.flatnonzero(np.diff(tokens) < 0)
    if falls.size:
        j = falls[0] + 1
        raise ValueError(
            f"{f}: log_history entry {logs[j][0]} (step {step[j]:g}): num_input_tokens_seen falls "
            f"from {tokens[j - 1]:g} to {tokens[j]:g} (run {name!r}); data consumed never decreases"
        )
    per = per_step(step, tokens)
    if batch is None:
        return tokens, one_batch(per, tokens, step)
    off = np.flatnonzero(np.abs(per / batch - 1) > REL_TOL)
    if off.size:
        raise ValueError(
            f"batch_sizes: {f}: {name}={batch:g} contradicts the run's num_input_tokens_seen "
            f"({per[off[0]]:g} per step at entry {logs[off[0]][0]}): give the batch in tokens, "
            "or leave it out to read it from the count"
        )
    return tokens, batch
