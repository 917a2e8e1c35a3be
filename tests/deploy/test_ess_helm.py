"""The ess-helm recipe (deploy/ess-helm/), run through a real kustomize on the chart's own objects.

The fixture is the MAS Deployment and Service as chart matrix-stack 26.1.2 renders them (with
`namespace:` and `protocol: TCP`, which broke the guide's first patches). Both routes go through
deploy/ess-helm/post-renderer.sh exactly as Helm runs a post-renderer: manifests on stdin, the
overlay as the argument (`--post-renderer-args`), the result on stdout; for Helm 4 through the
plugin's command with HELM_PLUGIN_DIR set. Helm itself is not run: the chart's rendering of
`extraInitContainers`/`extraVolumes` is reproduced from its two template lines (see
`render_values_route`).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from shim.config.model import Config
from shim.config.parse import parse_config
from tests.deploy.tools import (
    DEPLOY,
    FIXTURES,
    Manifest,
    find,
    kustomize_command,
    load_all,
    require_tool,
    validate_crds,
)
from tests.process.test_image_entrypoint import Stage, parse_dockerfile

ESS = DEPLOY / "ess-helm"
POST_RENDERER = ESS / "post-renderer.sh"
FIXTURE = FIXTURES / "ess-helm-26.1.2-mas.yaml"
MAS = "ess-matrix-authentication-service"
#: the ConfigMap, named after the release ("ess") by release-names/
SHIM_CONFIGMAP = "ess-msc4191-shim"
CHART_INIT_CONTAINERS = ["render-config", "db-wait", "database-migrate"]
ROUTES = ("values-route", "post-renderer-route")


def fixture_docs() -> list[Manifest]:
    return load_all(FIXTURE.read_text(encoding="utf-8"))


def values() -> Manifest:
    loaded: Manifest = yaml.safe_load((ESS / "values-route" / "values.yaml").read_text("utf-8"))
    return loaded


def render_values_route(docs: list[Manifest]) -> list[Manifest]:
    """What the chart (>= 26.1.1) renders with values-route/values.yaml added to its values.

    templates/matrix-authentication-service/deployment.yaml appends
    `matrixAuthenticationService.extraInitContainers` (toYaml) after its own init containers and
    each of `extraVolumes` (through tpl, which leaves these plain values as they are) after its
    own volumes.
    """
    mas = values()["matrixAuthenticationService"]
    rendered = copy.deepcopy(docs)
    spec = find(rendered, "Deployment", MAS)["spec"]["template"]["spec"]
    spec["initContainers"] = [*spec["initContainers"], *mas["extraInitContainers"]]
    spec["volumes"] = [*spec["volumes"], *mas["extraVolumes"]]
    return rendered


def chart_output(route: str, docs: list[Manifest] | None = None) -> str:
    docs = fixture_docs() if docs is None else docs
    docs = render_values_route(docs) if route == "values-route" else docs
    return yaml.safe_dump_all(docs, sort_keys=False)


def post_render(
    stdin: str, *args: str, env: dict[str, str] | None = None, command: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KUSTOMIZE": " ".join(kustomize_command()), **(env or {})}
    return subprocess.run(
        [command or str(POST_RENDERER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd="/",
    )


def rendered(
    route: str, *more: str, docs: list[Manifest] | None = None, release: str = "ess"
) -> list[Manifest]:
    """The chart's output for `route` (for `release` instead of "ess": its names replaced),
    through the post-renderer with `route` and the `more` overlays."""
    output = chart_output(route, docs).replace("ess-", f"{release}-")
    done = post_render(output, route, *more)
    assert done.returncode == 0, done.stderr
    return load_all(done.stdout)


def pod_spec(docs: list[Manifest]) -> Manifest:
    spec: Manifest = find(docs, "Deployment", MAS)["spec"]["template"]["spec"]
    return spec


def shim_container(docs: list[Manifest]) -> Manifest:
    found = [c for c in pod_spec(docs)["initContainers"] if c["name"] == "msc4191-shim"]
    assert len(found) == 1, "expected the shim once among the initContainers"
    container: Manifest = found[0]
    return container


def shim_config(docs: list[Manifest]) -> Config:
    configmap = find(docs, "ConfigMap", SHIM_CONFIGMAP)
    raw = yaml.safe_load(configmap["data"][PurePosixPath(image_env()["MSC4191_SHIM_CONFIG"]).name])
    return parse_config(raw, "deploy/ess-helm ConfigMap")


def final_stage() -> Stage:
    return parse_dockerfile((DEPLOY.parent / "Dockerfile").read_text(encoding="utf-8"))[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = final_stage().env()
    return env


def container_port(container: Manifest, name: str) -> int:
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(number)


def service_port(docs: list[Manifest], name: str) -> Manifest:
    ports: list[Manifest] = find(docs, "Service", MAS)["spec"]["ports"]
    (port,) = [p for p in ports if p["name"] == name]
    return port


# ---- both routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_service_http_port_targets_the_shim(route: str) -> None:
    docs = rendered(route)
    http = service_port(docs, "http")
    assert (http["port"], http["protocol"]) == (8080, "TCP")
    assert container_port(shim_container(docs), http["targetPort"]) == shim_config(docs).listen.port
    assert "targetPort" not in service_port(docs, "internal"), "health and metrics stay on MAS"


@pytest.mark.parametrize("route", ROUTES)
def test_shim_forwards_to_mas_in_the_same_pod(route: str) -> None:
    docs = rendered(route)
    config = shim_config(docs)
    (mas,) = pod_spec(docs)["containers"]
    assert mas["name"] == "matrix-authentication-service"
    assert (config.upstream.url.host, config.upstream.url.port) == (
        "127.0.0.1",
        container_port(mas, "http"),
    )
    assert config.listen.port not in {p["containerPort"] for p in mas["ports"]}


@pytest.mark.parametrize("route", ROUTES)
def test_shim_is_a_native_sidecar_after_nothing_is_lost(route: str) -> None:
    docs = rendered(route)
    shim = shim_container(docs)
    assert shim["restartPolicy"] == "Always"
    assert shim["args"] == final_stage().last("CMD").exec_form()
    assert "command" not in shim, "the image's ENTRYPOINT must stay"
    names = [c["name"] for c in pod_spec(docs)["initContainers"]]
    assert [n for n in names if n != "msc4191-shim"] == CHART_INIT_CONTAINERS
    user, _, group = final_stage().last("USER").args.partition(":")
    context = shim["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))


@pytest.mark.parametrize("route", ROUTES)
def test_configmap_is_mounted_where_the_image_reads_it(route: str) -> None:
    docs = rendered(route)
    configmap = find(docs, "ConfigMap", SHIM_CONFIGMAP)
    assert "namespace" not in configmap["metadata"], "Helm puts it in the release's namespace"
    (mount,) = shim_container(docs)["volumeMounts"]
    assert (
        PurePosixPath(mount["mountPath"])
        == PurePosixPath(image_env()["MSC4191_SHIM_CONFIG"]).parent
    )
    assert "subPath" not in mount
    (volume,) = [v for v in pod_spec(docs)["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == SHIM_CONFIGMAP
    assert "rendered-config" in {v["name"] for v in pod_spec(docs)["volumes"]}


@pytest.mark.parametrize("route", ROUTES)
def test_probes_ask_the_shim_admin_listener(route: str) -> None:
    docs = rendered(route)
    shim = shim_container(docs)
    config = shim_config(docs)
    assert container_port(shim, shim["readinessProbe"]["httpGet"]["port"]) == (
        config.admin.listen.port
    )
    assert shim["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert shim["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert config.admin.listen.host == "0.0.0.0"


@pytest.mark.parametrize("route", ROUTES)
def test_nothing_else_is_touched(route: str) -> None:
    before, after = fixture_docs(), rendered(route)
    assert find(after, "Service", "ess-synapse-main") == find(before, "Service", "ess-synapse-main")
    for doc in after:
        if doc["kind"] != "ConfigMap":
            assert doc["metadata"]["namespace"] == "ess"
    (mas_after,) = pod_spec(after)["containers"]
    (mas_before,) = pod_spec(before)["containers"]
    assert mas_after == mas_before


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("version", ["1.30.0", "1.33.0"])
def test_output_validates_strictly(route: str, version: str, tmp_path: Path) -> None:
    validate = require_tool("kubernetes-validate")
    out = tmp_path / "out.yaml"
    out.write_text(yaml.safe_dump_all(rendered(route)), encoding="utf-8")
    done = subprocess.run(
        [validate, "--strict", "--kubernetes-version", version, str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_values_route_sidecar_is_the_post_renderer_sidecar() -> None:
    """One sidecar, two spellings: the values file's and the post-renderer patch's agree."""
    patch = yaml.safe_load((ESS / "sidecar" / "kustomization.yaml").read_text(encoding="utf-8"))[
        "patches"
    ][0]["patch"]
    spec = yaml.safe_load(patch)["spec"]["template"]["spec"]
    mas = values()["matrixAuthenticationService"]
    assert mas["extraInitContainers"] == spec["initContainers"]
    assert mas["extraVolumes"] == spec["volumes"]
    for container in mas["extraInitContainers"]:
        assert {"name", "image"} <= container.keys(), "the chart's values schema requires both"


def test_values_route_adds_no_second_sidecar() -> None:
    """The values route's overlay patches the Service only: the sidecar stays the chart's."""
    docs = rendered("values-route")
    names = [c["name"] for c in pod_spec(docs)["initContainers"]]
    assert names == [*CHART_INIT_CONTAINERS, "msc4191-shim"]


def test_post_renderer_route_puts_the_sidecar_first() -> None:
    """What sidecar/kustomization.yaml says: kustomize's merge puts a new init container before
    the chart's own, so the shim starts first (its startup probe asks only itself)."""
    docs = rendered("post-renderer-route")
    names = [c["name"] for c in pod_spec(docs)["initContainers"]]
    assert names == ["msc4191-shim", *CHART_INIT_CONTAINERS]
    assert shim_container(docs)["startupProbe"]["httpGet"]["port"] == "shim-admin"


