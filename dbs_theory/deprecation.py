"""Old keyword names kept working for a while: :func:`renamed` maps them to today's (docs/conventions.md,
"Units and names"), with a ``DeprecationWarning`` naming both."""

from __future__ import annotations

import functools
import warnings

__all__ = ["renamed"]


def renamed(**old_to_new):
    """Decorator: a call that passes ``old=value`` is passed on as ``new=value`` with a ``DeprecationWarning``
    (passing both is a ``TypeError``). ``inspect.signature`` shows only the new names.

    >>> @renamed(batch="batch_size")
    ... def f(batch_size): return batch_size
    >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
    >>> f(batch=4)
    4
    """

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old!r} (its old name) and {new!r}")
                    warnings.warn(
                        f"{fn.__name__}({old}=...) is deprecated; use {new}=", DeprecationWarning, stacklevel=2
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call

    return wrap
