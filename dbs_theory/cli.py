"""The ``dbs`` console script: one dispatcher, subcommands found by entry point.

Each package registers its subcommands in the ``dbs.commands`` entry-point
group of ``pyproject.toml``. An entry point names a module with

* ``HELP``: a one-line description;
* ``add_arguments(parser)``: fills an ``argparse`` sub-parser;
* ``run(args) -> int``: does the work (heavy imports belong inside it).

So this module never imports ``sim`` or ``validate``. Errors a user can
cause -- the package raises them as ``ValueError`` / :class:`~dbs_theory.errors.UserError`
(bad values, files, configs) or ``OSError`` (files, folders, locks) -- become one line on
stderr and exit code 2, with no traceback (``--debug`` adds it). Anything else is a bug,
a ``ValueError`` raised inside another library included (:func:`~dbs_theory.errors.raised_by_us`):
its traceback is printed with a line asking to report it (exit 1). ``main`` restores the
warning display it replaces.
Ctrl-C exits 130 with one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from importlib import metadata

from . import __version__
from .errors import as_flags, raised_by_us

__all__ = ["main", "build_parser", "GROUP"]

GROUP = "dbs.commands"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option's help ends with its default unless it states one."""

    def _get_help_string(self, action):
        text = action.help or ""
        missing = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or missing or not action.option_strings:  # `is`: a default of 0 is not False
            return text
        return f"{text} (default {action.default})"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``dbs CMD: error: ...``) and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _commands():
    eps = metadata.entry_points(group=GROUP)
    return sorted(eps, key=lambda ep: ep.name)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    parser = _OneLineParser(
        prog="dbs",
        description="Batch-size theory for WSD pretraining: derive, simulate, fit, schedule and validate.",
        formatter_class=_HelpFormatter,
        epilog="examples:\n  dbs demo                  # the main job: NQM + a small transformer sweep, "
        "a report\n  dbs fit logs/ --out results/fit\n  dbs COMMAND --help        # each command's options "
        "and examples",
    )
    parser.add_argument("--version", action="version", version=f"dbs-theory {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of a refusal too (or set DBS_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for ep in _commands():
        module = ep.load()
        p = sub.add_parser(
            ep.name,
            help=module.HELP,
            description=module.HELP,
            formatter_class=_HelpFormatter,
            epilog=getattr(module, "EXAMPLES", None),
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _flags=dict(getattr(module, "FLAGS", {})))
    return parser


#: the running command's argument -> flag map (its module's ``FLAGS``; :func:`dbs_theory.errors.as_flags`)
_FLAGS: dict = {}


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"dbs: warning: {as_flags(str(message), _FLAGS)}", file=sys.stderr)


#: seconds a command's warnings are held back: a refusal within them is its one error line alone
HOLD_S = 2.0


class _HeldWarnings:
    """Warnings held while a command may still be refused (a refusal is one line: the warnings read on the
    way to it, such as "rows were not sorted", would come first); released when the command succeeds or
    after :data:`HOLD_S` seconds, whichever is first, and dropped on a refusal."""

    def __init__(self, hold_s=HOLD_S):
        self.held, self.released, self.lock = [], False, threading.Lock()
        self.timer = threading.Timer(hold_s, self.release)
        self.timer.daemon = True

    def show(self, message, category, filename, lineno, file=None, line=None):
        with self.lock:
            if not self.released:
                self.held.append(message)
                return
        _one_line_warnings(message, category, filename, lineno)

    def release(self, keep=True):
        self.timer.cancel()
        with self.lock:
            held, self.held, self.released = self.held, [], True
        for message in held if keep else ():
            _one_line_warnings(message, None, None, None)


def _terminated(signum, frame):
    raise KeyboardInterrupt("terminated (SIGTERM)")


