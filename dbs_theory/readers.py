"""Loss logs that other tools wrote: Hugging Face ``Trainer`` folders, W&B CSV exports, TensorBoard event files.

Each reader turns what a path holds into the interchange columns of
:mod:`dbs_theory.runs` (``run, batch_size, step, tokens, loss`` plus ``lr``),
so :func:`dbs_theory.runs.load_runs` (and ``dbs fit``, ``dbs plan``) reads them
like its own CSV. Each format is ONE function registered with :func:`reader`
(its name, a test of whether a path holds it, the ``load_runs`` options it
takes): :func:`detect` asks the registered readers in order, ``--format``
(:data:`FORMATS`) names one, and :func:`read` calls it. Readers check instead of guess:

- A run is named by its path (its folder relative to the folder given) or, in
  a W&B export, by its column: never by a display name or a last folder name
  alone. Folders are found through symbolic links; a link back to a folder
  already read (a loop, or a second link to one run) is read once, with a
  warning.
- **Hugging Face** ``Trainer`` output: every run folder holding a
  ``trainer_state.json`` (its own, or in ``checkpoint-N`` folders) is one run;
  of its states the one with the largest ``global_step`` is read (a warning
  says so when a checkpoint's is newer than the folder's own). Rows come from
  ``log_history`` entries with a ``loss`` (``step``, ``loss``,
  ``learning_rate``, ``num_input_tokens_seen``). Data is
  ``num_input_tokens_seen`` (tokens, counted over all processes) when every
  loss entry has it; the global batch (tokens per step) is its increase per
  step, one value when that varies by at most :data:`REL_TOL`, else per row (a
  dynamic-batch run). Without token counts the batch comes from
  ``batch_sizes`` (``training_args.bin`` is a pickle and is never opened) and
  data is step x batch; a given batch that contradicts the token count is
  refused. A Trainer's own TensorBoard ``runs/`` folder does not make the
  output folder a TensorBoard tree.
- **TensorBoard** event files (each folder holding ``events.out.tfevents.*``
  is one run): the loss scalar ``loss_tag`` (default the first of
  :data:`LOSS_TAGS`); the batch from the scalar ``batch_tag`` (per step: the
  last value logged at or before it, so a changing batch is a dynamic-batch
  run) or ``batch_sizes``; data from a token-count scalar (:data:`TOKEN_TAGS`)
  when the run logs one (then at every loss step), else the running sum of
  the batch over steps. An event file that ends in a partial record is read up
  to it, with a warning. Needs the ``tensorboard`` package.
- **W&B** "export CSV" of a panel: a ``Step`` column and one
  ``<run> - <metric>`` column per run (``__MIN``/``__MAX`` companions
  ignored); the metric is ``loss_tag``; batch sizes come from ``batch_sizes``;
  data is step x batch. Two columns of one display name are two runs, named
  ``<run> (column K)`` (K counts from 1 at ``Step``), with a warning.

:func:`dbs_theory.runs.load_runs` then checks every source alike: steps and
tokens non-negative, tokens non-decreasing and within :data:`REL_TOL` of
step x batch over each logged interval, loss a real number.
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["detect", "read", "reader", "Reader", "READERS", "read_hf", "read_wandb", "read_tensorboard",
           "parse_batch_sizes", "walk", "LOSS_TAGS", "TOKEN_TAGS", "FORMATS", "REL_TOL", "add_foreign_log_arguments",
           "foreign_log_options"]


@dataclass(frozen=True)
class Reader:
    """One log format other tools write.

    Attributes
    ----------
    name : str                  What ``--format`` calls it.
    matches : callable          ``matches(path) -> bool``: does ``path`` (file or folder) hold this format?
    read : callable             ``read(path, **options) -> list`` of load_runs parts.
    options : tuple of str      The :func:`~dbs_theory.runs.load_runs` options ``read`` takes.
    """

    name: str
    matches: Callable
    read: Callable
    options: tuple = ()


#: name -> Reader, in the order :func:`detect` asks them (registration order)
READERS: dict = {}


def reader(name: str, matches: Callable, options=()):
    """Decorator registering a format's read function: adding a format is this one decorated function."""
    def add(fn):
        READERS[name] = Reader(name, matches, fn, tuple(options))
        return fn
    return add


def read(kind: str, path, **options) -> list:
    """The load_runs parts of ``path`` by the registered reader ``kind``, given the options it takes."""
    r = READERS[kind]
    return r.read(path, **{k: options.get(k) for k in r.options})

