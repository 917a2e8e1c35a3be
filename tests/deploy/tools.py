"""The deployment tools the tests in this folder run, from scripts/install-deploy-tools.sh."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO
from tests.support.prerequisites import unavailable

ROOT = REPO
DEPLOY = ROOT / "deploy"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: prometheus-operator's CRD schemas (npm, @kubernetes-models/prometheus-operator) and the script
#: that validates objects against them
CRD = Path(__file__).resolve().parent / "crd"
INSTALL_HINT = "run scripts/install-deploy-tools.sh"

Manifest = dict[str, Any]


def require_tool(name: str) -> str:
    """The tool from the project's venv (or PATH); skip with the install hint, fail under CI."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed; {INSTALL_HINT}")
    return found


def kustomize_command() -> list[str]:
    """A real kustomize: `kubectl kustomize` (kustomize v5) from the venv, else from PATH."""
    kubectl = require_tool("kubectl")
    version = subprocess.run(
        [kubectl, "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    if "Kustomize Version: v5" not in version:
        unavailable(f"{kubectl} bundles no kustomize v5 ({version.strip()}); {INSTALL_HINT}")
    return [kubectl, "kustomize"]


def load_all(text: str) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def validate_crds(docs: list[Manifest]) -> subprocess.CompletedProcess[str]:
    """tests/deploy/crd/validate.mjs on `docs`: prometheus-operator's own schemas, as the API
    server applies them (one line per object, exit 1 when one is invalid)."""
    node = shutil.which("node")
    if node is None:
        unavailable(f"node is not installed (Node.js 14 or later); {INSTALL_HINT}")
    if not (CRD / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        unavailable(f"prometheus-operator's CRD schemas are not installed; {INSTALL_HINT}")
    return subprocess.run(
        [node, str(CRD / "validate.mjs")],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
