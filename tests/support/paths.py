"""Where things are in the checkout, for tests in any folder."""

from __future__ import annotations

from pathlib import Path

#: the repository root (the folder with pyproject.toml)
REPO = Path(__file__).resolve().parents[2]
#: test data kept in the repository: field vectors and the Matrix spec's schema
DATA = REPO / "tests" / "data"
