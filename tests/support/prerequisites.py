"""What a test needs from outside the venv (a browser, Synapse, a tool): skip locally, fail in CI.

A developer without Chromium still gets a green run of everything else; CI (`CI` set) is meant to
have every prerequisite, so there a missing one fails the test instead of hiding it as a skip.
The exception is a tool this machine's release cannot provide at all (scripts/packages.py: Ubuntu
24.04 has no usable Chromium deb, Debian 13 no Python 3.11): that skips everywhere, naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.paths import load_script


@cache
def release_lacks() -> Mapping[str, str]:
    """Each tool the tests use that this machine's release does not package -> why."""
    absent: Mapping[str, str] = load_script("scripts/packages.py").absent_tools()
    return absent


def unavailable(reason: str, tool: str | None = None) -> NoReturn:
    """Skip the running test for `reason`, or fail it when `CI` is set; skip in any case when
    `tool` is one this release cannot provide."""
    why = release_lacks().get(tool or "")
    if why is not None:
        pytest.skip(f"needs {tool}, which this release does not package: {why}")
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this may not be skipped)")
    pytest.skip(reason)


def require_file(path: Path, reason: str, tool: str | None = None) -> Path:
    """`path` when it exists; otherwise the test is `unavailable` for `reason`."""
    if not path.exists():
        unavailable(reason, tool)
    return path
