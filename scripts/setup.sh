#!/usr/bin/env bash
# Set up everything on a fresh Debian or Ubuntu machine; idempotent, so `make demo` and `make test`
# call it every time and it costs seconds once done.
#   scripts/setup.sh          the shim's virtualenv (.venv) with its runtime dependencies: the demo
#   scripts/setup.sh --test   also the test tools; Chromium, nginx, wrk, gcc, python3-dev,
#                             Prometheus (apt, names per release: scripts/packages.py) and npm
#                             when there is none; Synapse (.venv-synapse); the hot path compiled
#                             with mypyc (scripts/native.py; plain Python if that fails, with a
#                             warning)
# Tested on Debian 12, where CI runs; on Debian 13 and Ubuntu 24.04 a package the release lacks is
# skipped with a message, and the tests that need it skip naming it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null; then
    echo "scripts/setup.sh: no $python on PATH: apt-get install python3 (3.11 or later), or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "scripts/setup.sh: $("$python" --version 2>&1) is too old: the shim needs Python 3.11 or later (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    # Debian and Ubuntu ship venv's ensurepip apart, in python3-venv (python3.X-venv)
    no_venv="scripts/setup.sh: $("$python" --version 2>&1) cannot create a virtualenv: apt-get install python3-venv (as root), then run this again"
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        echo "$no_venv" >&2
        exit 1
    fi
    echo "Creating .venv with $("$python" --version)..."
    if ! "$python" -m venv .venv >/dev/null; then
        rm -rf .venv
        echo "$no_venv" >&2
        exit 1
    fi
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
    # the package names for this release, from /etc/os-release: `install NAME`, `lean NAME`
    # (without recommends) or `absent TOOL REASON` (the tests that need it skip, naming it)
    full=""; lean=""
    while read -r kind name reason; do
        case "$kind" in
            absent) echo "Not on this release: $name ($reason); the tests that need it skip" ;;
            install|lean)
                [ "$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null)" = "install ok installed" ] \
                    && continue
                if [ "$kind" = lean ]; then lean="$lean $name"; else full="$full $name"; fi ;;
        esac
    done < <("$python" scripts/packages.py)
    # npm brings prometheus-operator's CRD schemas (scripts/install-deploy-tools.sh); Node.js from
    # NodeSource or nvm carries its own npm, so only a machine with none gets the release's
    command -v npm >/dev/null || full="$full npm"
    if [ -n "$full$lean" ]; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        # a name the archive does not have (a release packages.py does not know yet) is said and
        # dropped, not fatal: the tests that need it skip
        # shellcheck disable=SC2086  # word splitting wanted: lists of package names
        full="$("$python" scripts/packages.py available $full)"
        # shellcheck disable=SC2086
        lean="$("$python" scripts/packages.py available $lean)"
        [ -z "$full$lean" ] || echo "Installing system packages: $full $lean"
        [ -z "$full" ] || $sudo apt-get install -y -qq $full >/dev/null
        [ -z "$lean" ] || $sudo apt-get install -y -qq --no-install-recommends $lean >/dev/null
        # the tests start their own Prometheus; the service Debian starts on :9090 is not wanted
        if [[ " $lean " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
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
