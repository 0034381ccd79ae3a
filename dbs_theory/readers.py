"""Loss logs that other tools wrote: Hugging Face ``Trainer`` folders and W&B CSV exports.

Each reader turns what a path holds into the interchange columns of
:mod:`dbs_theory.runs` (``run, batch_size, step, tokens, loss`` plus ``lr``),
so :func:`dbs_theory.runs.load_runs` (and ``dbs fit``, ``dbs plan``) reads them
like its own CSV. :func:`detect` picks the reader from the path.

- **Hugging Face** ``Trainer`` output: every ``trainer_state.json`` under the
  folder is one run (named by its folder; inside ``checkpoint-N`` folders the
  run's folder and the latest checkpoint). Rows come from ``log_history``
  entries with a ``loss`` (``step``, ``loss``, ``learning_rate``, and
  ``num_input_tokens_seen`` when the run counted tokens). The global batch is
  read from the token count (its increase per step: HF counts tokens over all
  processes) or given by ``batch_sizes``; ``training_args.bin`` is a pickle and
  is never opened.
- **TensorBoard** event files (a run folder or a tree of them; each folder
  holding ``events.out.tfevents.*`` is one run, named by its path): the loss
  scalar ``loss_tag`` (default the first of ``train/loss``, ``loss``,
  ``train_loss``), the batch size from the scalar ``batch_tag`` or
  ``batch_sizes``, tokens from a token-count scalar (:data:`TOKEN_TAGS`) when
  one was logged. Needs the ``tensorboard`` package (the ``tensorboard`` extra).
- **W&B** "export CSV" of a panel: a ``Step`` column and one ``<run> - <metric>``
  column per run (``__MIN``/``__MAX`` companions ignored); the metric is
  ``loss_tag`` (default the first of ``train/loss``, ``loss``, ``train_loss``);
  batch sizes come from ``batch_sizes``.

Data: ``tokens = num_input_tokens_seen`` where logged, else ``step x batch_size``
(in the unit of the batch size the user gave).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["detect", "read_hf", "read_wandb", "read_tensorboard", "parse_batch_sizes", "LOSS_TAGS", "TOKEN_TAGS",
           "add_foreign_log_arguments", "foreign_log_options"]

LOSS_TAGS = ("train/loss", "loss", "train_loss")
TOKEN_TAGS = ("train/tokens", "tokens", "train/num_input_tokens_seen", "num_input_tokens_seen")


def parse_batch_sizes(text) -> dict:
    """``{"a": 256.0, ...}`` from ``"a=256,b=512"`` (``--batch-size``); ``{}`` for none."""
    out = {}
    for item in (str(text).split(",") if text else []):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--batch-size must look like 'run=256,other=512'; got {text!r}") from None
        if not name.strip() or not (math.isfinite(out[name.strip()]) and out[name.strip()] > 0):
            raise ValueError(f"--batch-size {item!r}: a run name and a positive batch size")
    return out


def add_foreign_log_arguments(p):
    """The options of commands that read logs other tools wrote (``dbs fit``, ``dbs plan``)."""
    p.add_argument("--batch-size", dest="batch_sizes", default=None, metavar="RUN=B,...",
                   help="global batch size of each run in a W&B export or a Hugging Face folder without token "
                        "counts, e.g. 'a=256,b=512' (default: none)")
    p.add_argument("--loss-tag", default=None, help="the loss metric of a W&B export or TensorBoard logs "
                   f"(default: the first of {', '.join(LOSS_TAGS)} present)")
    p.add_argument("--batch-tag", default=None, help="TensorBoard scalar holding each run's batch size, e.g. "
                   "train/batch_size (default: none; then --batch-size)")


def foreign_log_options(args) -> dict:
    """``load_runs`` keywords from :func:`add_foreign_log_arguments`'s options."""
    return dict(batch_sizes=parse_batch_sizes(args.batch_sizes), loss_tag=args.loss_tag, batch_tag=args.batch_tag)


def detect(path: Path) -> str:
    """``tensorboard``, ``hf``, ``wandb`` or ``native`` for what ``path`` holds."""
    if path.is_dir() and any(path.glob("**/events.out.tfevents.*")):
        return "tensorboard"
    if path.is_dir():
        return "hf" if (path / "trainer_state.json").exists() or any(path.glob("**/trainer_state.json")) \
            else "native"
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                head = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError):
            return "native"
        if "Step" in head and any(" - " in h for h in head):
            return "wandb"
    return "native"


def _part(name, batch, step, tokens, loss, lr=None):
    """One run in the ``(names, columns, optional)`` form :func:`dbs_theory.runs.load_runs` groups."""
    n = len(step)
    cols = dict(batch_size=np.full(n, float(batch)), step=np.asarray(step, float),
                tokens=np.asarray(tokens, float), loss=np.asarray(loss, float))
    extra = {} if lr is None else dict(lr=np.asarray(lr, float))
    return np.array([name] * n, dtype=object), cols, extra


def _hf_states(folder: Path) -> dict:
    """``{run name: trainer_state.json}``: one per run folder, the latest checkpoint's when several."""
    runs = {}
    for f in sorted(folder.glob("**/trainer_state.json")):
        parent = f.parent
        run_dir = parent.parent if parent.name.startswith("checkpoint-") else parent
        name = run_dir.name
        step = int(parent.name.split("-")[-1]) if parent.name.startswith("checkpoint-") and \
            parent.name.split("-")[-1].isdigit() else math.inf  # a run folder's own state is its final one
        if name not in runs or step >= runs[name][0]:
            runs[name] = (step, f)
    return {k: v[1] for k, v in runs.items()}


