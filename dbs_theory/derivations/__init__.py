"""Symbolic derivations (sympy) behind every formula dbs-theory exports.

Each function derives its results from first principles with ``diff``,
``solve``, ``limit``, ``series``, ``rsolve`` and substitution, returns a
frozen dataclass of sympy expressions, and is cached. ``dbs derive`` prints
them; :mod:`dbs_theory.theory.numeric` lambdifies them.
"""

from .bopt import BoptCondition, bopt_condition
from .mccandlish import McCandlish, mccandlish
from .multimode import Equivalence, MultiMode, equivalence, multimode
from .nqm_mode import NQMMode, nqm_mode
from .three_phase import ThreePhaseCoefficients, three_phase_coefficients

__all__ = [
    "McCandlish",
    "mccandlish",
    "NQMMode",
    "nqm_mode",
    "ThreePhaseCoefficients",
    "three_phase_coefficients",
    "BoptCondition",
    "bopt_condition",
    "MultiMode",
    "multimode",
    "Equivalence",
    "equivalence",
    "ALL",
]

#: name -> derivation function, in the order ``dbs derive`` prints them.
ALL = {
    "mccandlish": mccandlish,
    "nqm_mode": nqm_mode,
    "three_phase": three_phase_coefficients,
    "bopt_condition": bopt_condition,
    "multimode": multimode,
    "equivalence": equivalence,
}
