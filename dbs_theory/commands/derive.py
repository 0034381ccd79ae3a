"""``dbs derive [NAME] [--latex]``: print the derivations and their checks."""

from __future__ import annotations

import dataclasses

__all__ = ["HELP", "add_arguments", "run", "render"]

HELP = "print the symbolic derivations (McCandlish law, NQM stable phase, Bopt proof)"
EXAMPLES = """examples:
  dbs derive                  # every derivation, with its checks
  dbs derive nqm_mode --latex"""


def add_arguments(parser):
    from ..derivations import ALL

    parser.add_argument(
        "name",
        nargs="?",
        choices=sorted(ALL),
        metavar="NAME",
        help="one derivation: " + ", ".join(ALL) + " (default: all)",
    )
    parser.add_argument("--latex", action="store_true", help="print LaTeX instead of text")


def _checks(name, d):
    """Identities each derivation must satisfy, as (label, expression, expected)."""
    import sympy as sp

    if name == "mccandlish":
        return [("(S/Smin-1)(E/Emin-1)", d.hyperbola, 1), ("B_crit - B_noise", d.B_crit - d.symbols["Bn"], 0)]
    if name == "nqm_mode":
        return [("m(t+1) - recursion(m(t))", d.m_t_check, 0)]
    if name == "three_phase":
        return [("A1 - B_min", d.A1 - d.B_min, 0), ("A0", d.A0, 0)]
    if name == "bopt_condition":
        w = d.symbols["w"]
        return [("G(r/2) - (1 - w + log w)", d.G_at_half - (1 - w + sp.log(w)), 0)]
    if name == "multimode":
        from ..derivations import nqm_mode

        return [
            ("floor(d=1) - single-mode floor", d.floor_d1 - nqm_mode().floor, 0),
            ("B_min(d=1) - single-mode B_min", d.B_min_d1 - nqm_mode().B_min, 0),
        ]
    return []


def render(name, latex=False):
    """The text ``dbs derive NAME`` prints."""
    import sympy as sp

    from ..derivations import ALL

    fn = ALL[name]
    d = fn()
    fmt = sp.latex if latex else (lambda e: sp.pretty(e, use_unicode=False, wrap_line=False))
    lines = [f"== {name}: {(fn.__doc__ or '').strip().splitlines()[0]}"]
    for field in dataclasses.fields(d):
        value = getattr(d, field.name)
        if field.name in ("symbols", "definitions"):
            value = {k: fmt(v) for k, v in value.items()} if field.name == "definitions" else None
            if value:
                lines += [f"-- {k} := {v}" for k, v in value.items()]
            continue
        text = value if isinstance(value, str) else fmt(value)
        sep = "\n" if "\n" in text else " "
        lines.append(f"-- {field.name} ={sep}{text}")
    for label, expr, expected in _checks(name, d):
        got = sp.simplify(expr)
        lines.append(
            f"check: {label} simplifies to {fmt(got)} ({'ok' if sp.simplify(got - expected) == 0 else 'FAILED'})"
        )
    return "\n".join(lines)


def run(args):
    from ..derivations import ALL

    for name in [args.name] if args.name else list(ALL):
        print(render(name, args.latex))
        print()
    return 0
