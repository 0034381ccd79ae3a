"""The public API: the entry points importable from the package, loaded lazily."""

import importlib
import importlib.util
import subprocess
import sys

import pytest

import dbs_theory
import sim


def test_every_exported_name_is_the_object_its_module_defines():
    for name in dbs_theory._EXPORTS:
        mod = importlib.import_module(f"dbs_theory.{dbs_theory._EXPORTS[name]}")
        assert getattr(dbs_theory, name) is getattr(mod, name), name
        assert name in mod.__all__, f"{name} is exported by dbs_theory but not in its module's __all__"
    assert set(dbs_theory.__all__) == {"__version__", *dbs_theory._EXPORTS}
    assert set(dbs_theory._EXPORTS) <= set(dir(dbs_theory))
    clash = [n for n in dbs_theory._EXPORTS if importlib.util.find_spec(f"dbs_theory.{n}") is not None]
    assert not clash, f"a submodule of the same name replaces these once imported: {clash}"
    with pytest.raises(AttributeError, match="nope"):
        dbs_theory.nope


def test_importing_the_package_loads_no_heavy_dependency():
    """A process that only imports dbs_theory has not loaded numpy, scipy, sympy or numba."""
    code = (
        "import sys, dbs_theory; print(sorted(m for m in ('numpy', 'scipy', 'sympy', 'numba', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_sim_exports_what_its_all_names():
    for name in sim.__all__:
        assert getattr(sim, name) is not None, name
