"""dbs-theory: batch-size theory for WSD pretraining.

Subpackages: :mod:`dbs_theory.derivations` (sympy derivations) and
:mod:`dbs_theory.numeric` (their lambdified numeric exports).
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("dbs-theory")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
