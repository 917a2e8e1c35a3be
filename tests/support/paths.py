"""Where things are in the checkout, for tests in any folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: the repository root (the folder with pyproject.toml)
REPO = Path(__file__).resolve().parents[2]
#: test data kept in the repository: field vectors and the Matrix spec's schema
DATA = REPO / "tests" / "data"


def load_script(relative: str) -> ModuleType:
    """A repository script that is not in a package (`bench/awake.py`), imported by its path."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
