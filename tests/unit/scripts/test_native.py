"""scripts/native.py: a compiled module older than its source is found, so no stale code runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import load_script

native = load_script("scripts/native.py")
SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _file(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkout built at t=100 from sources written at t=50."""
    proxy = tmp_path / "shim" / "proxy"
    for name in ("listener", "h1"):
        _file(proxy / f"{name}.py", 50)
        _file(proxy / f"{name}{SUFFIX}", 100)
    _file(tmp_path / f"abc__mypyc{SUFFIX}", 100)
    _file(tmp_path / "shim" / "cli.py", 500)  # not compiled: never stale
    return tmp_path


def test_a_fresh_build_is_not_stale(tree: Path) -> None:
    assert len(native.compiled(tree)) == 3
    assert native.stale(tree) == []


def test_an_edited_source_makes_its_module_and_the_shared_library_stale(tree: Path) -> None:
    os.utime(tree / "shim" / "proxy" / "h1.py", (200, 200))
    names = sorted(p.name for p in native.stale(tree))
    assert names == [f"abc__mypyc{SUFFIX}", f"h1{SUFFIX}"]


def test_a_newer_setup_py_makes_the_shared_library_stale(tree: Path) -> None:
    _file(tree / "setup.py", 300)  # a module added to, or taken off, the compiled list
    assert [p.name for p in native.stale(tree)] == [f"abc__mypyc{SUFFIX}"]


def test_a_deleted_source_makes_its_module_stale(tree: Path) -> None:
    (tree / "shim" / "proxy" / "listener.py").unlink()
    assert [p.name for p in native.stale(tree)] == [f"listener{SUFFIX}"]


def test_check_of_this_checkout_agrees_with_stale() -> None:
    # the test session only starts when this holds (tests/conftest.py)
    assert native.main(["check"]) == 0
    assert native.stale() == []


def test_the_shared_library_is_importable_from_the_venv_wherever_it_runs(tmp_path: Path) -> None:
    """After a build, .venv/bin/msc4191-shim (not run from the checkout) finds mypyc's shared
    library at the checkout's root: a finder for `*__mypyc` names, loaded by a .pth file."""
    root, site, elsewhere = tmp_path / "checkout", tmp_path / "site", tmp_path / "elsewhere"
    for folder in (root, site, elsewhere):
        folder.mkdir()
    _file(root / f"abc__mypyc{SUFFIX}", 100)  # the build's marker; never imported here
    (root / "xyz__mypyc.py").write_text("WHERE = __file__\n")  # stands in for the library
    (root / "other.py").write_text("")
    written = native.link_shared_library(root, site)
    assert sorted(p.name for p in written) == [
        "_msc4191_shim_native.pth",
        "_msc4191_shim_native.py",
    ]
    probe = (
        "import site, sys; site.addsitedir(sys.argv[1]); import xyz__mypyc; print(xyz__mypyc.WHERE)"
        "\ntry:\n    import other\nexcept ImportError:\n    print('only *__mypyc')"
    )
    # as a venv's Python runs it, writing bytecode (this machine's environment may say not to)
    writes_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(site)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=writes_bytecode,
    )
    assert done.stdout.splitlines() == [str(root / "xyz__mypyc.py"), "only *__mypyc"]
    assert list((site / "__pycache__").glob("_msc4191_shim_native.*.pyc")), "bytecode was written"
    native.unlink_shared_library(root, site)
    assert [p for p in site.rglob("*") if p.is_file()] == [], "nothing of ours is left"


def test_unlinking_leaves_another_checkouts_finder_alone(tmp_path: Path) -> None:
    ours, theirs, site = tmp_path / "ours", tmp_path / "theirs", tmp_path / "site"
    for folder in (ours, theirs, site):
        folder.mkdir()
    _file(theirs / f"abc__mypyc{SUFFIX}", 100)
    native.link_shared_library(theirs, site)
    native.unlink_shared_library(ours, site)
    assert len(list(site.iterdir())) == 2
    assert native.link_shared_library(ours, site) == []  # nothing compiled there: nothing written
    assert native.link_shared_library(theirs, None) == []  # outside a venv: nothing written
