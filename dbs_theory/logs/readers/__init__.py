"""Loss logs that other tools wrote: Hugging Face ``Trainer`` folders, W&B CSV exports, TensorBoard event files.

Each reader turns what a path holds into the interchange columns of
:mod:`dbs_theory.logs.runs` (``run, batch_size, step, tokens, loss`` plus ``lr``),
so :func:`dbs_theory.logs.runs.load_runs` (and ``dbs fit``, ``dbs plan``) reads them
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

:func:`dbs_theory.logs.runs.load_runs` then checks every source alike: steps and
tokens non-negative, tokens non-decreasing and within :data:`REL_TOL` of
step x batch over each logged interval, loss a real number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import LOSS_TAGS, REL_TOL, TOKEN_TAGS, log_part, run_name, walk

__all__ = [
    "detect",
    "read",
    "reader",
    "Reader",
    "READERS",
    "read_hf",
    "read_wandb",
    "read_tensorboard",
    "walk",
    "log_part",
    "run_name",
    "LOSS_TAGS",
    "TOKEN_TAGS",
    "FORMATS",
    "REL_TOL",
]


@dataclass(frozen=True)
class Reader:
    """One log format other tools write.

    Attributes
    ----------
    name : str                  What ``--format`` calls it.
    matches : callable          ``matches(path) -> bool``: does ``path`` (file or folder) hold this format?
    read : callable             ``read(path, **options) -> list`` of load_runs parts.
    options : tuple of str      The :func:`~dbs_theory.logs.runs.load_runs` options ``read`` takes.
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


def detect(path: Path) -> str:
    """The first registered reader whose ``matches`` accepts ``path``, else ``native`` (this package's
    CSV / JSON lines). Registered in order: ``hf`` (a folder holding any ``trainer_state.json``: the Trainer
    writes its TensorBoard logs inside its output folder, under ``runs/``), ``wandb`` (a CSV file),
    ``tensorboard`` (a folder of event files).
    """
    path = Path(path)
    return next((name for name, r in READERS.items() if r.matches(path)), "native")


# the formats, registered in the order detect() asks them
from . import hf, wandb, tensorboard  # noqa: E402,F401
from .hf import read_hf  # noqa: E402
from .wandb import read_wandb  # noqa: E402
from .tensorboard import read_tensorboard  # noqa: E402

#: what ``--format`` accepts: this package's own CSV / JSON lines, then every registered reader
FORMATS = ("csv", "jsonl", *READERS)
