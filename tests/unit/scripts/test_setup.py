"""scripts/setup.sh before anything is installed: an interpreter that cannot make a virtualenv
(Debian's python3 without python3-venv) or is too old is one actionable line, and no half-made
.venv is left behind. Run on a copy of the script, with stand-in interpreters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def stand_in(tmp_path: Path, body: str) -> Path:
    """A `python3` that runs the real one, except where `body` says otherwise."""
    path = tmp_path / "python3"
    path.write_text(f'#!/usr/bin/env bash\n{body}\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


def run_setup(checkout: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(python)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_python_without_venv_gets_one_line_naming_the_package(
    checkout: Path, tmp_path: Path
) -> None:
    # Debian's python3 without python3-venv: ensurepip cannot be imported
    python = stand_in(tmp_path, 'case "$*" in *ensurepip*) exit 1 ;; esac')
    done = run_setup(checkout, python)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("scripts/setup.sh: Python 3.")
    assert line.endswith(
        "cannot create a virtualenv: apt-get install python3-venv (as root), then run this again"
    )
    assert not (checkout / ".venv").exists()


def test_a_venv_that_fails_half_way_is_removed(checkout: Path, tmp_path: Path) -> None:
    # the import succeeds, creating the venv does not (ensurepip refuses): nothing is left
    python = stand_in(tmp_path, 'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; exit 1; fi')
    done = run_setup(checkout, python)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].endswith("then run this again")
    assert not (checkout / ".venv").exists()


def test_a_python_older_than_3_11_is_named(checkout: Path, tmp_path: Path) -> None:
    python = stand_in(
        tmp_path,
        'case "$*" in *version_info*) exit 1 ;; --version) echo "Python 3.9.2"; exit ;; esac',
    )
    done = run_setup(checkout, python)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "scripts/setup.sh: Python 3.9.2 is too old: the shim needs Python 3.11 or later "
        "(set PYTHON=/path/to/python3.11)"
    ]
