"""Only `doctor.probe`, `doctor.fetch` and `doctor.health` touch the network; the rest of
doctor is pure.

Read with `ast` like tests/unit/test_layers.py: a pure doctor module importing asyncio or aiohttp
fails here, so its logic stays testable without a server or an event loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_layers import IO_MODULES, PACKAGE, imported, module_name

IO_SHELL = {"shim.doctor.probe", "shim.doctor.fetch", "shim.doctor.health"}
PURE_DOCTOR = sorted(
    (module_name(p), p) for p in (PACKAGE / "doctor").glob("*.py") if module_name(p) not in IO_SHELL
)


@pytest.mark.parametrize(("name", "path"), PURE_DOCTOR, ids=[m for m, _ in PURE_DOCTOR])
def test_pure_doctor_modules_touch_no_sockets(name: str, path: Path) -> None:
    io = {t for t in imported(path) if t.split(".")[0] in IO_MODULES}
    shell = {t for t in imported(path) if any(t.startswith(m) for m in IO_SHELL)}
    assert not io, f"{name} is pure but imports {sorted(io)}"
    assert not shell, f"{name} is pure but imports the I/O shell {sorted(shell)}"
