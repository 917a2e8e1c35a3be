"""Deployment files, checked offline: Dockerfile lint, Kubernetes manifests, the compose demo.

- hadolint must find nothing in the Dockerfile;
- kubernetes-validate --strict must accept every manifest for the oldest and the first GA version
  of native sidecars that the manifests claim;
- the manifests and the compose file must agree with the image and with each other: the sidecar,
  the ports, the probes, the mounted configuration, the hardening, the shutdown arithmetic;
- each shim configuration they carry must load, and the compose Synapse configuration must satisfy
  Synapse itself when a Synapse is installed (scripts/install-synapse.sh).

The linters come from scripts/install-deploy-tools.sh; without them these tests skip, or fail when
CI is set.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from yarl import URL

from shim.config.model import Config
from shim.config.parse import apply_env_overrides, load_config, parse_config
from shim.config.values import parse_duration
from tests.deploy.tools import require_tool
from tests.process.test_image_entrypoint import Stage, healthcheck_command, parse_dockerfile
from tests.support.paths import REPO
from tests.support.synapse import SYNAPSE_PYTHON, require_synapse

ROOT = REPO
DOCKERIGNORE = ROOT / ".dockerignore"
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
GUIDE = ROOT / "deploy" / "GUIDE.md"
#: Native sidecars are on by default from 1.29 and GA in 1.33; preStop `sleep` needs 1.30.
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")

Manifest = dict[str, Any]


def final_stage() -> Stage:
    return parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))[-1]


def image_env() -> dict[str, str]:
    return final_stage().env()


# ---- Dockerfile -------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint")
    done = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---- Kubernetes -------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests() -> list[Manifest]:
    docs: list[Manifest] = []
    for path in manifest_files():
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs + generated_configmaps()


def generated_configmaps() -> list[Manifest]:
    """The ConfigMaps of kustomization.yaml's configMapGenerator, before kustomize hashes names."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": {
                PurePosixPath(f).name: (KUBERNETES / f).read_text(encoding="utf-8")
                for f in generator["files"]
            },
        }
        for generator in kustomization.get("configMapGenerator", [])
    ]


