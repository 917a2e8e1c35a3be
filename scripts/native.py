"""The compiled hot path in a checkout: build it, or remove it, and never run a stale one.

    .venv/bin/python scripts/native.py build    compile (setup.py's list) unless already current
    .venv/bin/python scripts/native.py clean    remove every compiled module: plain Python again
    .venv/bin/python scripts/native.py check    exit 1, naming them, if any is older than its source

`build` compiles in place with mypyc (`MSC4191_SHIM_COMPILE=1 setup.py build_ext --inplace`):
each compiled module is a `.so` beside its `.py`, and Python imports the `.so` first. An edit to
the `.py` then changes nothing until the next build, which is why `check` exists (the test
suite's first step) and why `make test` builds every time (a no-op when nothing changed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def clean() -> None:
    for path in compiled():
        path.unlink()


def build() -> int:
    if compiled() and not stale():
        print("compiled modules are current")
        return 0
    clean()
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