def _with_own_extras(docs: list[Manifest]) -> list[Manifest]:
    """The chart's output for values with an init container and a volume of the operator's."""
    own = copy.deepcopy(docs)
    spec = find(own, "Deployment", MAS)["spec"]["template"]["spec"]
    spec["initContainers"].append({"name": "own-init", "image": "busybox:1.37"})
    spec["volumes"].append({"name": "own-volume", "emptyDir": {}})
    return own


def test_post_renderer_route_keeps_the_operators_own_init_containers_and_volumes() -> None:
    """The route for values that have their own `extraInitContainers`/`extraVolumes` (which the
    values route's file would replace: Helm replaces lists): merged by name, nothing lost."""
    docs = rendered("post-renderer-route", docs=_with_own_extras(fixture_docs()))
    names = [c["name"] for c in pod_spec(docs)["initContainers"]]
    assert names == ["msc4191-shim", *CHART_INIT_CONTAINERS, "own-init"]
    volumes = {v["name"] for v in pod_spec(docs)["volumes"]}
    assert {"own-volume", "msc4191-shim-config", "rendered-config"} <= volumes


@pytest.mark.parametrize("route", ROUTES)
def test_every_name_of_ours_is_unique_per_release(route: str) -> None:
    """Two releases in one namespace must not claim the same ConfigMap (Helm would refuse the
    second, or both would share one configuration)."""
    first = rendered(route, "monitoring")
    second = rendered(route, "monitoring", release="my-ess")
    for docs, release in ((first, "ess"), (second, "my-ess")):
        mas = f"{release}-matrix-authentication-service"
        ours = {(d["kind"], d["metadata"]["name"]) for d in docs if "msc4191" in str(d["metadata"])}
        assert ours == {
            ("ConfigMap", f"{release}-msc4191-shim"),
            ("PodMonitor", f"{release}-msc4191-shim"),
            ("PrometheusRule", f"{release}-msc4191-shim"),
        }
        spec = find(docs, "Deployment", mas)["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == "msc4191-shim-config"]
        assert volume["configMap"]["name"] == f"{release}-msc4191-shim"
        monitor = find(docs, "PodMonitor", f"{release}-msc4191-shim")
        assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/instance": mas}
        assert "RELEASE" not in yaml.safe_dump_all(docs)
        assert "msc4191-shim-release" not in yaml.safe_dump_all(docs), "local to kustomize"


def test_post_renderer_refuses_output_without_mas() -> None:
    docs = [d for d in fixture_docs() if "matrix-authentication" not in str(d["metadata"])]
    done = post_render(yaml.safe_dump_all(docs), "values-route")
    assert done.returncode == 2
    assert "no matrix-authentication-service object" in done.stderr
    assert done.stdout == ""


# ---- the bugs the first recipe had ------------------------------------------------------------


def kustomize_with_patch(tmp_path: Path, patch: Manifest) -> subprocess.CompletedProcess[str]:
    (tmp_path / "helm-rendered.yaml").write_text(FIXTURE.read_text("utf-8"), encoding="utf-8")
    kustomization = {
        "resources": ["helm-rendered.yaml"],
        "patches": [{"patch": yaml.safe_dump(patch)}],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return subprocess.run(
        [*kustomize_command(), str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
    )


def service_patch(metadata: Manifest, port: Manifest) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": [port]}}


def test_a_patch_naming_no_namespace_matches_nothing(tmp_path: Path) -> None:
    patch = service_patch({"name": MAS}, {"port": 8080, "targetPort": "msc4191"})
    done = kustomize_with_patch(tmp_path, patch)
    assert done.returncode != 0
    assert "no resource matches strategic merge patch" in done.stderr
    assert "[noNs]" in done.stderr


def test_a_port_without_protocol_is_silently_not_merged(tmp_path: Path) -> None:
    patch = service_patch({"name": MAS, "namespace": "ess"}, {"port": 8080, "targetPort": "x"})
    done = kustomize_with_patch(tmp_path, patch)
    assert done.returncode == 0, done.stderr
    http = service_port(load_all(done.stdout), "http")
    assert "targetPort" not in http, "kustomize now merges this port: the overlay may be simpler"


def test_the_same_port_with_protocol_is_merged(tmp_path: Path) -> None:
    port = {"port": 8080, "protocol": "TCP", "targetPort": "msc4191"}
    done = kustomize_with_patch(tmp_path, service_patch({"name": MAS, "namespace": "ess"}, port))
    assert done.returncode == 0, done.stderr
    assert service_port(load_all(done.stdout), "http")["targetPort"] == "msc4191"


# ---- the post-renderer, as Helm 3 and Helm 4 run it --------------------------------------------


def test_post_renderer_without_an_overlay_refuses() -> None:
    done = post_render(chart_output("post-renderer-route"))
    assert done.returncode == 2
    assert "values-route or post-renderer-route" in done.stderr


def test_post_renderer_takes_an_overlay_path_and_leaves_no_files(tmp_path: Path) -> None:
    done = post_render(
        chart_output("post-renderer-route"),
        str(ESS / "post-renderer-route"),
        env={"TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == [], "the post-renderer's work directory is removed"
    assert load_all(done.stdout) == rendered("post-renderer-route")


def test_post_renderer_fails_when_kustomize_fails() -> None:
    done = post_render("kind: [not a manifest\n", "values-route")
    assert done.returncode != 0
    assert done.stdout == ""


def test_helm4_plugin_manifest_is_a_postrenderer_v1() -> None:
    """plugin.yaml against Helm 4's MetadataV1 (internal/plugin/metadata_v1.go, strict fields)."""
    plugin = yaml.safe_load((ESS / "plugin.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "name", "type", "runtime", "version", "sourceURL", "config"}
    assert plugin.keys() <= known | {"runtimeConfig"}
    assert plugin["apiVersion"] == "v1"
    assert plugin["type"] == "postrenderer/v1"
    assert plugin["runtime"] == "subprocess"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", plugin["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", plugin["version"])
    (command,) = plugin["runtimeConfig"]["platformCommand"]
    assert command.keys() <= {"os", "arch", "command", "args"}
    assert command["command"].startswith("${HELM_PLUGIN_DIR}/")
    script = ESS / command["command"].removeprefix("${HELM_PLUGIN_DIR}/")
    assert script == POST_RENDERER
    assert os.access(script, os.X_OK)


def test_helm4_plugin_runs_like_helm_runs_it(tmp_path: Path) -> None:
    """Helm 4 expands ${HELM_PLUGIN_DIR} to the installed plugin (a link to the directory when
    installed from a local path), appends --post-renderer-args and pipes the manifests in."""
    installed = tmp_path / "plugins" / "msc4191-shim"
    installed.parent.mkdir()
    installed.symlink_to(ESS)
    plugin = yaml.safe_load((ESS / "plugin.yaml").read_text(encoding="utf-8"))
    (command,) = plugin["runtimeConfig"]["platformCommand"]
    env = {"HELM_PLUGIN_DIR": str(installed), "HELM_PLUGIN_NAME": plugin["name"]}
    argv0 = command["command"].replace("${HELM_PLUGIN_DIR}", str(installed))
    done = post_render(chart_output("values-route"), "values-route", env=env, command=argv0)
    assert done.returncode == 0, done.stderr
    assert load_all(done.stdout) == rendered("values-route")


# ---- monitoring: the PodMonitor and the PrometheusRule ---------------------------------------

#: the fields this recipe uses, as prometheus-operator's monitoring.coreos.com/v1 API defines them
#: (PodMonitorSpec, PodMetricsEndpoint, RelabelConfig): a misspelt field would be dropped silently
PODMONITOR_SPEC = {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"}
POD_METRICS_ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "relabelings"}
RELABEL_CONFIG = {"sourceLabels", "separator", "targetLabel", "regex", "replacement", "action"}


@pytest.mark.parametrize("route", ROUTES)
def test_the_podmonitor_scrapes_the_sidecars_admin_port(route: str) -> None:
    docs = rendered(route, "monitoring")
    monitor = find(docs, "PodMonitor", "ess-msc4191-shim")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert "namespace" not in monitor["metadata"], "Helm puts it in the release's namespace"
    spec = monitor["spec"]
    assert spec.keys() <= PODMONITOR_SPEC
    selected = spec["selector"]["matchLabels"]
    pod_labels = find(docs, "Deployment", MAS)["spec"]["template"]["metadata"]["labels"]
    assert selected.items() <= pod_labels.items(), "it selects the MAS pods"
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint.keys() <= POD_METRICS_ENDPOINT
    shim = shim_container(docs)
    assert container_port(shim, endpoint["port"]) == shim_config(docs).admin.listen.port
    assert endpoint["path"] == "/metrics"
    (relabel,) = endpoint["relabelings"]
    assert relabel.keys() <= RELABEL_CONFIG
    assert (relabel["targetLabel"], relabel["replacement"]) == ("job", "msc4191-shim")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "msc4191-shim.rules.yml").read_text("utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert all('job="msc4191-shim"' in expr for expr in exprs), "the job the rules select"


@pytest.mark.parametrize("route", ROUTES)
def test_the_monitoring_objects_pass_prometheus_operators_own_schemas(route: str) -> None:
    docs = rendered(route, "monitoring")
    monitoring = [d for d in docs if d["apiVersion"] == "monitoring.coreos.com/v1"]
    assert sorted(d["kind"] for d in monitoring) == ["PodMonitor", "PrometheusRule"]
    done = validate_crds(monitoring)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"ok {d['kind']} {d['metadata']['name']}" for d in monitoring
    ]


def test_the_schema_check_refuses_what_the_api_server_would() -> None:
    # the check can fail: a relabeling action the operator does not know, an alert's `for`
    # that is no duration
    docs = rendered("values-route", "monitoring")
    monitor = copy.deepcopy(find(docs, "PodMonitor", "ess-msc4191-shim"))
    monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    rule = copy.deepcopy(find(docs, "PrometheusRule", "ess-msc4191-shim"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    done = validate_crds([monitor, rule])
    assert done.returncode == 1, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
        "invalid PodMonitor ess-msc4191-shim",
        "invalid PrometheusRule ess-msc4191-shim",
    ]
    assert "relabelings/0/action" in done.stdout
    assert "rules/0/for" in done.stdout


def test_monitoring_is_only_there_when_asked_for() -> None:
    kinds = {doc["kind"] for doc in rendered("values-route")}
    assert not kinds & {"PodMonitor", "PrometheusRule"}, "without the CRDs Helm would fail"
    kinds = {doc["kind"] for doc in rendered("values-route", "monitoring")}
    assert {"PodMonitor", "PrometheusRule"} <= kinds