def one(kind: str) -> Manifest:
    found = [m for m in manifests() if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec() -> Manifest:
    spec: Manifest = one("Deployment")["spec"]["template"]["spec"]
    return spec


def sidecar() -> Manifest:
    found: list[Manifest] = [
        c for c in pod_spec().get("initContainers", []) if c["name"] == "msc4191-shim"
    ]
    assert len(found) == 1, "expected the shim among the initContainers"
    return found[0]


def all_containers() -> list[Manifest]:
    spec = pod_spec()
    return [*spec.get("initContainers", []), *spec["containers"]]


def port_number(container: Manifest, port: int | str) -> int:
    """A numeric port, or the containerPort of the named one."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def configmap_config() -> Config:
    """The shim configuration in the ConfigMap, as the pod's environment overrides it."""
    data = one("ConfigMap")["data"]
    raw = yaml.safe_load(data[PurePosixPath(image_env()["MSC4191_SHIM_CONFIG"]).name])
    env = {e["name"]: e["value"] for e in sidecar().get("env", []) if "value" in e}
    overrides = {k: v for k, v in {**image_env(), **env}.items() if k.startswith("MSC4191_SHIM_")}
    return load_config_text(raw, overrides)


def load_config_text(raw: object, env: Mapping[str, str]) -> Config:
    return parse_config(apply_env_overrides(raw, env), "ConfigMap msc4191-shim")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    validate = require_tool("kubernetes-validate")
    files = [str(p) for p in manifest_files()]
    done = subprocess.run(
        [validate, "--strict", "--kubernetes-version", version, *files],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]


def test_shim_is_a_native_sidecar_of_the_image() -> None:
    shim = sidecar()
    assert shim["restartPolicy"] == "Always"
    assert shim["image"] == "ghcr.io/example/msc4191-shim:0.1.0"
    assert shim.get("args", ["run"]) == final_stage().last("CMD").exec_form()
    assert "command" not in shim, "the image's ENTRYPOINT must stay"


def test_service_targets_the_shim_never_the_portal() -> None:
    config = configmap_config()
    (port,) = one("Service")["spec"]["ports"]
    assert port_number(sidecar(), port["targetPort"]) == config.listen.port
    portal_ports = {p["containerPort"] for c in pod_spec()["containers"] for p in c["ports"]}
    assert config.listen.port not in portal_ports
    assert config.upstream.url.host == "127.0.0.1"
    assert config.upstream.url.port in portal_ports
    selector = one("Service")["spec"]["selector"]
    assert selector.items() <= one("Deployment")["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("probe", "path"), [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
)
def test_probes_ask_the_admin_listener(probe: str, path: str) -> None:
    config = configmap_config()
    get = sidecar()[probe]["httpGet"]
    assert get["path"] == path
    assert port_number(sidecar(), get["port"]) == config.admin.listen.port
    assert config.admin.listen.host == "0.0.0.0", "kubelet probes reach the pod IP"
    # the image's HEALTHCHECK asks the same listener: it reads admin.listen from this file
    assert healthcheck_command(final_stage()) == ["msc4191-shim", "healthcheck"]


@pytest.mark.parametrize("name", ["msc4191-shim", "portal"])
def test_every_container_is_locked_down(name: str) -> None:
    (container,) = [c for c in all_containers() if c["name"] == name]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_every_container_is_covered() -> None:
    assert sorted(c["name"] for c in all_containers()) == ["msc4191-shim", "portal"]


def test_shim_runs_as_the_image_user() -> None:
    user, _, group = final_stage().last("USER").args.partition(":")
    context = sidecar()["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))


def test_configmap_is_mounted_where_the_image_reads_it() -> None:
    config_path = PurePosixPath(image_env()["MSC4191_SHIM_CONFIG"])
    (mount,) = sidecar()["volumeMounts"]
    assert PurePosixPath(mount["mountPath"]) == config_path.parent
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert config_path.name in one("ConfigMap")["data"]


def test_no_environment_variable_overrides_the_mounted_file() -> None:
    """MSC4191_SHIM_* beat the file; the manifests say only where the file is: it is the truth."""
    names = {env["name"] for env in sidecar().get("env", [])}
    assert names <= {"MSC4191_SHIM_CONFIG"}


def test_shutdown_order_leaves_time_to_drain() -> None:
    """The portal outlives the shim's drain, and the pod's grace period covers both."""
    config = configmap_config()
    (portal,) = pod_spec()["containers"]
    sleep = portal["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert sleep > config.shutdown_grace
    assert grace > sleep + config.shutdown_grace
    assert grace > config.shutdown_grace


# ---- compose ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Manifest:
    loaded: Manifest = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def compose_mounts(service: Manifest) -> Iterator[tuple[Path, str]]:
    """(host path, container path) of each bind mount, host paths resolved like compose does."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        yield (COMPOSE.parent / source).resolve(), target


def compose_shim_config(compose: Manifest) -> Config:
    shim = compose["services"]["shim"]
    config_path = image_env()["MSC4191_SHIM_CONFIG"]
    (source,) = [s for s, target in compose_mounts(shim) if target == config_path]
    overrides = {k: v for k, v in image_env().items() if k.startswith("MSC4191_SHIM_")}
    return load_config(str(source), env={**overrides, **shim.get("environment", {})})


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip(
            "the docker compose plugin is not installed; the structural tests below stand in"
        )
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_runs_portal_shim_and_synapse(compose: Manifest) -> None:
    services = compose["services"]
    assert services.keys() == {"portal", "shim", "synapse"}
    # the shim runs the production image; the portal its own demo image (no demo in production)
    dockerfiles = {
        name: (COMPOSE.parent / spec["build"]["context"] / spec["build"]["dockerfile"]).resolve()
        for name, spec in services.items()
        if name in ("portal", "shim")
    }
    assert dockerfiles == {"shim": ROOT / "Dockerfile", "portal": ROOT / "demo" / "Dockerfile"}
    assert services["portal"]["image"] != services["shim"]["image"]
    assert services["shim"]["command"] == final_stage().last("CMD").exec_form()
    assert services["portal"]["command"][:2] == ["--era", "mas-0.9"]


def test_the_production_image_leaves_the_demo_out() -> None:
    admitted = [line for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")]
    assert "!shim/" in admitted
    assert not [line for line in admitted if "demo" in line]


def test_compose_shim_reaches_the_portal(compose: Manifest) -> None:
    config = compose_shim_config(compose)
    upstream = (config.upstream.url.host, config.upstream.url.port)
    assert upstream == ("portal", serving_port(compose, "portal"))
    published = {p.rsplit(":", 1)[1] for p in compose["services"]["shim"]["ports"]}
    assert published == {str(config.listen.port)}


def test_compose_synapse_fetches_discovery_through_the_shim(compose: Manifest) -> None:
    synapse = compose["services"]["synapse"]
    config_path = synapse["environment"]["SYNAPSE_CONFIG_PATH"]
    (source,) = [s for s, target in compose_mounts(synapse) if target == config_path]
    homeserver = yaml.safe_load(source.read_text(encoding="utf-8"))
    endpoint = URL(homeserver["matrix_authentication_service"]["endpoint"])
    shim = compose_shim_config(compose)
    assert (endpoint.host, endpoint.port) == ("shim", shim.listen.port)
    advertised = shim.discovery.account_management_uri
    assert advertised is not None
    assert URL(advertised).origin() == shim.public_url


def serving_port(compose: Manifest, name: str) -> int:
    """The port each compose service answers its health check on."""
    if name == "shim":
        return compose_shim_config(compose).admin.listen.port
    if name == "portal":
        command = compose["services"]["portal"]["command"]
        return int(command[command.index("--listen") + 1].rsplit(":", 1)[1])
    homeserver = yaml.safe_load((COMPOSE.parent / "synapse" / "homeserver.yaml").read_text())
    (listener,) = homeserver["listeners"]
    return int(listener["port"])


@pytest.mark.parametrize("name", ["portal", "shim", "synapse"])
def test_compose_healthchecks_ask_the_right_port(compose: Manifest, name: str) -> None:
    service = compose["services"][name]
    if name == "shim":
        # the image's own check, which reads the admin address from the shim's configuration
        # (tests/process/test_healthcheck.py)
        assert service["healthcheck"]["test"] == ["CMD", *healthcheck_command(final_stage())]
        assert healthcheck_command(final_stage()) == ["msc4191-shim", "healthcheck"]
        return
    probe = " ".join(service["healthcheck"]["test"])
    assert re.search(rf"http://127\.0\.0\.1:{serving_port(compose, name)}/", probe), probe


def test_compose_starts_in_dependency_order(compose: Manifest) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", name
            assert "healthcheck" in services[dependency], dependency
    assert "shim" in services["synapse"]["depends_on"]
    assert "portal" in services["shim"]["depends_on"]


def test_compose_shim_drains_before_it_is_killed(compose: Manifest) -> None:
    shim = compose["services"]["shim"]
    assert shim["read_only"] is True
    assert shim["stop_signal"] == final_stage().last("STOPSIGNAL").args
    assert parse_duration(shim["stop_grace_period"]) > compose_shim_config(compose).shutdown_grace


@pytest.mark.synapse
@pytest.mark.timeout(120)
def test_compose_homeserver_config_satisfies_synapse(compose: Manifest, tmp_path: Path) -> None:
    require_synapse()
    synapse = compose["services"]["synapse"]
    (source,) = [
        s for s, t in compose_mounts(synapse) if t == synapse["environment"]["SYNAPSE_CONFIG_PATH"]
    ]
    # The container's /data is a tmpfs; here it is tmp_path.
    config = tmp_path / "homeserver.yaml"
    config.write_text(
        source.read_text(encoding="utf-8").replace("/data/", f"{tmp_path}/"), encoding="utf-8"
    )
    for argv in (
        ["-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        ["-m", "synapse.config", "-c", str(config)],
    ):
        done = subprocess.run(
            [str(SYNAPSE_PYTHON), *argv], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ---- the guide --------------------------------------------------------------------------------


def test_guide_links_resolve() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for target in re.findall(r"\]\((?!https?://|#)([^)#]+)", text):
        assert (GUIDE.parent / target).exists(), target


def test_guide_links_every_recipe_file() -> None:
    """The ess-helm and MDAD recipes are files; the guide must point at each of them."""
    text = GUIDE.read_text(encoding="utf-8")
    linked = {
        (GUIDE.parent / target).resolve()
        for target in re.findall(r"\]\((?!https?://|#)([^)#]+)", text)
    }
    for folder in ("ess-helm", "matrix-docker-ansible-deploy"):
        for path in sorted((GUIDE.parent / folder).rglob("*")):
            if path.is_file():
                assert path in linked or path.parent in linked, path.relative_to(ROOT)


def test_guide_says_when_the_shim_is_not_needed() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert "## Do you still need the shim?" in text
    for line in ("| MAS 1.10 or later", "| ess-helm (`matrix-stack`) 26.1.3 or later"):
        (row,) = [r for r in text.splitlines() if r.startswith(line)]
        assert row.endswith("| **no** |") or "| **no** (" in row, row