LOSS_TAGS = ("train/loss", "loss", "train_loss")
TOKEN_TAGS = ("train/tokens", "tokens", "train/num_input_tokens_seen", "num_input_tokens_seen")
#: what ``--format`` accepts: this package's own CSV / JSON lines, then every registered reader (set at the end)
FORMATS: tuple = ()
REL_TOL = 0.05  # relative: one batch size within it; tokens against step x batch within it


def _number(v) -> bool:
    """A real number as JSON gives it: an int or a float, never a bool or a string."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_batch_sizes(text) -> dict:
    """``{"a": 256.0, ...}`` from ``"a=256,b=512"`` or a ``.json``/``.toml`` file mapping run names to batch
    sizes (for names holding ``,`` or ``=``; ``--batch-size``); ``{}`` for none."""
    if text and str(text).lower().endswith((".json", ".toml")):
        return _mapping_file(Path(str(text)))
    out = {}
    for item in (str(text).split(",") if text else []):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--batch-size must look like 'run=256,other=512' or name a .json/.toml file; "
                             f"got {text!r}") from None
        if not name.strip() or not (math.isfinite(out[name.strip()]) and out[name.strip()] > 0):
            raise ValueError(f"--batch-size {item!r}: a run name and a positive batch size")
    return out


def _mapping_file(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"--batch-size {str(path)!r}: no such file")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            got = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            got = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a {path.suffix[1:].upper()} file ({str(exc).splitlines()[0]})") from None
    if not isinstance(got, dict):
        raise ValueError(f"{path}: --batch-size needs a mapping {{run name: global batch}}; got {type(got).__name__}")
    for name, b in got.items():
        if not (_number(b) and math.isfinite(b) and b > 0):
            raise ValueError(f"{path}: run {name!r}: the batch size must be a positive number; got {b!r}")
    return {str(k): float(v) for k, v in got.items()}


def add_foreign_log_arguments(p):
    """The options of commands that read logs other tools wrote (``dbs fit``, ``dbs plan``)."""
    p.add_argument("--format", dest="log_format", default=None, choices=FORMATS,
                   help="the reader of the logs given (default: chosen by what the path holds: a folder with "
                        "trainer_state.json is hf even with the Trainer's TensorBoard runs/ inside)")
    p.add_argument("--batch-size", dest="batch_sizes", default=None, metavar="RUN=B,...|FILE",
                   help="global batch size of each run in a W&B export, TensorBoard logs or a Hugging Face folder "
                        "without token counts, e.g. 'a=256,b=512', or a .json/.toml file {run: B} for names "
                        "holding ',' or '=' (default: none)")
    p.add_argument("--loss-tag", default=None, help="the loss metric of a W&B export or TensorBoard logs "
                   f"(default: the first of {', '.join(LOSS_TAGS)} present)")
    p.add_argument("--batch-tag", default=None, help="TensorBoard scalar holding each run's batch size, e.g. "
                   "train/batch_size; a changing value is a dynamic-batch run (default: none; then --batch-size)")


def foreign_log_options(args) -> dict:
    """``load_runs`` keywords from :func:`add_foreign_log_arguments`'s options."""
    return dict(batch_sizes=parse_batch_sizes(args.batch_sizes), loss_tag=args.loss_tag, batch_tag=args.batch_tag,
                log_format=getattr(args, "log_format", None))


def walk(folder: Path, match, quiet=False) -> list:
    """Files under ``folder`` whose name ``match`` accepts, sorted, found through symbolic links.

    A folder reached a second time (a link back to a folder above it, or a second link to one folder) is
    read once; a warning names it unless ``quiet``.
    """
    folder = Path(folder)
    seen, out = {os.path.realpath(folder): folder}, []
    for top, dirs, files in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(dirs, key=lambda d: (os.path.islink(os.path.join(top, d)), d)):
            path = Path(top) / d
            real = os.path.realpath(path)
            if real in seen:
                if not quiet:
                    warnings.warn(f"{path} is a link to {seen[real]}, already read: read once", stacklevel=4)
                continue
            seen[real] = path
            kept.append(d)
        dirs[:] = sorted(kept)
        out += [Path(top) / f for f in files if match(f) and os.path.isfile(os.path.join(top, f))]
    return sorted(out)


def _is_state(name) -> bool:
    return name == "trainer_state.json"


def _is_events(name) -> bool:
    return name.startswith("events.out.tfevents.")


def detect(path: Path) -> str:
    """The first registered reader whose ``matches`` accepts ``path``, else ``native`` (this package's
    CSV / JSON lines). Registered in order: ``hf`` (a folder holding any ``trainer_state.json``: the Trainer
    writes its TensorBoard logs inside its output folder, under ``runs/``), ``wandb`` (a CSV file),
    ``tensorboard`` (a folder of event files).
    """
    path = Path(path)
    return next((name for name, r in READERS.items() if r.matches(path)), "native")


