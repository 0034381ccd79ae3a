"""The options of commands that read logs other tools wrote (``dbs fit``, ``dbs plan``), and their translation
into :func:`dbs_theory.logs.runs.load_runs` keywords."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..logs.readers import FORMATS, LOSS_TAGS
from ..logs.readers.common import is_number

__all__ = ["add_foreign_log_arguments", "foreign_log_options", "parse_batch_sizes", "LOG_FLAGS"]

#: :func:`dbs_theory.logs.runs.load_runs`'s arguments -> the flags that set them (:func:`dbs_theory.errors.as_flags`)
LOG_FLAGS = {
    "batch_sizes": "--batch-size",
    "log_format": "--format",
    "loss_tag": "--loss-tag",
    "batch_tag": "--batch-tag",
}


def add_foreign_log_arguments(p):
    """The options of commands that read logs other tools wrote (``dbs fit``, ``dbs plan``)."""
    p.add_argument(
        "--format",
        dest="log_format",
        default=None,
        choices=FORMATS,
        help="the reader of the logs given (default: chosen by what the path holds: a folder with "
        "trainer_state.json is hf even with the Trainer's TensorBoard runs/ inside)",
    )
    p.add_argument(
        "--batch-size",
        dest="batch_sizes",
        default=None,
        metavar="RUN=B,...|FILE",
        help="global batch size of each run in a W&B export, TensorBoard logs or a Hugging Face folder "
        "without token counts, e.g. 'a=256,b=512', or a .json/.toml file {run: B} for names "
        "holding ',' or '=' (default: none)",
    )
    p.add_argument(
        "--loss-tag",
        default=None,
        help="the loss metric of a W&B export or TensorBoard logs "
        f"(default: the first of {', '.join(LOSS_TAGS)} present)",
    )
    p.add_argument(
        "--batch-tag",
        default=None,
        help="TensorBoard scalar holding each run's batch size, e.g. "
        "train/batch_size; a changing value is a dynamic-batch run (default: none; then --batch-size)",
    )


def foreign_log_options(args) -> dict:
    """``load_runs`` keywords from :func:`add_foreign_log_arguments`'s options."""
    return dict(
        batch_sizes=parse_batch_sizes(args.batch_sizes),
        loss_tag=args.loss_tag,
        batch_tag=args.batch_tag,
        log_format=getattr(args, "log_format", None),
    )


def parse_batch_sizes(text) -> dict:
    """``{"a": 256.0, ...}`` from ``"a=256,b=512"`` or a ``.json``/``.toml`` file mapping run names to batch
    sizes (for names holding ``,`` or ``=``; ``--batch-size``); ``{}`` for none."""
    if text and str(text).lower().endswith((".json", ".toml")):
        return _mapping_file(Path(str(text)))
    out = {}
    for item in str(text).split(",") if text else []:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"--batch-size must look like 'run=256,other=512' or name a .json/.toml file; got {text!r}"
            ) from None
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
        if not (is_number(b) and math.isfinite(b) and b > 0):
            raise ValueError(f"{path}: run {name!r}: the batch size must be a positive number; got {b!r}")
    return {str(k): float(v) for k, v in got.items()}
