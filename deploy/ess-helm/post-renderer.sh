#!/bin/sh
# Helm post-renderer: reads the manifests Helm rendered on stdin, applies one overlay of this
# directory with `kubectl kustomize` (or `kustomize build`), writes the result to stdout.
#
#   Helm 3 (>= 3.9): helm upgrade … --post-renderer ./post-renderer.sh \
#                        --post-renderer-args values-route [--post-renderer-args monitoring]
#   Helm 4:          helm plugin install <this directory>
#                    helm upgrade … --post-renderer msc4191-shim --post-renderer-args values-route
#
# The arguments are overlay directories, applied in order: values-route or post-renderer-route,
# then optionally monitoring (relative to this script), or paths of your own; release-names is
# always applied last (names unique per release). The overlays are never written to: the
# rendered manifests go to a temporary directory that uses them as kustomize Components.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
if [ "$#" -eq 0 ] && [ -n "${MSC4191_SHIM_OVERLAY:-}" ]; then
    set -- "$MSC4191_SHIM_OVERLAY"
fi
if [ "$#" -eq 0 ]; then
    echo "post-renderer.sh: name the overlay: values-route or post-renderer-route" \
        "(then monitoring, if you want it)" >&2
    exit 2
fi

work="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$work"' EXIT
# kustomize takes components by relative path only: climb from $work to / and down to each.
up="$(printf '%s' "$work" | sed -e 's|[^/]*|..|g' -e 's|^/||')"
components=""
for overlay in "$@" release-names; do
    case "$overlay" in
        /*) ;;
        *) if [ -d "$here/$overlay" ]; then overlay="$here/$overlay"; else overlay="$PWD/$overlay"; fi ;;
    esac
    if [ ! -f "$overlay/kustomization.yaml" ]; then
        echo "post-renderer.sh: no kustomization.yaml in $overlay" >&2
        exit 2
    fi
    overlay="$(cd "$overlay" && pwd -P)"
    components="$components
  - $up$overlay"
done

cat > "$work/helm-rendered.yaml"
# The release's name, from the chart's label on every MAS object (release-names/ uses it).
release="$(sed -n \
    -e 's/^[[:space:]]*app\.kubernetes\.io\/instance:[[:space:]]*["'\'']\{0,1\}\([A-Za-z0-9.-]*\)-matrix-authentication-service["'\'']\{0,1\}[[:space:]]*$/\1/p' \
    "$work/helm-rendered.yaml" | head -n 1)"
if [ -z "$release" ]; then
    echo "post-renderer.sh: Helm's output has no matrix-authentication-service object (label" \
        "app.kubernetes.io/instance: <release>-matrix-authentication-service); is" \
        "matrixAuthenticationService enabled?" >&2
    exit 2
fi
cat > "$work/release.yaml" <<RELEASE
apiVersion: v1
kind: ConfigMap
metadata:
  name: msc4191-shim-release
  annotations:
    config.kubernetes.io/local-config: "true"
data:
  shim: $release-msc4191-shim
  mas: $release-matrix-authentication-service
RELEASE
cat > "$work/kustomization.yaml" <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - helm-rendered.yaml
  - release.yaml
components:$components
KUSTOMIZATION

# KUSTOMIZE may name the command, e.g. KUSTOMIZE="kustomize build" or "/opt/bin/kubectl kustomize".
if [ -n "${KUSTOMIZE:-}" ]; then
    $KUSTOMIZE "$work"
elif command -v kustomize >/dev/null 2>&1; then
    kustomize build "$work"
else
    kubectl kustomize "$work"
fi
