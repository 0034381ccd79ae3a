"""Errors as a type: what a user can act on, told apart from a bug.

:class:`UserError` is a refusal the package means to make: a bad value, file
or option, said in one line that names it. It subclasses ``ValueError``, so
code that catches ``ValueError`` still catches it. The command line
(:mod:`dbs_theory.cli`) prints a refusal as one line and exits 2; an
exception the package did not raise itself -- a ``ValueError`` from inside
numpy, scipy or the standard library that no check turned into a message -- is
a bug, printed with its traceback (exit 1). ``dbs --debug`` (or ``DBS_DEBUG=1``)
prints the traceback of a refusal too.

The library names its arguments, not flags: a message about one argument
starts with the argument's name (``batch_sizes: ...``, or ``device='cuda': ...``), and an
argument named inside a message is in backquotes (```resume```). A command module lists
the arguments its flags set (``FLAGS = {"batch_sizes": "--batch-size"}``) and
the command line reports such a message, or warning, under the flag
(:func:`as_flags`).
"""

from __future__ import annotations

__all__ = ["UserError", "OWN_PACKAGES", "raised_by_us", "as_flags"]

#: the packages whose own raises are refusals (a ValueError raised in their code names what is wrong)
OWN_PACKAGES = ("dbs_theory", "sim", "validate", "dbs_report")


class UserError(ValueError):
    """A refusal a user can act on: its message is one line naming the bad value (and, in a command, the flag)."""


def raised_by_us(exc: BaseException) -> bool:
    """True when ``exc`` is a :class:`UserError`, or was raised in a module of :data:`OWN_PACKAGES` (the last
    frame of its traceback; a builtin such as ``float`` or ``open`` raises in its caller's frame).

    >>> raised_by_us(UserError("x"))
    True
    """
    if isinstance(exc, UserError):
        return True
    tb = exc.__traceback__
    if tb is None:
        return True  # not raised yet: made by the package, e.g. collected and raised later
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in OWN_PACKAGES


def as_flags(message: str, flags) -> str:
    """``message`` with the argument names it holds written as the flags that set them (module doc): a
    leading ``name: `` or ``name=value: ``, and any ```name``` in backquotes; other text as it is.

    >>> as_flags("batch_sizes: run 'a' is not in the logs", {"batch_sizes": "--batch-size"})
    "--batch-size: run 'a' is not in the logs"
    >>> as_flags("device='cuda': absent; use `device` 'cpu'", {"device": "--device"})
    "--device 'cuda': absent; use --device 'cpu'"
    >>> as_flags("batch_sizes_x: kept, `other` too", {"batch_sizes": "--batch-size"})
    'batch_sizes_x: kept, `other` too'
    """
    import re

    head, sep, rest = message.partition(": ")
    name, eq, value = head.partition("=")
    if sep and name in flags and " " not in head:
        message = f"{flags[name]}{' ' + value if eq else ''}: {rest}"
    return re.sub(r"`(\w+)`", lambda m: flags.get(m.group(1), m.group(0)), message)
