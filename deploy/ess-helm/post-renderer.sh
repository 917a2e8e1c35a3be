#!/bin/sh
# Helm post-renderer: reads the manifests Helm rendered on stdin, applies one overlay of this
# directory with `kubectl kustomize` (or `kustomize build`), writes the result to stdout.
#
#   Helm 3 (>= 3.9): helm upgrade … --post-renderer ./post-renderer.sh \
#                        --post-renderer-args values-route
#   Helm 4:          helm plugin install <this directory>
#                    helm upgrade … --post-renderer msc4191-shim --post-renderer-args values-route
#
# The argument is an overlay directory: values-route, post-renderer-route (relative to this
# script), or a path of your own. The overlays are never written to: the rendered manifests go to
# a temporary directory that uses the overlay as a kustomize Component.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
overlay="${1:-${MSC4191_SHIM_OVERLAY:-}}"
if [ -z "$overlay" ]; then
    echo "post-renderer.sh: name the overlay: values-route or post-renderer-route" >&2
    exit 2
fi
case "$overlay" in
    /*) ;;
    *) if [ -d "$here/$overlay" ]; then overlay="$here/$overlay"; else overlay="$PWD/$overlay"; fi ;;
esac
if [ ! -f "$overlay/kustomization.yaml" ]; then
    echo "post-renderer.sh: no kustomization.yaml in $overlay" >&2
    exit 2
fi

overlay="$(cd "$overlay" && pwd -P)"
work="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$work"' EXIT
# kustomize takes components by relative path only: climb from $work to / and down to the overlay.
up="$(printf '%s' "$work" | sed -e 's|[^/]*|..|g' -e 's|^/||')"
cat > "$work/helm-rendered.yaml"
cat > "$work/kustomization.yaml" <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - helm-rendered.yaml
components:
  - $up$overlay
KUSTOMIZATION

# KUSTOMIZE may name the command, e.g. KUSTOMIZE="kustomize build" or "/opt/bin/kubectl kustomize".
if [ -n "${KUSTOMIZE:-}" ]; then
    $KUSTOMIZE "$work"
elif command -v kustomize >/dev/null 2>&1; then
    kustomize build "$work"
else
    kubectl kustomize "$work"
fi
