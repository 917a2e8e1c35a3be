"""The packages are the layers: imports point down, and only the shell touches sockets.

Read from the source with `ast` (nothing is imported), so a wrong-way import fails here before it
can become a cycle. The order, lowest first:

    http (pure HTTP rules) < vocabulary (the MSC4191 action names) < config < core < obs
        < proxy (the public listener) < server < doctor < cli

A package may import its own modules and anything below it. `demo/` is not the product: no product
module may import it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGE = REPO / "shim"

#: the layer of each part of the product, lowest first (a module's layer is its longest prefix)
LAYERS: dict[str, int] = {
    "shim.http": 0,
    "shim.vocabulary": 1,
    "shim.config": 2,
    "shim.core": 3,
    "shim.obs": 4,
    "shim.proxy": 5,
    "shim.server": 6,
    "shim.doctor": 7,
    "shim.cli": 8,
    "shim.__main__": 8,
    "shim": 0,  # the package's own __init__: the version, nothing else
    "shim.memo": 0,
}

#: the pure layers: no sockets, no event loop, no HTTP client or server
PURE = ("shim.http", "shim.vocabulary", "shim.core", "shim.config", "shim.obs")
#: what a pure module may not import (aiohttp's header-name constants are plain strings)
IO_MODULES = ("asyncio", "socket", "aiohttp", "httptools", "uvloop")
ALLOWED_IO = {"aiohttp.hdrs"}
#: the one pure-layer module that builds I/O settings from the configuration (an SSL context
#: for the upstream): it is derived once per load, never on the request path
IO_EXEMPT = {"shim.config.runtime"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py"))


def imported(path: Path) -> Iterator[str]:
    """Every absolute module name the file imports, at any depth (deferred imports count too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` names a.b.c (a module or a name in a.b: the prefix decides)
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def layer_of(name: str) -> tuple[str, int]:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return prefix, LAYERS[prefix]


def part_of(name: str) -> str:
    """The package a module belongs to (shim.core.deeplink -> shim.core)."""
    return ".".join(name.split(".")[:2])


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_point_down(name: str, path: Path) -> None:
    _, own = layer_of(name)
    upward = []
    for target in imported(path):
        if not target.startswith("shim.") or part_of(target) == part_of(name):
            continue
        where, layer = layer_of(target)
        if layer > own:
            upward.append(f"{target} ({where}, layer {layer})")
    assert not upward, f"{name} (layer {own}) imports upward: {', '.join(sorted(set(upward)))}"


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_the_product_never_imports_the_demo(name: str, path: Path) -> None:
    assert not [t for t in imported(path) if t == "demo" or t.startswith("demo.")]


@pytest.mark.parametrize(
    ("name", "path"),
    [(m, p) for m, p in modules() if m.startswith(PURE) and m not in IO_EXEMPT],
    ids=[m for m, _ in modules() if m.startswith(PURE) and m not in IO_EXEMPT],
)
def test_pure_layers_touch_no_sockets(name: str, path: Path) -> None:
    io = {
        t
        for t in imported(path)
        if t.split(".")[0] in IO_MODULES and not any(t.startswith(a) for a in ALLOWED_IO)
    }
    assert not io, f"{name} is pure but imports {sorted(io)}"


def test_the_layer_table_covers_every_package() -> None:
    packages = {part_of(m) for m, _ in modules()}
    assert packages <= set(LAYERS), f"give these a layer: {sorted(packages - set(LAYERS))}"


def test_a_wrong_way_import_is_caught(tmp_path: Path) -> None:
    """The check can fail: config importing the listener is upward."""
    bad = tmp_path / "bad.py"
    bad.write_text("from shim.proxy.client import Listener\n", encoding="utf-8")
    assert layer_of("shim.proxy.client")[1] > layer_of("shim.config.parse")[1]
    assert "shim.proxy.client.Listener" in set(imported(bad))
