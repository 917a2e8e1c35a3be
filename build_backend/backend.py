"""The in-tree PEP 517 build backend: setuptools, asking for mypy and friends only to compile.

`pip install .` builds the wheel in a fresh environment holding what the backend asks for. Plain
Python needs setuptools alone; compiling the request path with mypyc (`MSC4191_SHIM_COMPILE=1`,
setup.py) also needs mypy and the libraries whose types mypyc checks the compiled modules
against. Listing those in pyproject's `build-system.requires` made every install download them
(mypy alone is ~12 MiB; 49 s, and impossible on an air-gapped host), so they are asked for here,
only when compiling. Every other hook is setuptools' own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from setuptools import build_meta

#: what compiling adds to the build environment: mypyc, and the packages (or stubs) whose types
#: the compiled modules use (scripts/native.py installs the same into a checkout's venv)
COMPILE_REQUIRES: Final = (
    "mypy>=1.10",
    "aiohttp>=3.14.3",
    "multidict>=6.0",
    "httptools>=0.6.1",
    "prometheus-client>=0.20",
    "types-PyYAML>=6.0",
)
#: the variable setup.py reads
COMPILE_VARIABLE: Final = "MSC4191_SHIM_COMPILE"


def compiling(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(COMPILE_VARIABLE) == "1"


def compile_requires(env: Mapping[str, str] = os.environ) -> list[str]:
    """What this build adds to setuptools' own requirements."""
    return list(COMPILE_REQUIRES) if compiling(env) else []


T = TypeVar("T")


@contextmanager
def _not_compiling() -> Iterator[None]:
    """setup.py runs without MSC4191_SHIM_COMPILE: for the hooks that only read metadata, which
    would otherwise import mypyc before it is installed, or compile once for nothing."""
    saved = os.environ.pop(COMPILE_VARIABLE, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[COMPILE_VARIABLE] = saved


def _metadata_only(hook: Callable[..., T]) -> Callable[..., T]:
    def run(*args: Any, **kwargs: Any) -> T:
        with _not_compiling():
            return hook(*args, **kwargs)

    return run


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _not_compiling():
        requires = build_meta.get_requires_for_build_wheel(config_settings)
    return [*requires, *compile_requires()]


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _not_compiling():
        requires = build_meta.get_requires_for_build_editable(config_settings)
    return [*requires, *compile_requires()]


get_requires_for_build_sdist = build_meta.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = _metadata_only(build_meta.prepare_metadata_for_build_wheel)
prepare_metadata_for_build_editable = _metadata_only(build_meta.prepare_metadata_for_build_editable)
build_wheel = build_meta.build_wheel
build_editable = build_meta.build_editable
build_sdist = build_meta.build_sdist