def _holds_hf(path: Path) -> bool:
    return path.name == "trainer_state.json" if not path.is_dir() else bool(walk(path, _is_state, quiet=True))


def _holds_events(path: Path) -> bool:
    return path.is_dir() and bool(walk(path, _is_events, quiet=True))


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


def _part(name, batch, step, tokens, loss, lr=None, where=None):
    """One run in the ``(names, columns, optional, where)`` form :func:`dbs_theory.runs.load_runs` groups.

    ``batch`` is one number or one per row; ``where(i)`` names row ``i``'s origin (file, line or entry).
    """
    n = len(step)
    cols = dict(batch_size=np.broadcast_to(np.asarray(batch, float), (n,)).copy(), step=np.asarray(step, float),
                tokens=np.asarray(tokens, float), loss=np.asarray(loss, float))
    extra = {} if lr is None else dict(lr=np.asarray(lr, float))
    return np.array([name] * n, dtype=object), cols, extra, where or (lambda i: f"run {name!r}, row {i + 1}")


def _run_name(folder: Path, run_dir: Path) -> str:
    """A run's name: its folder relative to the folder given (the folder's own name if it is the run)."""
    if run_dir == folder:
        return folder.resolve().name if folder.is_dir() else str(run_dir)
    try:
        return run_dir.relative_to(folder).as_posix()
    except ValueError:
        return str(run_dir)


def _hf_states(path: Path) -> dict:
    """``{run folder: [trainer_state.json, ...]}``: its own state and its checkpoints' (or the file given)."""
    files = [path] if path.is_file() else walk(path, _is_state)
    runs = {}
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
        raise ValueError(f"{f}: not a Trainer state (a trainer_state.json with a log_history list; "
                         f"{exc.__class__.__name__}); --format chooses the reader") from None
    return state


def _last_step(state) -> float:
    """A state's ``global_step``, or its last logged step where it has none."""
    g = state.get("global_step")
    if _number(g):
        return float(g)
    return max((e["step"] for e in state["log_history"] if isinstance(e, dict) and _number(e.get("step"))),
               default=-math.inf)


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
        warnings.warn(f"{best[0]} (global_step {_last_step(best[1]):g}) is newer than {own[0]} (global_step "
                      f"{_last_step(got[0][1]):g}): read {best[0].parent.name}'s", stacklevel=4)
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
        name = _run_name(folder, run_dir)
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
            if not _number(e[key]):
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
    lr = [e.get("learning_rate") if _number(e.get("learning_rate")) else math.nan for _, e in logs]
    where = (lambda i: f"{f}: log_history entry {logs[i][0]} (step {step[i]:g})")
    return _part(name, batch, step, tokens, [e["loss"] for _, e in logs], lr, where)


def _hf_tokens(f, logs, name, batch, step):
    """``(tokens, batch)``: ``num_input_tokens_seen`` when every loss entry has it (the batch read from it, or
    checked against the one given), else step x the batch given."""
    have = ["num_input_tokens_seen" in e for _, e in logs]
    if not all(have):
        if batch is None and any(have):
            k, e = logs[have.index(False)]
            raise ValueError(f"{f}: num_input_tokens_seen is in {sum(have)} of {len(have)} loss entries (not in "
                             f"entry {k}, step {e['step']:g}) of run {name!r}: its data cannot be counted one way; "
                             f"pass --batch-size {name}=<global batch> to count it as step x batch")
        if batch is None:
            raise ValueError(f"{f}: no global batch size for run {name!r}: the log has no num_input_tokens_seen "
                             f"and gradient accumulation and world size live in training_args.bin, a pickle "
                             f"dbs does not open; pass --batch-size {name}=<global batch>")
        if any(have):
            warnings.warn(f"{f}: num_input_tokens_seen is in only {sum(have)} of {len(have)} loss entries of run "
                          f"{name!r}: its data is step x --batch-size {batch:g}", stacklevel=4)
        return step * batch, batch
    for k, e in logs:
        v = e["num_input_tokens_seen"]
        if not (_number(v) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{f}: log_history entry {k}: 'num_input_tokens_seen' is {v!r}, not a count")
    tokens = np.array([e["num_input_tokens_seen"] for _, e in logs], float)
    falls = np.flatnonzero(np.diff(tokens) < 0)
    if falls.size:
        j = falls[0] + 1
        raise ValueError(f"{f}: log_history entry {logs[j][0]} (step {step[j]:g}): num_input_tokens_seen falls "
                         f"from {tokens[j - 1]:g} to {tokens[j]:g} (run {name!r}); data consumed never decreases")
    per = _per_step(step, tokens)
    if batch is None:
        return tokens, _one_batch(per, tokens, step)
    off = np.flatnonzero(np.abs(per / batch - 1) > REL_TOL)
    if off.size:
        raise ValueError(f"{f}: --batch-size {name}={batch:g} contradicts the run's num_input_tokens_seen "
                         f"({per[off[0]]:g} per step at entry {logs[off[0]][0]}): give the batch in tokens, "
                         "or leave it out to read it from the count")
    return tokens, batch


def _per_step(step, tokens):
    """Tokens per step over each logged interval (the first from step 0, token 0); NaN where steps repeat."""
    ds, dt = np.diff(np.r_[0.0, step]), np.diff(np.r_[0.0, tokens])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ds > 0, dt / np.where(ds > 0, ds, 1), np.nan)
    ok = np.flatnonzero(np.isfinite(per))
    if ok.size and ok.size < per.size:  # repeated steps take their neighbour's rate
        per = per[ok[np.clip(np.searchsorted(ok, np.arange(per.size)), 0, ok.size - 1)]]
    return per


