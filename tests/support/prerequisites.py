"""What a test needs from outside the venv (a browser, Synapse, a tool): skip locally, fail in CI.

A developer without Chromium still gets a green run of everything else; CI (`CI` set) is meant to
have every prerequisite, so there a missing one fails the test instead of hiding it as a skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the running test for `reason`, or fail it when `CI` is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this may not be skipped)")
    pytest.skip(reason)


def require_file(path: Path, reason: str) -> Path:
    """`path` when it exists; otherwise the test is `unavailable` for `reason`."""
    if not path.exists():
        unavailable(reason)
    return path
