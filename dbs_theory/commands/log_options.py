"""The options of commands that read logs other tools wrote (``dbs fit``, ``dbs plan``), and their translation
into :func:`dbs_theory.runs.load_runs` keywords."""

from __future__ import annotations

from ..readers import FORMATS, LOSS_TAGS, parse_batch_sizes

__all__ = ["add_foreign_log_arguments", "foreign_log_options"]


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
