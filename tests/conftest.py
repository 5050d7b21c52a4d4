"""Test-wide settings: hypothesis runs a fixed sequence of examples on CI (reproducible runs) and
explores new ones on developers' machines."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
