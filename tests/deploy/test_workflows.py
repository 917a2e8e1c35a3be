"""The CI workflow that builds and pushes the multi-arch image (.github/workflows/image.yml):
actionlint finds nothing, and it passes the Dockerfile's build arguments and platforms."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from tests.deploy.tools import ROOT, require_tool
from tests.process.test_image_entrypoint import parse_dockerfile

WORKFLOWS = ROOT / ".github" / "workflows"
IMAGE = WORKFLOWS / "image.yml"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(IMAGE.read_text(encoding="utf-8"))
    return loaded


def step(uses: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        s for s in workflow()["jobs"]["image"]["steps"] if s.get("uses", "").startswith(uses + "@")
    ]
    return found


def test_actionlint_finds_nothing() -> None:
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert files == [str(IMAGE)]
    done = subprocess.run(
        [require_tool("actionlint"), "-no-color", *files], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_version_tag_builds_and_pushes_both_architectures() -> None:
    # YAML reads the bare key `on` as True
    triggers = workflow()[True]
    assert triggers["push"]["tags"] == ["v*.*.*"]
    job = workflow()["jobs"]["image"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    build = step("docker/build-push-action")["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] is True
    assert build["context"] == "."
    step("docker/setup-qemu-action")  # arm64 on an amd64 runner
    step("docker/setup-buildx-action")
    assert step("docker/login-action")["with"]["registry"] == "ghcr.io"


def test_the_build_arguments_are_the_dockerfiles_labels() -> None:
    final = parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))[-1]
    declared = {i.args.partition("=")[0] for i in final.all("ARG")}
    build = step("docker/build-push-action")["with"]
    passed = dict(line.split("=", 1) for line in build["build-args"].splitlines() if line.strip())
    assert set(passed) == {"SOURCE", "VERSION", "REVISION"}
    assert set(passed) <= declared
    assert passed["REVISION"] == "${{ github.sha }}"
    assert re.fullmatch(
        r"\$\{\{ github\.server_url \}\}/\$\{\{ github\.repository \}\}", passed["SOURCE"]
    )
