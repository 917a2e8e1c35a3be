"""deploy/kubernetes: a change to the shim's configuration rolls the Deployment.

kustomize's configMapGenerator names the ConfigMap after a hash of config/config.yaml and writes
that name into the Deployment's pod template, so `kubectl apply -k` after an edit starts new pods
with the new file (a plain ConfigMap edit would wait for a SIGHUP or a restart).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.deploy.tools import DEPLOY, Manifest, kustomize_command, load_all

KUBERNETES = DEPLOY / "kubernetes"


def render(directory: Path) -> list[Manifest]:
    done = subprocess.run(
        [*kustomize_command(), str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return load_all(done.stdout)


def configmap_name(docs: list[Manifest]) -> str:
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    referenced = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    assert referenced == [configmap["metadata"]["name"]]
    name: str = configmap["metadata"]["name"]
    return name


def test_the_deployment_mounts_the_generated_configmap() -> None:
    name = configmap_name(render(KUBERNETES))
    assert name.startswith("msc4191-shim-")
    assert name != "msc4191-shim"


def test_editing_the_configuration_renames_the_configmap(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    before = configmap_name(render(copy))
    config = copy / "config" / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("level: INFO", "level: DEBUG"))
    after = configmap_name(render(copy))
    assert before != after
