"""The matrix-docker-ansible-deploy recipe (deploy/matrix-docker-ansible-deploy/vars.yml).

Ansible itself resolves it, as the playbook would: the snippet is a host's msc4191-shim.yml,
beside the host's own vars.yml, in an inventory whose group variables are MDAD's own definitions
of the variables it reads (fixtures/mdad-group-vars.yml), and a one-task playbook writes the
resolved values out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from yarl import URL

from shim.config.model import Config
from shim.config.parse import parse_config
from tests.deploy.tools import DEPLOY, FIXTURES, require_tool

VARS = DEPLOY / "matrix-docker-ansible-deploy" / "vars.yml"
GROUP_VARS = FIXTURES / "mdad-group-vars.yml"
WANTED = [
    "matrix_synapse_matrix_authentication_service_endpoint",
    "matrix_synapse_systemd_required_services_list",
    "matrix_authentication_service_http_base_container_url",
    "matrix_authentication_service_container_labels_public_main_rule",
    "aux_directory_definitions_custom",
    "aux_directory_definitions",
    "aux_file_definitions_custom",
    "aux_file_definitions",
    "devture_systemd_service_manager_services_list_additional",
    "devture_systemd_service_manager_services_list",
    "prometheus_config_scrape_configs",
    "traefik_entrypoint_primary",
    "traefik_certResolver_primary",
    "msc4191_shim_base_path",
]
PLAYBOOK = """
- hosts: matrix_servers
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ wanted | map('extract', vars) | list | zip(wanted) | list | to_json }}"
"""


def run_playbook(
    tmp_path: Path, host_vars: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook writing WANTED out, for a host with the shim's file beside its own
    vars.yml (`host_vars`, loaded after it as Ansible loads a host_vars directory: by name)."""
    playbook_bin = require_tool("ansible-playbook")
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    host = inventory / "host_vars" / "matrix"
    host.mkdir(parents=True)
    shutil.copy(GROUP_VARS, inventory / "group_vars" / "matrix_servers.yml")
    shutil.copy(VARS, host / "msc4191-shim.yml")
    (host / "vars.yml").write_text(yaml.safe_dump(host_vars or {}), encoding="utf-8")
    (inventory / "hosts").write_text(
        "[matrix_servers]\n"
        f"matrix ansible_connection=local ansible_python_interpreter={sys.executable}\n",
        encoding="utf-8",
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK, encoding="utf-8")
    out = tmp_path / "resolved.json"
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [
            playbook_bin,
            "-i",
            str(inventory / "hosts"),
            str(tmp_path / "play.yml"),
            "-e",
            json.dumps({"out": str(out), "wanted": WANTED}),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def resolve(tmp_path: Path, host_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    """The variables in WANTED as Ansible resolves them."""
    done = run_playbook(tmp_path, host_vars)
    assert done.returncode == 0, done.stdout + done.stderr
    pairs = json.loads((tmp_path / "resolved.json").read_text(encoding="utf-8"))
    return {name: value for value, name in pairs}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolve(tmp_path_factory.mktemp("mdad"))


def aux_file(resolved: dict[str, Any], suffix: str) -> str:
    (entry,) = [f for f in resolved["aux_file_definitions_custom"] if f["dest"].endswith(suffix)]
    content: str = entry["content"]
    return content


def shim_config(resolved: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_load(aux_file(resolved, "/config.yaml")), "MDAD vars.yml")


def labels(resolved: dict[str, Any]) -> dict[str, str]:
    lines = [ln.strip() for ln in aux_file(resolved, "/labels").splitlines()]
    return dict(ln.split("=", 1) for ln in lines if ln)


def test_synapse_endpoint_names_the_shim_with_mas_path(resolved: dict[str, Any]) -> None:
    endpoint = URL(resolved["matrix_synapse_matrix_authentication_service_endpoint"])
    mas = URL(resolved["matrix_authentication_service_http_base_container_url"])
    config = shim_config(resolved)
    assert (endpoint.host, endpoint.port) == ("msc4191-shim", config.listen.port)
    assert endpoint.path == mas.path == "/auth/", "the endpoint keeps MAS's path prefix"
    assert config.upstream.url == mas.with_path("")


def test_shim_paths_carry_mas_prefix(resolved: dict[str, Any]) -> None:
    config = shim_config(resolved)
    assert config.account_management.paths == ("/auth/account/",)
    assert "/auth/.well-known/openid-configuration" in config.discovery.paths
    assert str(config.public_url) == "https://matrix.example.org"


def test_synapse_still_requires_mas_and_now_the_shim(resolved: dict[str, Any]) -> None:
    required = resolved["matrix_synapse_systemd_required_services_list"]
    assert "matrix-authentication-service.service" in required
    assert "msc4191-shim.service" in required
    (unit,) = [
        f["content"]
        for f in resolved["aux_file_definitions_custom"]
        if f["dest"] == "/etc/systemd/system/msc4191-shim.service"
    ]
    assert "Requires=matrix-authentication-service.service" in unit


def test_setting_the_endpoint_drops_mas_from_synapse_requirements(tmp_path: Path) -> None:
    """Why vars.yml sets the _custom list: MDAD's _auto list requires MAS only for its own URL."""
    resolved = resolve(
        tmp_path, {"msc4191_shim_synapse_required_services": ["msc4191-shim.service"]}
    )
    required = resolved["matrix_synapse_systemd_required_services_list"]
    assert "matrix-authentication-service.service" not in required


def test_router_copies_mas_router_and_outranks_it(resolved: dict[str, Any]) -> None:
    shim = labels(resolved)
    rule = resolved["matrix_authentication_service_container_labels_public_main_rule"]
    assert rule == "Host(`matrix.example.org`) && PathPrefix(`/auth`)"
    assert shim["traefik.http.routers.msc4191-shim.rule"] == rule
    assert int(shim["traefik.http.routers.msc4191-shim.priority"]) > len(rule)
    assert shim["traefik.http.routers.msc4191-shim.service"] == "msc4191-shim"
    port = int(shim["traefik.http.services.msc4191-shim.loadbalancer.server.port"])
    assert port == shim_config(resolved).listen.port


def test_router_uses_the_inventory_traefik_names(resolved: dict[str, Any]) -> None:
    shim = labels(resolved)
    assert shim["traefik.http.routers.msc4191-shim.entrypoints"] == "web-secure-custom"
    assert resolved["traefik_entrypoint_primary"] == "web-secure-custom"
    assert shim["traefik.http.routers.msc4191-shim.tls"] == "true"
    assert shim["traefik.http.routers.msc4191-shim.tls.certResolver"] == "acme-custom"
    assert resolved["traefik_certResolver_primary"] == "acme-custom"
    assert shim["traefik.docker.network"] == "traefik"


def test_unit_joins_mas_network_and_traefik_network(resolved: dict[str, Any]) -> None:
    unit = aux_file(resolved, "/msc4191-shim.service")
    base = resolved["msc4191_shim_base_path"]
    assert "--network=matrix-homeserver " in unit
    assert "docker network connect traefik msc4191-shim" in unit
    assert f"--label-file={base}/labels" in unit
    assert re.search(rf"src={base}/config\.yaml,dst=/etc/msc4191-shim/config\.yaml,ro", unit)
    managed = resolved["devture_systemd_service_manager_services_list_additional"]
    assert [s["name"] for s in managed] == ["msc4191-shim.service"]
    dirs = [d["dest"] for d in resolved["aux_directory_definitions_custom"]]
    assert dirs == [base]


def test_mas_at_the_root_path(tmp_path: Path) -> None:
    resolved = resolve(
        tmp_path,
        {
            "matrix_authentication_service_path_prefix": "/",
            "matrix_authentication_service_hostname": "auth.example.org",
        },
    )
    endpoint = URL(resolved["matrix_synapse_matrix_authentication_service_endpoint"])
    assert endpoint.path == "/"
    config = shim_config(resolved)
    assert config.account_management.paths == ("/account/",)
    shim = labels(resolved)
    assert shim["traefik.http.routers.msc4191-shim.rule"] == "Host(`auth.example.org`)"
    assert "traefik.http.routers.msc4191-shim.middlewares" not in shim


def test_disabling_restores_mdad_endpoint(tmp_path: Path) -> None:
    resolved = resolve(tmp_path, {"msc4191_shim_enabled": False})
    assert (
        resolved["matrix_synapse_matrix_authentication_service_endpoint"]
        == resolved["matrix_authentication_service_http_base_container_url"]
    )
    assert (
        "matrix-authentication-service.service"
        in (resolved["matrix_synapse_systemd_required_services_list"])
    )


def test_unit_runs_as_mdad_runs_mas(tmp_path: Path) -> None:
    """No capabilities, its own journal name, and the playbook's docker command and unit path
    (an inventory may have moved either)."""
    resolved = resolve(
        tmp_path,
        {
            "devture_systemd_docker_base_host_command_docker": "/opt/bin/docker",
            "devture_systemd_docker_base_systemd_path": "/usr/lib/systemd/system",
        },
    )
    (entry,) = [f for f in resolved["aux_file_definitions"] if f["dest"].endswith(".service")]
    assert entry["dest"] == "/usr/lib/systemd/system/msc4191-shim.service"
    unit = entry["content"]
    (create,) = [line for line in unit.splitlines() if " create " in line]
    assert create.startswith("ExecStartPre=/opt/bin/docker create ")
    assert " --cap-drop=ALL " in create
    assert " --read-only " in create
    assert "SyslogIdentifier=msc4191-shim" in unit.splitlines()
    commands = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("Exec")]
    assert all(c.lstrip("-").startswith("/opt/bin/docker ") for c in commands), commands


OWN_FILE = {"dest": "/matrix/ssl/own.pem", "content": "mine"}
OWN_SERVICE = {"name": "own.service", "priority": 5000}
OWN_SCRAPE = {"job_name": "own", "static_configs": [{"targets": ["own:9100"]}]}


def test_the_inventorys_own_list_entries_are_kept(tmp_path: Path) -> None:
    resolved = resolve(
        tmp_path,
        {
            "msc4191_shim_own_aux_file_definitions_custom": [OWN_FILE],
            "msc4191_shim_own_aux_directory_definitions_custom": [{"dest": "/matrix/ssl"}],
            "msc4191_shim_own_devture_systemd_service_manager_services_list_additional": [
                OWN_SERVICE
            ],
            "msc4191_shim_own_matrix_synapse_systemd_required_services_list_custom": [
                "own.service"
            ],
            "msc4191_shim_own_prometheus_config_scrape_configs_additional": [OWN_SCRAPE],
        },
    )
    files = [f["dest"] for f in resolved["aux_file_definitions"]]
    assert files[0] == OWN_FILE["dest"]
    assert "/etc/systemd/system/msc4191-shim.service" in files
    assert [d["dest"] for d in resolved["aux_directory_definitions"]] == [
        "/matrix/ssl",
        resolved["msc4191_shim_base_path"],
    ]
    managed = [s["name"] for s in resolved["devture_systemd_service_manager_services_list"]]
    assert managed == ["own.service", "msc4191-shim.service"]
    required = resolved["matrix_synapse_systemd_required_services_list"]
    assert {"own.service", "msc4191-shim.service"} <= set(required)
    jobs = [job["job_name"] for job in resolved["prometheus_config_scrape_configs"]]
    assert jobs == ["own", "msc4191-shim"]


@pytest.mark.parametrize(
    ("own", "named"),
    [
        # what the playbook's own docs show: aux_file_definitions set directly
        ({"aux_file_definitions": [OWN_FILE]}, "aux_file_definitions has no"),
        ({"aux_file_definitions_custom": [OWN_FILE]}, "aux_file_definitions has no"),
        ({"aux_directory_definitions_custom": []}, "aux_directory_definitions has no"),
        (
            {"devture_systemd_service_manager_services_list_additional": [OWN_SERVICE]},
            "devture_systemd_service_manager_services_list_additional, set by your inventory",
        ),
        (
            {"matrix_synapse_systemd_required_services_list_custom": []},
            "matrix_synapse_systemd_required_services_list_custom, set by your inventory",
        ),
    ],
)
def test_an_inventory_that_drops_the_shims_entries_is_stopped(
    tmp_path: Path, own: dict[str, Any], named: str
) -> None:
    """Its own definition (vars.yml, read after msc4191-shim.yml) replaces the snippet's list: the
    shim's files or unit would never be written while Synapse's endpoint names the shim. The
    play stops instead, naming the variable and the fix."""
    done = run_playbook(tmp_path, own)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "msc4191-shim: " in said
    assert named in said, said
    assert "msc4191_shim_own_<variable>" in said
    # with the shim switched off, the same inventory runs as MDAD alone would
    done = run_playbook(tmp_path / "off", {**own, "msc4191_shim_enabled": False})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_scrape_job_is_a_valid_prometheus_job_for_the_rules(tmp_path: Path) -> None:
    resolved = resolve(tmp_path, {"prometheus_enabled": True})
    (job,) = resolved["prometheus_config_scrape_configs"]
    assert job["job_name"] == "msc4191-shim", "the job deploy/prometheus's rules select"
    (target,) = job["static_configs"][0]["targets"]
    assert target == f"msc4191-shim:{shim_config(resolved).admin.listen.port}"
    assert job["metrics_path"] == "/metrics"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"scrape_configs": resolved["prometheus_config_scrape_configs"]}),
        encoding="utf-8",
    )
    done = subprocess.run(
        [require_tool("promtool"), "check", "config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Prometheus reaches the shim on its own network
    unit = aux_file(resolved, "/msc4191-shim.service")
    assert "docker network connect prometheus msc4191-shim" in unit


def test_without_mdads_prometheus_the_shim_joins_no_prometheus_network(
    resolved: dict[str, Any],
) -> None:
    unit = aux_file(resolved, "/msc4191-shim.service")
    assert "network connect prometheus" not in unit


def test_the_start_date_is_when_the_variable_reached_master() -> None:
    """ec8a7a49 was written on 2025-08-14 but reached master on 2025-08-26 (MAS 1.1.0 came in
    the next commit): a checkout between has no endpoint variable, and Synapse bypasses the shim."""
    guide = (DEPLOY / "GUIDE.md").read_text(encoding="utf-8")
    snippet = VARS.read_text(encoding="utf-8")
    assert "| matrix-docker-ansible-deploy 2025-08-26 to 2026-01-26 |" in guide
    assert "2025-08-14 to" not in guide
    assert "from 2025-08-26" in snippet
