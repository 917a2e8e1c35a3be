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
IO_EXEMPT = {"shim.proxy.runtime"}


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


# -- no circles: no two modules import each other, at any distance --------------------------

#: the packages whose circles are being taken apart (issue 23); a package leaves this set when
#: it has none (strict: the test fails as soon as it passes, so that the entry is removed)
CIRCLES_BEING_REMOVED: set[str] = set()


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Which of `files`' modules each imports (TYPE_CHECKING and deferred imports included:
    mypyc and mypy follow them, and a circle under TYPE_CHECKING is still two modules that
    cannot be understood apart)."""
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = set()
        for target in imported(path):
            # `from a.b import c`: the module a.b.c, or the name c of module a.b
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, with an
    explicit stack), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            target = next(edges, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _parts() -> list[object]:
    parts = sorted({part_of(m) for m, _ in modules()})
    return [
        pytest.param(
            part,
            marks=pytest.mark.xfail(strict=True, reason="issue 23: its circles are being removed"),
        )
        if part in CIRCLES_BEING_REMOVED
        else part
        for part in parts
    ]


@pytest.mark.parametrize("part", _parts())
def test_no_import_circles(part: str) -> None:
    """A circle can only be inside one package (`test_imports_point_down` forbids the others)."""
    found = [c for c in circles(import_graph(dict(modules()))) if part_of(c[0]) == part]
    assert not found, f"modules that import each other: {found}"


def test_a_circle_is_caught(tmp_path: Path) -> None:
    """The check can fail: two modules that import each other, one only for its types."""
    (tmp_path / "a.py").write_text("from pkg.b import B\n", encoding="utf-8")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        encoding="utf-8",
    )
    (tmp_path / "c.py").write_text("import pkg.a\n", encoding="utf-8")
    files = {f"pkg.{p.stem}": p for p in tmp_path.glob("*.py")}
    assert circles(import_graph(files)) == [["pkg.a", "pkg.b"]]


# -- no private names of libraries (or of other modules) -----------------------------------

#: modules that still read a library's private name; strict, as `CIRCLES_BEING_REMOVED`
PRIVATE_NAMES_BEING_REMOVED: set[str] = set()


def private_reaches(path: Path) -> Iterator[str]:
    """Private names (`_name`) the module reads but does not define: another module's or a
    library's internals, which change without notice (as prometheus-client's did).

    A module's own are what it assigns (`self._x = ...`, `_X = ...`), defines (`def _f`,
    `class _C`) or lists in `__slots__`; `self._x`, `cls._x` and `super()._x` are its own
    class's (inherited, perhaps).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.id if isinstance(node, ast.Name) else node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # `__slots__` entries (other strings name nothing)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if ast.unparse(node.value) not in ("self", "cls", "super()"):
                yield f"line {node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    yield f"line {node.lineno}: from {node.module} import {alias.name}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_cases() -> list[object]:
    return [
        pytest.param(
            name,
            path,
            id=name,
            marks=pytest.mark.xfail(strict=True, reason="issue 23: no private names of libraries"),
        )
        if name in PRIVATE_NAMES_BEING_REMOVED
        else pytest.param(name, path, id=name)
        for name, path in modules()
    ]


@pytest.mark.parametrize(("name", "path"), _private_cases())
def test_no_private_names_of_others(name: str, path: Path) -> None:
    found = list(private_reaches(path))
    assert not found, f"{name} reads private names it does not define: {found}"


def test_a_private_name_is_caught(tmp_path: Path) -> None:
    """The check can fail: what obs/metrics.py did with prometheus-client's internals."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from prometheus_client import values\n"
        "from somewhere import _hidden\n"
        "class Mine:\n"
        "    __slots__ = ('_slot',)\n"
        "    def __init__(self, histogram):\n"
        "        self._own = histogram._sum\n"
        "        self._slot = values.ValueClass._multiprocess\n"
        "    def use(self, other):\n"
        "        return other._own, other._slot, super()._base(), self._inherited\n",
        encoding="utf-8",
    )
    assert sorted(private_reaches(bad)) == [
        "line 2: from somewhere import _hidden",
        "line 6: histogram._sum",
        "line 7: values.ValueClass._multiprocess",
    ]
