#!/usr/bin/env bash
# Set up everything on a fresh Debian machine; idempotent, so `make demo` and `make test` call it
# every time and it costs seconds once done.
#   scripts/setup.sh          the shim's virtualenv (.venv) with its runtime dependencies: the demo
#   scripts/setup.sh --test   also the test tools, Chromium, nginx and wrk (apt), Synapse (.venv-synapse),
#                             and the hot path compiled with mypyc (scripts/native.py; plain Python
#                             if that fails, with a warning)
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
    # setuptools >= 77 reads pyproject's license string when scripts/native.py runs setup.py
    .venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=77"
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
fi

if [ "${1:-}" = "--test" ]; then
    missing=""
    # gcc and python3-dev: the compiled hot path (here and in the image reproduction);
    # prometheus: the Grafana dashboard's queries run on a real one (its recommended node
    # exporter and friends are not wanted, hence --no-install-recommends)
    for pkg in chromium nginx-light wrk gcc python3-dev prometheus; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        echo "Installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        lean=""; full=""
        for pkg in $missing; do
            if [ "$pkg" = prometheus ]; then lean="$lean $pkg"; else full="$full $pkg"; fi
        done
        [ -z "$full" ] || $sudo apt-get install -y -qq $full >/dev/null
        [ -z "$lean" ] || $sudo apt-get install -y -qq --no-install-recommends $lean >/dev/null
        # the tests start their own Prometheus; the service Debian starts on :9090 is not wanted
        if [ -n "$lean" ] && [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    fi
    # what the tests and the benchmarks run is what the image ships: the compiled hot path
    .venv/bin/python scripts/native.py build \
        || echo "WARNING: the hot path is not compiled; tests and benchmarks run plain Python" >&2
    scripts/install-synapse.sh
    [ -x scripts/install-deploy-tools.sh ] && scripts/install-deploy-tools.sh
fi
# a compiled module older than its source would run the old code: plain Python instead
.venv/bin/python scripts/native.py check 2>/dev/null || .venv/bin/python scripts/native.py clean
echo "setup done"