def _one_batch(per, tokens, step):
    """One batch (tokens per step over the run) when the rate stays within REL_TOL, else the rate per row."""
    if per.size and np.all(per > 0) and per.max() <= per.min() * (1 + REL_TOL) and step[-1] > 0:
        return float(tokens[-1] / step[-1])
    return per


def _wandb_rows(path: Path):
    """``(header, rows, lines)``: the export's cells as text and the line each row starts on."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows, lines = [], []
            for r in reader:
                if any(c.strip() for c in r):
                    rows.append(r + [""] * (len(header) - len(r)))
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
    by = {}
    for j in cols:
        by.setdefault(header[j], []).append(j)
    names = {}
    for head, js in by.items():
        display = head.rsplit(" - ", 1)[0]
        names.update({j: display if len(js) == 1 else f"{display} (column {j + 1})" for j in js})
        if len(js) > 1:
            warnings.warn(f"{path}: {head!r} heads columns {' and '.join(str(j + 1) for j in js)}: two runs of one "
                          f"display name, kept apart as {' and '.join(repr(names[j]) for j in js)} (give batch "
                          f"sizes by these names, or by {display!r} for all)", stacklevel=4)
    return names


def _wandb_loss_columns(path, header, loss_tag) -> list:
    """The loss column of each run: ``loss_tag``, else the first of :data:`LOSS_TAGS` the run logs (runs of one
    export may log under different names). A run with none is refused, naming it and what it logs."""
    cols = [j for j, h in enumerate(header) if " - " in h and not h.endswith(("__MIN", "__MAX"))]
    by_run = {}
    for j in cols:
        run, metric = header[j].rsplit(" - ", 1)
        by_run.setdefault(run, {}).setdefault(metric, []).append(j)
    chosen, tags = [], set()
    for run, metrics in by_run.items():
        tag = loss_tag if loss_tag in metrics else None if loss_tag else next((t for t in LOSS_TAGS if t in metrics),
                                                                              None)
        if tag is None:
            want = f"--loss-tag {loss_tag!r}" if loss_tag else f"a loss column ({', '.join(LOSS_TAGS)})"
            raise ValueError(f"{path}: run {run!r} has no {want} (--loss-tag names the metric every run logs); "
                             f"metrics present: {', '.join(sorted(metrics))}")
        chosen += metrics[tag]
        tags.add(tag)
    if not chosen:
        raise ValueError(f"{path}: no '<run> - <metric>' columns")
    if len(tags) > 1:
        warnings.warn(f"{path}: runs log their loss under different names ({', '.join(sorted(tags))}); each run's "
                      f"is read (--loss-tag chooses one for all)", stacklevel=4)
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
            raise ValueError(f"{path}: no batch size for run {name!r}; pass --batch-size {name}=<global batch> "
                             "(or a .json/.toml file for names holding ',' or '=')")
        got = [i for i, r in enumerate(rows) if r[j].strip()]
        if not got:
            raise ValueError(f"{path}: run {name!r} has no {header[j].rsplit(' - ', 1)[1]} values")
        step = np.array([steps[i] for i in got])
        loss = [_wandb_cell(path, lines[i], j, header, rows[i][j]) for i in got]
        parts.append(_part(name, batch, step, step * batch, loss,
                           where=lambda k, got=got: f"{path}:{lines[got[k]]}"))
    return parts


def _event_accumulator():
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise ValueError('reading TensorBoard event files needs the tensorboard package: '
                         'pip install "dbs-theory[tensorboard]"') from None
    return EventAccumulator


def _check_complete(f: Path) -> None:
    """Warn when an event file ends inside a record (TFRecord framing: 8-byte length, 4-byte CRC, data, CRC)."""
    size, at = f.stat().st_size, 0
    with open(f, "rb") as fh:
        while at < size:
            head = fh.read(8)
            if len(head) < 8 or at + 16 + int.from_bytes(head, "little") > size:
                warnings.warn(f"{f} ends in a partial record at byte {at} of {size} (still being written, or cut "
                              "short): read the records before it", stacklevel=4)
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
        name = _run_name(folder, d)
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        acc.Reload()
        part, counted[name] = _tb_run(acc, d, name, loss_tag, batch_tag, batch_sizes)
        parts.append(part)
    if len(set(counted.values())) > 1:
        warnings.warn(f"{folder}: data of run(s) {', '.join(n for n, c in counted.items() if c)} is their token "
                      f"scalar, of run(s) {', '.join(n for n, c in counted.items() if not c)} step x batch: "
                      "their batch sizes must be in tokens too", stacklevel=3)
    return parts


def _tb_run(acc, d, name, loss_tag, batch_tag, batch_sizes):
    """``(part, counted)``: one run's part, and whether its data is a logged token count."""
    tags = set(acc.Tags().get("scalars", []))
    tag = loss_tag or next((t for t in LOSS_TAGS if t in tags), None)
    if tag is None or tag not in tags:
        raise ValueError(f"{d}: no loss scalar{f' {loss_tag!r}' if loss_tag else ''} in run {name!r}; "
                         f"scalars present: {', '.join(sorted(tags)) or 'none'} (choose one with --loss-tag)")
    ev = acc.Scalars(tag)
    step = np.array([e.step for e in ev], float)
    batch, tokens = _tb_batch(acc, tags, name, d, batch_tag, batch_sizes, step)
    tok = next((t for t in TOKEN_TAGS if t in tags), None)
    if tok is not None:
        seen = {e.step: e.value for e in acc.Scalars(tok)}
        missing = [s for s in step if s not in seen]
        if missing:
            raise ValueError(f"{d}: run {name!r} logs {tok!r} at {step.size - len(missing)} of {step.size} loss "
                             f"steps (not at step {missing[0]:g}): its data cannot be counted one way; log it with "
                             "every loss")
        tokens = np.array([seen[s] for s in step], float)
    part = _part(name, batch, step, tokens, [e.value for e in ev], where=lambda i: f"{d}: step {step[i]:g}")
    return part, tok is not None


