#!/usr/bin/env bash
# Install matrix-synapse from PyPI into its own virtualenv, .venv-synapse at the repository root.
#
# A separate venv so Synapse's pins never fight the shim's. Idempotent: does nothing when
# `.venv-synapse/bin/python -c 'import synapse'` already works. The tests in tests/synapse.py use it.
# Override the interpreter with PYTHON=/path/to/python3 (Synapse needs Python 3.10 or later).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-synapse"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
    version="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("matrix-synapse"))')"
    echo "matrix-synapse $version already installed in $venv"
    exit 0
fi

echo "Installing matrix-synapse into $venv (about 20 s)..."
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet matrix-synapse
version="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("matrix-synapse"))')"
echo "matrix-synapse $version installed in $venv"
