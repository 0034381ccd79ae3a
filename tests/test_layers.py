"""The package's import graph, read from the source: no circle, imports flowing one way, torch only where allowed.

Every ``import`` statement counts, also those inside functions (a late import
still ties two modules together). A module importing its own parent package
(``from . import EXPERIMENTS``) is not an edge: the parent is initialised first.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: lower layers first: a package may import only those before it
LAYERS = ["dbs_theory", "sim", "validate", "dbs_report"]
#: the only modules outside ``validate`` that may import torch (the demo trains through validate)
TORCH_OUTSIDE_VALIDATE = {"dbs_report.demo"}


def modules():
    """``{dotted name: path}`` of every module of the four packages."""
    out = {}
    for pkg in LAYERS:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(name, path, known):
    """The dotted names ``name`` imports (modules of the packages, or others by top-level name)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module
            )
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in known else base)
    return {m for m in out if m != name and not name.startswith(m + ".")}


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {n: imports(n, p, known) for n, p in known.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative enough for this size)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others(graph):
    assert cycles(graph) == []


def test_imports_flow_one_way_between_the_packages(graph):
    back = [
        (m, d)
        for m, deps in graph.items()
        for d in deps
        if d.split(".")[0] in LAYERS and LAYERS.index(d.split(".")[0]) > LAYERS.index(m.split(".")[0])
    ]
    assert not back, f"imports against the layering {' <- '.join(LAYERS)}: {back}"


#: ``dbs_theory``'s rooms, lower first: a module may import its own room and those before it. ``base`` is the
#: package's root helpers (errors, messages, io, table, deprecation); ``top`` its ``__init__`` and ``cli``.
ROOMS = ["base", "derivations", "logs", "schedules", "theory", "measure", "rules", "integrations", "commands", "top"]


def room(module):
    """The room of a ``dbs_theory`` module (``None`` outside the package)."""
    parts = module.split(".")
    if parts[0] != "dbs_theory":
        return None
    if len(parts) == 1 or parts[1] == "cli":
        return "top"
    return parts[1] if parts[1] in ROOMS else "base"


def upward_imports(graph):
    """``(module, imported)`` pairs where a room of ``dbs_theory`` imports a later room."""
    return sorted(
        (m, d)
        for m, deps in graph.items()
        for d in deps
        if room(m) and room(d) and ROOMS.index(room(d)) > ROOMS.index(room(m))
    )


def test_the_room_check_catches_a_planted_upward_import():
    planted = {
        "dbs_theory.logs.runs": {"dbs_theory.measure.curves", "dbs_theory.errors"},
        "dbs_theory.measure.fit": {"dbs_theory.theory.laws", "dbs_theory.logs.schemas"},
        "dbs_theory.errors": {"dbs_theory.cli"},
        "dbs_theory.theory.modal": {"dbs_theory.schedules.lr_plan"},
        "sim.nqm": {"dbs_theory.rules"},
    }
    assert upward_imports(planted) == [
        ("dbs_theory.errors", "dbs_theory.cli"),
        ("dbs_theory.logs.runs", "dbs_theory.measure.curves"),
    ]
    assert room("dbs_theory.logs.readers.hf") == "logs" and room("dbs_theory.table") == "base"


def test_the_rooms_of_dbs_theory_import_downward_only(graph):
    assert set(map(room, filter(room, graph))) <= set(ROOMS)
    up = upward_imports(graph)
    assert not up, f"imports against dbs_theory's rooms {' <- '.join(ROOMS)}: {up}"


#: frameworks the core install never needs: torch (validate's trainer), and what the integrations wrap
FRAMEWORKS = ("torch", "transformers", "accelerate", "lightning", "pytorch_lightning")
#: the only package whose modules may import any of FRAMEWORKS (each module its own, inside itself)
INTEGRATIONS = "dbs_theory.integrations"


def framework_strays(graph):
    """Modules importing a framework where none is allowed: torch only in ``validate``,
    :data:`TORCH_OUTSIDE_VALIDATE` and ``dbs_theory.integrations.<module>``; the others only in the latter
    (the integrations package itself, its ``__init__``, imports none)."""
    out = set()
    for m, deps in graph.items():
        for d in deps:
            top = d.split(".")[0]
            if top not in FRAMEWORKS or m.startswith(INTEGRATIONS + "."):
                continue
            if top == "torch" and (m.split(".")[0] == "validate" or m in TORCH_OUTSIDE_VALIDATE):
                continue
            out.add(m)
    return sorted(out)


def test_the_framework_check_catches_a_planted_import():
    planted = {
        "dbs_theory.measure.fit": {"torch"},
        "dbs_theory.integrations": {"transformers"},
        "validate.train": {"torch.nn"},
        "validate.x": {"lightning"},
        "dbs_report.demo": {"torch"},
        "dbs_theory.integrations.hf": {"transformers", "torch"},
        "sim.model": {"numpy"},
    }
    assert framework_strays(planted) == ["dbs_theory.integrations", "dbs_theory.measure.fit", "validate.x"]


def test_torch_is_imported_only_by_validate_and_named_integrations(graph):
    stray = framework_strays(graph)
    assert not stray, f"the core install must stay free of {', '.join(FRAMEWORKS)}: {stray}"


def test_importing_the_package_and_the_integrations_map_loads_no_framework():
    code = (
        "import sys, dbs_theory, dbs_theory.integrations, dbs_theory.integrations._stream, "
        "dbs_theory.schedules.accumulation; print(sorted(m for m in " + repr(FRAMEWORKS) + " if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