def _tb_batch(acc, tags, name, d, batch_tag, batch_sizes, step):
    """``(batch, tokens)``: the batch per loss step (the ``batch_tag`` scalar's last value at or before it: a
    value logged at step t is step t's batch) or the mapping's, and data as the batch summed over steps 1..s."""
    given = batch_sizes.get(name)
    if batch_tag is None or (given is not None and batch_tag not in tags):
        if given is None:
            raise ValueError(f"{d}: no batch size for run {name!r}; pass --batch-tag (a scalar) or "
                             f"--batch-size {name}=<global batch>")
        return given, step * given
    if batch_tag not in tags:
        raise ValueError(f"{d}: run {name!r} has no scalar {batch_tag!r} (--batch-tag); "
                         f"scalars present: {', '.join(sorted(tags))}")
    ev = sorted(acc.Scalars(batch_tag), key=lambda e: e.step)
    at, value = np.array([e.step for e in ev], float), np.array([e.value for e in ev], float)
    k = np.searchsorted(at, step, side="right") - 1
    early = np.flatnonzero((k < 0) & (step > 0))
    if early.size:
        raise ValueError(f"{d}: run {name!r} logs its loss at step {step[early[0]]:g}, before its first "
                         f"{batch_tag!r} (step {at[0]:g}): the batch there is unknown")
    k = np.maximum(k, 0)
    if given is not None and np.any(np.abs(value / given - 1) > REL_TOL):
        raise ValueError(f"{d}: --batch-size {name}={given:g} contradicts the run's {batch_tag!r} "
                         f"({', '.join(f'{v:g}' for v in np.unique(value)[:4])})")
    before = np.r_[0.0, np.cumsum(value[:-1] * np.diff(at))] + value[0] * (at[0] - 1)  # data before step at[j]
    return value[k], before[k] + value[k] * (step - at[k] + 1)


FORMATS = ("csv", "jsonl", *READERS)
