"""Collection for the whole tree: the integrations' modules are doctest-collected (pyproject's
--doctest-modules) only where their framework is installed (the hf / lightning extras), so the suite
still collects with the core install alone; their tests skip the same way."""
from importlib.util import find_spec

#: module file -> the packages importing it needs
_NEEDS = {"dbs_theory/integrations/hf.py": ("torch", "transformers", "accelerate"),
          "dbs_theory/integrations/lightning.py": ("torch", "lightning")}

collect_ignore = [path for path, pkgs in _NEEDS.items() if not all(find_spec(p) for p in pkgs)]
