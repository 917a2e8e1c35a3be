"""The compiled hot path in a checkout: build it, or remove it, and never run a stale one.

    .venv/bin/python scripts/native.py build    compile (setup.py's list) unless already current
    .venv/bin/python scripts/native.py clean    remove every compiled module: plain Python again
    .venv/bin/python scripts/native.py check    exit 1, naming them, if any is older than its source

`build` compiles in place with mypyc (`MSC4191_SHIM_COMPILE=1 setup.py build_ext --inplace`):
each compiled module is a `.so` beside its `.py`, and Python imports the `.so` first. An edit to
the `.py` then changes nothing until the next build, which is why `check` exists (the test
suite's first step) and why `make test` builds every time (a no-op when nothing changed).

Before compiling, `build` installs what compiling needs into this interpreter when it is missing
(mypy and the packages mypyc checks against: the build backend's list), and stops with one line
naming the Debian packages when there is no C compiler or no Python headers. After it, mypyc's
shared library (at the checkout's root) is linked into the venv's site-packages: the editable
install puts only `shim/` on the path, so `.venv/bin/msc4191-shim` could not import it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def compiled(root: Path = ROOT) -> list[Path]:
    """The package's compiled modules, and mypyc's shared library at the top of the checkout."""
    return sorted([*(root / "shim").rglob("*.so"), *root.glob("*__mypyc.*.so")])


def stale(root: Path = ROOT) -> list[Path]:
    """Compiled modules older than their source; mypyc's shared library older than any of them
    or than setup.py (which lists what is compiled)."""
    every = compiled(root)
    modules = [so for so in every if so.parent != root]
    sources = [so.with_name(so.name.split(".", 1)[0] + ".py") for so in modules]
    found = [so for so, py in zip(modules, sources, strict=True) if _older(so, py)]
    inputs = [py for py in [*sources, root / "setup.py"] if py.exists()]
    newest = max((py.stat().st_mtime for py in inputs), default=0.0)
    found += [so for so in every if so.parent == root and so.stat().st_mtime < newest]
    return found


def _older(so: Path, py: Path) -> bool:
    return not py.exists() or so.stat().st_mtime < py.stat().st_mtime


def site_packages() -> Path | None:
    """This venv's site-packages; None outside a venv (a system Python's is not ours to change)."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sysconfig.get_paths()["purelib"])


#: the module and .pth file `link_shared_library` writes into site-packages
FINDER_MODULE = "_msc4191_shim_native"
FINDER = """\
# written by scripts/native.py build, removed by scripts/native.py clean: mypyc's shared library
# ({name}) lives at the checkout's root, which the editable install does not put on sys.path
import importlib.machinery
import sys

ROOT = {root!r}


class SharedLibraryFinder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if "." in name or not name.endswith("__mypyc"):
            return None
        return importlib.machinery.PathFinder.find_spec(name, [ROOT])


sys.meta_path.append(SharedLibraryFinder)
"""


def link_shared_library(root: Path = ROOT, site: Path | None = None) -> list[Path]:
    """Make mypyc's shared library at `root` importable from the venv whatever the current folder
    (a finder for `*__mypyc` names only, loaded by a .pth file): the files written.

    Not a symlink: a compiled package's `__path__` is computed from the shared library's file
    name, so it must be imported from `root` itself.
    """
    if site is None or not list(root.glob("*__mypyc.*.so")):
        return []
    module = site / f"{FINDER_MODULE}.py"
    module.write_text(FINDER.format(name="*__mypyc.*.so", root=str(root)), encoding="utf-8")
    pth = site / f"{FINDER_MODULE}.pth"
    pth.write_text(f"import {FINDER_MODULE}\n", encoding="utf-8")
    return [module, pth]


def unlink_shared_library(root: Path = ROOT, site: Path | None = None) -> None:
    """Remove what `link_shared_library` wrote for this checkout."""
    if site is None:
        return
    module = site / f"{FINDER_MODULE}.py"
    if module.exists() and repr(str(root)) in module.read_text(encoding="utf-8"):
        module.unlink()
        (site / f"{FINDER_MODULE}.pth").unlink(missing_ok=True)
        # and its bytecode, which Python wrote when the .pth first imported it
        for cached in (site / "__pycache__").glob(f"{FINDER_MODULE}.*.pyc"):
            cached.unlink()


def backend() -> ModuleType:
    """build_backend/backend.py, which lists what compiling needs (one list for pip and here)."""
    spec = importlib.util.spec_from_file_location("backend", ROOT / "build_backend" / "backend.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing_toolchain() -> str | None:
    """What the C side of compiling lacks here, as the line to print; None when nothing is."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    lacking = []
    if shutil.which(compiler) is None:
        lacking.append(f"a C compiler ({compiler})")
    if not headers.exists():
        lacking.append(f"Python's headers ({headers})")
    if not lacking:
        return None
    return (
        f"native.py: cannot compile without {' and '.join(lacking)}: apt-get install gcc "
        "python3-dev (scripts/setup.sh --test installs them); the shim runs as plain Python"
    )


def install_compile_requires() -> int:
    """pip-install what compiling needs into this interpreter, when mypyc is not there yet."""
    if importlib.util.find_spec("mypyc") is not None:
        return 0
    requires = list(backend().COMPILE_REQUIRES)
    print(f"installing what compiling needs: {' '.join(requires)}", flush=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", *requires]
    return subprocess.run(command, check=False).returncode


def clean() -> None:
    for path in compiled():
        path.unlink()
    unlink_shared_library(ROOT, site_packages())


def build() -> int:
    if compiled() and not stale():
        link_shared_library(ROOT, site_packages())
        print("compiled modules are current")
        return 0
    clean()
    toolchain = missing_toolchain()
    if toolchain is not None:
        print(toolchain, file=sys.stderr)
        return 1
    if install_compile_requires() != 0:
        print(
            "native.py: installing mypy failed (above); the shim runs as plain Python",
            file=sys.stderr,
        )
        return 1
    print("compiling the hot path with mypyc (about a minute)...", flush=True)
    env = dict(os.environ, MSC4191_SHIM_COMPILE="1")
    command = [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        clean()  # never half a build: plain Python throughout instead
        print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
        print("native.py: compiling failed (above); the shim runs as plain Python", file=sys.stderr)
        return 1
    for path in compiled():  # copied out of build/ with their old times when nothing changed
        path.touch()
    link_shared_library(ROOT, site_packages())
    print(f"compiled {len(compiled()) - 1} modules")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "build":
        return build()
    if command == "clean":
        clean()
        return 0
    if command == "check":
        found = stale()
        for path in found:
            print(f"stale: {path.relative_to(ROOT)} is older than its source", file=sys.stderr)
        return 1 if found else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