def main(argv=None) -> int:
    """Entry point of ``dbs``; returns the process exit code.

    SIGTERM (``kill``, a batch scheduler's time limit) is handled as Ctrl-C while a command runs: its cleanup
    runs (``dbs validate`` stops and checkpoints its training runs; ``dbs train`` checkpoints at the next step).
    """
    import signal
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = _one_line_warnings
    old = None
    try:
        parser = build_parser()
        args = parser.parse_args(_joined(sys.argv[1:] if argv is None else list(argv)))
        if not getattr(args, "_run", None):
            parser.print_help()
            return 0
        main_thread = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
        return _run(args)
    finally:
        warnings.showwarning = shown  # what main changes, it restores (a notebook's warnings stay its own)
        if old is not None:
            signal.signal(signal.SIGTERM, old)


#: options whose value is itself a command-line flag (``--sbatch --qos=high``): argparse would read it as an option
FLAG_VALUED = ("--sbatch",)


def _joined(argv):
    """``argv`` with ``--sbatch --key=value`` written ``--sbatch=--key=value``: a value that starts with ``--``
    is a value when it holds ``=`` or a space (the form ``--sbatch`` takes), not the next option."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if a in FLAG_VALUED and i + 1 < len(argv) else None
        if nxt is not None and nxt.startswith("-") and ("=" in nxt or " " in nxt):  # a flag=value, not an option
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _run(args) -> int:
    """Run the chosen command (:func:`_dispatch`); a refused (or failed) command leaves no empty ``--out`` folder
    it made."""
    import warnings

    out = getattr(args, "out", None)
    fresh = isinstance(out, str) and bool(out) and not os.path.lexists(out)
    held, shown = _HeldWarnings(), warnings.showwarning
    warnings.showwarning = held.show
    held.timer.start()
    rc = None
    _FLAGS.update(getattr(args, "_flags", {}))
    try:
        rc = _dispatch(args)
    finally:
        held.release(keep=rc != 2)
        warnings.showwarning = shown
        _FLAGS.clear()
    if rc in (1, 2) and fresh:  # refused, or stopped by a bug: no empty folder left behind
        _remove_empty_tree(out)
    return rc


#: files a command makes before any output: a folder holding only these (and folders) holds no result
LOCK_FILES = (".lock", ".claim")


def _remove_empty_tree(path):
    """Remove ``path`` if it holds only folders and lock files (what a refused command may have made)."""
    import pathlib

    root = pathlib.Path(path)
    if not root.is_dir() or root.is_symlink():
        return
    inside = list(root.rglob("*"))
    if any(p.is_symlink() or (p.is_file() and p.name not in LOCK_FILES) for p in inside):
        return
    for p in sorted(inside, key=lambda p: len(p.parts), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    root.rmdir()


def _dispatch(args) -> int:
    """Run the chosen command; a user error is one line and exit 2, an interrupt one line and exit 130."""
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # `dbs ... | head`: the reader left; files are written, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as exc:
        if isinstance(exc, ValueError) and not raised_by_us(exc):
            return _internal_error(args)  # a library's ValueError no check of ours turned into a message
        msg = as_flags(str(exc).splitlines()[0], getattr(args, "_flags", {})) if str(exc) else type(exc).__name__
        if _debug(args):
            import traceback

            traceback.print_exc()
        print(f"dbs {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        msg = str(exc).strip("'\"") or "interrupted"
        print(f"dbs {args.command}: {msg}", file=sys.stderr)
        return 130
    except Exception:  # a bug, not a user error: show where, and ask for a report
        return _internal_error(args)


def _internal_error(args) -> int:
    """The exception being handled is a bug: its traceback, a line asking for a report, exit 1."""
    import traceback

    traceback.print_exc()
    print(
        f"dbs {args.command}: internal error (a bug in dbs-theory {__version__}); please report it "
        "with the traceback and command line above",
        file=sys.stderr,
    )
    return 1


def _debug(args) -> bool:
    """``dbs --debug`` or ``DBS_DEBUG=1``: a refusal prints its traceback too."""
    return bool(getattr(args, "debug", False)) or os.environ.get("DBS_DEBUG", "") not in ("", "0")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
