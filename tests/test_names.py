"""One name per concept: the public signatures of dbs_theory and sim use the names docs/conventions.md lists."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: modules that keep a formula's symbols (generated from the sympy derivations)
FORMULAS = {"dbs_theory.theory._formulas", "dbs_theory.theory._es_jacobian", "dbs_theory.theory._es_jacobian_code"}


def forbidden():
    """``{old name: the name to use}`` from the table between the names markers of docs/conventions.md."""
    text = (ROOT / "docs" / "conventions.md").read_text()
    table = re.search(r"<!-- names-begin -->(.*?)<!-- names-end -->", text, re.S).group(1)
    out = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for old in re.findall(r"`([^`]+)`", cells[2]):
            out[old] = cells[0].strip("`")
    return out


def public_callables():
    """``(qualified name, function)`` for every function and public method named in an ``__all__``."""
    for pkg in ("dbs_theory", "sim"):
        mods = [pkg] + [m.name for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + ".")]
        for name in mods:
            if name in FORMULAS or ".derivations" in name or ".integrations" in name:
                continue
            mod = importlib.import_module(name)
            for attr in getattr(mod, "__all__", []):
                obj = getattr(mod, attr, None)
                if inspect.isfunction(obj):
                    yield f"{name}.{attr}", obj
                elif inspect.isclass(obj):
                    for k, v in vars(obj).items():
                        if not k.startswith("_") and inspect.isfunction(v):
                            yield f"{name}.{attr}.{k}", v


def test_the_conventions_table_is_read():
    names = forbidden()
    assert names["batch"] == "batch_size" and names["D"] == "data" and names["L_star"] == "target"


def test_public_signatures_use_the_conventions_names():
    bad = forbidden()
    found = sorted(
        {f"{q}({p}): use {bad[p]}" for q, f in public_callables() for p in inspect.signature(f).parameters if p in bad}
    )
    assert not found, "\n".join(found)


def test_an_old_documented_name_still_works_with_a_warning():
    from dbs_theory.schedules.batch_schedules import constant_batch

    with pytest.warns(DeprecationWarning, match=r"constant_batch\(B=...\) is deprecated; use batch_size="):
        assert constant_batch(B=64, unit="examples")(10) == 64
    with pytest.raises(TypeError, match="both 'B'"):
        constant_batch(batch_size=64, B=64)