def read_hf(folder, batch_sizes=None) -> list:
    """Runs of a Hugging Face ``Trainer`` output folder (module docstring) as load_runs parts."""
    folder, batch_sizes = Path(folder), batch_sizes or {}
    parts = []
    for name, f in _hf_states(folder).items():
        try:
            state = json.loads(f.read_text(encoding="utf-8"))
            logs = [e for e in state["log_history"] if "loss" in e and "step" in e]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: not a Trainer state ({exc.__class__.__name__}: needs a log_history list)") \
                from None
        if not logs:
            raise ValueError(f"{f}: log_history has no training loss entries (run {name!r})")
        step = np.array([e["step"] for e in logs], float)
        seen = [e.get("num_input_tokens_seen") for e in logs]
        batch = batch_sizes.get(name)
        if all(isinstance(s, (int, float)) and s >= 0 for s in seen):
            tokens = np.array(seen, float)
            if batch is None and step.size >= 2:
                batch = float(np.median(np.diff(tokens) / np.maximum(np.diff(step), 1)))
        else:
            tokens = None
        if batch is None:
            raise ValueError(f"{f}: no global batch size for run {name!r}: the log has no num_input_tokens_seen "
                             f"and gradient accumulation and world size live in training_args.bin, a pickle "
                             f"dbs does not open; pass --batch-size {name}=<global batch>")
        lr = [e.get("learning_rate", math.nan) for e in logs]
        parts.append(_part(name, batch, step, tokens if tokens is not None else step * batch,
                           [e["loss"] for e in logs], lr))
    return parts


def read_wandb(path, batch_sizes=None, loss_tag=None) -> list:
    """Runs of a W&B panel export (module docstring) as load_runs parts."""
    path, batch_sizes = Path(path), batch_sizes or {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: the W&B export has no rows")
    cols = [c for c in rows[0] if " - " in c and not c.endswith(("__MIN", "__MAX"))]
    metrics = {c.rsplit(" - ", 1)[1] for c in cols}
    tag = loss_tag or next((t for t in LOSS_TAGS if t in metrics), None)
    if tag is None or tag not in metrics:
        raise ValueError(f"{path}: no loss column{f' for --loss-tag {loss_tag!r}' if loss_tag else ''}; "
                         f"metrics present: {', '.join(sorted(metrics)) or 'none'}")
    parts = []
    for c in (c for c in cols if c.rsplit(" - ", 1)[1] == tag):
        name = c.rsplit(" - ", 1)[0]
        if name not in batch_sizes:
            raise ValueError(f"{path}: no batch size for run {name!r}; pass --batch-size {name}=<global batch>")
        got = [(float(r["Step"]), float(r[c])) for r in rows if r.get(c, "") not in ("", None)]
        if not got:
            raise ValueError(f"{path}: run {name!r} has no {tag} values")
        step = np.array([s for s, _ in got])
        parts.append(_part(name, batch_sizes[name], step, step * batch_sizes[name], [v for _, v in got]))
    return parts


def _event_accumulator():
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise ValueError('reading TensorBoard event files needs the tensorboard package: '
                         'pip install "dbs-theory[tensorboard]"') from None
    return EventAccumulator


def read_tensorboard(folder, batch_sizes=None, loss_tag=None, batch_tag=None) -> list:
    """Runs of a TensorBoard log tree (module docstring) as load_runs parts."""
    folder, batch_sizes = Path(folder), batch_sizes or {}
    EventAccumulator = _event_accumulator()
    parts = []
    for d in sorted({f.parent for f in folder.glob("**/events.out.tfevents.*")}):
        name = folder.name if d == folder else str(d.relative_to(folder))
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        acc.Reload()
        tags = set(acc.Tags().get("scalars", []))
        tag = loss_tag or next((t for t in LOSS_TAGS if t in tags), None)
        if tag is None or tag not in tags:
            raise ValueError(f"{d}: no loss scalar{f' {loss_tag!r}' if loss_tag else ''} in run {name!r}; "
                             f"scalars present: {', '.join(sorted(tags)) or 'none'} (choose one with --loss-tag)")
        ev = acc.Scalars(tag)
        step = np.array([e.step for e in ev], float)
        batch = _tb_batch(acc, tags, name, d, batch_tag, batch_sizes)
        tok = next((t for t in TOKEN_TAGS if t in tags), None)
        tokens = step * batch
        if tok is not None:
            seen = {e.step: e.value for e in acc.Scalars(tok)}
            if all(s in seen for s in step):
                tokens = np.array([seen[s] for s in step], float)
        parts.append(_part(name, batch, step, tokens, [e.value for e in ev]))
    return parts


def _tb_batch(acc, tags, name, d, batch_tag, batch_sizes) -> float:
    """The run's batch size: the ``batch_tag`` scalar (one value over the run) or the mapping."""
    if name in batch_sizes:
        return batch_sizes[name]
    if batch_tag is None:
        raise ValueError(f"{d}: no batch size for run {name!r}; pass --batch-tag (a scalar) or "
                         f"--batch-size {name}=<global batch>")
    if batch_tag not in tags:
        raise ValueError(f"{d}: run {name!r} has no scalar {batch_tag!r} (--batch-tag); "
                         f"scalars present: {', '.join(sorted(tags))}")
    values = {e.value for e in acc.Scalars(batch_tag)}
    if len(values) != 1 or not min(values) > 0:
        raise ValueError(f"{d}: run {name!r} logs {len(values)} different batch sizes under {batch_tag!r}; "
                         "a run of the sweep has one (split it, or give --batch-size)")
    return float(values.pop())

