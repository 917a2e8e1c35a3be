"""build_backend/backend.py: `pip install .` asks for mypy and the compile-time packages only when
MSC4191_SHIM_COMPILE=1, and reading metadata never imports mypyc (not installed yet then).

The hooks run as pip runs them: in a fresh interpreter, in a copy of the source tree, with
`mypyc` made unimportable, so a hook that compiled (or imported mypyc) would fail here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import REPO, load_script

backend = load_script("build_backend/backend.py")

#: what pip calls, in order, before it builds; mypyc blocked as in a fresh build environment
HOOKS = """
import json, os, sys
sys.modules["mypyc"] = None
sys.path.insert(0, "build_backend")
import backend
requires = backend.get_requires_for_build_wheel()
editable = backend.get_requires_for_build_editable()
metadata = backend.prepare_metadata_for_build_wheel(os.environ["METADATA_DIRECTORY"])
print(json.dumps({"wheel": requires, "editable": editable, "metadata": metadata}))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files pip's build sees (as the image's build context admits them)."""
    root = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(REPO / name, root / name)
    for folder in ("build_backend", "shim"):
        shutil.copytree(
            REPO / folder, root / folder, ignore=shutil.ignore_patterns("*.so", "__pycache__")
        )
    return root


def run_hooks(tree: Path, tmp_path: Path, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k != backend.COMPILE_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", HOOKS],
        cwd=tree,
        env={**clean, **env, "METADATA_DIRECTORY": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_a_plain_build_asks_for_setuptools_only(tree: Path, tmp_path: Path) -> None:
    got = run_hooks(tree, tmp_path)
    for hook in ("wheel", "editable"):
        requires = got[hook]
        assert isinstance(requires, list)
        assert not [r for r in requires if r.startswith(("mypy", "types-"))], requires
    assert str(got["metadata"]).endswith(".dist-info")


def test_a_compiling_build_asks_for_mypy_and_what_mypyc_checks(tree: Path, tmp_path: Path) -> None:
    got = run_hooks(tree, tmp_path, MSC4191_SHIM_COMPILE="1")
    for hook in ("wheel", "editable"):
        requires = got[hook]
        assert isinstance(requires, list)
        assert requires[-len(backend.COMPILE_REQUIRES) :] == list(backend.COMPILE_REQUIRES)
    assert "mypy>=1.10" in backend.COMPILE_REQUIRES


def test_pyproject_asks_for_nothing_but_setuptools() -> None:
    system = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    assert system["requires"] == ["setuptools>=77"]
    assert (system["build-backend"], system["backend-path"]) == ("backend", ["build_backend"])


def test_the_image_build_context_and_an_sdist_carry_the_backend() -> None:
    assert "!build_backend/" in (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "include build_backend/backend.py" in (REPO / "MANIFEST.in").read_text()


def test_the_compile_switch() -> None:
    assert backend.compile_requires({}) == []
    assert backend.compile_requires({"MSC4191_SHIM_COMPILE": "0"}) == []
    assert backend.compile_requires({"MSC4191_SHIM_COMPILE": "1"}) == list(backend.COMPILE_REQUIRES)
