"""Export the derived formulas as plain numpy code: ``python -m dbs_theory.derivations.export``.

The registry below names every field of :mod:`dbs_theory.derivations` that
:mod:`dbs_theory.theory.numeric` evaluates. :func:`write` lambdifies each one
(``cse=True``) and writes the generated functions to
``dbs_theory/theory/_formulas.py``, so a process that evaluates formulas imports
numpy code instead of re-running the sympy derivations (about 2-5 s on the
first call). ``tests/test_numeric.py`` checks that the generated file still
evaluates to what the derivations give; rerun this module after changing a
derivation.
"""

from __future__ import annotations

import ast
import inspect
import sys
from functools import cache
from pathlib import Path

import numpy as np
import sympy as sp

from . import bopt_condition, mccandlish, multimode, nqm_mode, three_phase_coefficients

__all__ = ["REGISTRY", "field", "derive", "lambdified", "source", "write", "TARGET"]

TARGET = Path(__file__).resolve().parent.parent / "theory" / "_formulas.py"
_Q = sp.Symbol("Q")


def _entry(derivation, field, *args):
    """A registry entry: (derivation function, field getter, argument names)."""
    return derivation, field, args


#: name -> (derivation, field of its result, argument symbol names).
REGISTRY = {
    "spectral_term": _entry(multimode, lambda m: m.spectral_sum.function, "h[i]", "c[i]", "eta"),
    "floor_Q": _entry(multimode, lambda m: m.floor.subs(m.spectral_sum, _Q), "Q", "eta", "B", "L_irr"),
    "bmin_Q": _entry(multimode, lambda m: m.B_min.subs(m.spectral_sum, _Q), "Q", "eta", "L_irr", "L_star"),
    # The contraction factor a = (1 - eta h)^2 stays an argument: as a
    # number it is >= 0, so a**t is real where (eta h - 1)**(2t) is not.
    "a": _entry(nqm_mode, lambda o: o.a, "h", "eta"),
    "m_t": _entry(nqm_mode, lambda o: o.m_t, "t", "a", "c", "eta", "B", "m0"),
    "loss_t": _entry(nqm_mode, lambda o: o.loss_t, "t", "a", "h", "c", "eta", "B", "m0", "L_irr"),
    "floor": _entry(nqm_mode, lambda o: o.floor, "h", "c", "eta", "B", "L_irr"),
    "S": _entry(nqm_mode, lambda o: o.S, "a", "h", "c", "eta", "B", "m0", "L_irr", "L_star"),
    "K": _entry(three_phase_coefficients, lambda t: t.definitions["K"], "h", "c", "eta"),
    "q": _entry(three_phase_coefficients, lambda t: t.definitions["q"], "h", "L_irr", "L_star"),
    "lam": _entry(three_phase_coefficients, lambda t: t.definitions["lam"], "h", "eta"),
    **{
        k: _entry(three_phase_coefficients, (lambda k: lambda t: getattr(t, k))(k), "K", "q", "lam", "m0")
        for k in ("S_min", "B_m1", "B_0", "A1", "A0")
    },
    "C": _entry(three_phase_coefficients, lambda t: t.C, "K", "q", "lam", "m0", "B"),
    "S_red": _entry(three_phase_coefficients, lambda t: t.S, "K", "q", "lam", "m0", "B"),
    "G": _entry(bopt_condition, lambda b: b.G, "v", "r"),
    "bopt_v": _entry(bopt_condition, lambda b: b.bopt, "K", "m0", "v"),
    "B_noise": _entry(mccandlish, lambda m: m.B_noise, "G2", "GHG", "trHS"),
    "B_simple": _entry(mccandlish, lambda m: m.B_simple, "trS", "G2"),
    "E_of_S": _entry(mccandlish, lambda m: m.E_of_S, "S", "Smin", "Emin"),
}


def _symbol(result, name):
    if name == "Q":
        return _Q
    if name.endswith("[i]"):  # an indexed multimode symbol
        sy = result.symbols
        return sy[name[0]][sy["i"]]
    if name in result.symbols:
        return result.symbols[name]
    return nqm_mode().symbols[name]


def field(name: str):
    """``(expr, symbols)``: the derivation's own expression for export ``name`` and its argument symbols."""
    derivation, get, names = REGISTRY[name]
    result = derivation()
    return get(result), tuple(_symbol(result, n) for n in names)


@cache
def derive(name: str):
    """``(expr, names)``: the expression of export ``name`` in plain symbols called ``names``."""
    expr, symbols = field(name)
    plain = tuple(n.removesuffix("[i]") for n in REGISTRY[name][2])
    subs = {s: sp.Symbol(p, **s.assumptions0) for s, p in zip(symbols, plain)}
    return expr.xreplace(subs), plain


def lambdified(name: str):
    """A fresh ``sympy.lambdify`` of export ``name`` (slow: runs its derivation)."""
    expr, names = derive(name)
    return sp.lambdify([sp.Symbol(n, **_free(expr, n)) for n in names], expr, modules="numpy", cse=True)


def _free(expr, n):
    """The assumptions of the free symbol called ``n`` in ``expr`` (so lambdify's arguments match it)."""
    hit = [s for s in expr.free_symbols if s.name == n]
    return hit[0].assumptions0 if hit else {}


def source(name: str) -> tuple[str, set]:
    """``(code of def name(...), numpy names it uses)`` for export ``name``."""
    code = inspect.getsource(lambdified(name)).replace("def _lambdifygenerated(", f"def {name}(", 1)
    tree = ast.parse(code)
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    bound = {a.arg for a in fn.args.args}
    bound |= {
        t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in bound}
    missing = sorted(u for u in used if not hasattr(np, u))
    if missing:
        raise RuntimeError(f"export {name!r} uses names numpy lacks: {missing}")
    return code, used


def write(path=TARGET) -> Path:
    """Write every export to ``path`` as a numpy-only module; returns the path."""
    parts, used = [], set()
    for name in REGISTRY:
        code, names = source(name)
        parts.append(code)
        used |= names
    header = [
        '"""Generated by ``python -m dbs_theory.derivations.export`` from the sympy derivations: do not edit.',
        "",
        "Each function is one field of :mod:`dbs_theory.derivations`, lambdified with",
        "common-subexpression elimination; see ``REGISTRY`` in that module for which.",
        '"""',
        f"from numpy import {', '.join(sorted(used))}  # noqa: F401" if used else "",
        "",
        "__all__ = ["
        + ",\n           ".join(
            ", ".join(repr(n) for n in list(REGISTRY)[i : i + 8]) for i in range(0, len(REGISTRY), 8)
        )
        + "]",
        "",
    ]
    text = "\n".join(header) + "\n\n" + "\n\n".join(p.rstrip() + "\n" for p in parts)
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)


if __name__ == "__main__":
    print(f"wrote {write(sys.argv[1] if len(sys.argv) > 1 else TARGET)}")
