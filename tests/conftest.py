"""Hypothesis settings: random exploration locally, a fixed derandomized search when ``CI=true``."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")
