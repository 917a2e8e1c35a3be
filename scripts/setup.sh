#!/usr/bin/env bash
# Set up everything on a fresh Debian machine; idempotent, so `make demo` and `make test` call it
# every time and it costs seconds once done.
#   scripts/setup.sh          the shim's virtualenv (.venv) with its runtime dependencies: the demo
#   scripts/setup.sh --test   also the test tools, Chromium, nginx and wrk (apt), Synapse (.venv-synapse)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $("$python" --version)..."
    "$python" -m venv .venv
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${1:-demo}"
if [ ! -e "$stamp" ]; then
    extras="uvloop"
    [ "${1:-}" = "--test" ] && extras="uvloop,test"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
fi

if [ "${1:-}" = "--test" ]; then
    missing=""
    for pkg in chromium nginx-light wrk; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        echo "Installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq $missing >/dev/null
    fi
    scripts/install-synapse.sh
    [ -x scripts/install-deploy-tools.sh ] && scripts/install-deploy-tools.sh
fi
echo "setup done"
