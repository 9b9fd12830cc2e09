"""What a test needs from the machine: skipped without it, except in CI.

Under CI (``CI=true``) every client, server and library the tests drive is installed
by ``.ci/run``, so a missing one is a failure there, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip the test (or the module) for ``reason``; under CI (``CI`` set to true, 1 or
    yes, as CI runners set it) fail it instead."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: it must be installed)")
    pytest.skip(reason, allow_module_level=True)


def require_program(name: str) -> str:
    """The path of an external program; ``missing`` without it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (needed by this test)")
    return path
