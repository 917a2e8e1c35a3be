"""Starting a target: the shared origin itself, nginx as a reverse proxy, or the shim.

Each proxy is configured as it would be deployed (see bench/README.md), on its own free port in
front of the origin, and is ready, every worker listening, when its start function returns.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import procs
import upstream
from plan import ROOT, Settings, Target
from procs import BenchError, Server

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"

SHIM_CONFIG = """\
listen: "127.0.0.1:{port}"
upstream:
  url: "http://{origin}"
shutdown_grace: 2s
admin:
  listen: "127.0.0.1:{admin_port}"
log:
  format: json
  level: {log_level}
account_management:
  paths: ["/account/"]
  dialect: mas-0.9
  strategy: redirect
discovery:
  cache: true
"""


@dataclass(frozen=True, slots=True)
class Running:
    """A target that answers: `server` is the origin's own when the target is the origin."""

    target: Target
    server: Server


def fill_template(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    if (left := re.search(r"\{\{\w+\}\}", template)) is not None:
        raise BenchError(f"{TEMPLATE}: no value for {left.group(0)}")
    return template


def start_nginx_proxy(target: Target, origin: str, settings: Settings) -> Server:
    address = f"127.0.0.1:{procs.free_port()}"
    prefix = settings.workdir
    access = f"{prefix}/{target.name}-access.log combined" if settings.access_log else "off"
    values = {"workers": str(target.workers), "prefix": str(prefix), "name": target.name}
    values |= {"access_log": access, "origin": origin, "listen": address}
    config = fill_template(TEMPLATE.read_text(encoding="utf-8"), values)
    cpus = settings.layout.proxy(target.workers)
    return upstream.start_nginx(prefix, config, target.name, cpus, address)


def start_shim(target: Target, origin: str, settings: Settings) -> Server:
    port, admin_port = procs.free_port(), procs.free_port()
    level = "INFO" if settings.access_log else "WARNING"
    config = settings.workdir / f"{target.name}.yaml"
    config.write_text(
        SHIM_CONFIG.format(port=port, origin=origin, admin_port=admin_port, log_level=level)
    )
    log = settings.workdir / f"{target.name}.log"
    command = [sys.executable, "-m", "shim", "run", "--config", str(config)]
    command += ["--workers", str(target.workers)]
    process = procs.spawn(command, settings.layout.proxy(target.workers), log, cwd=ROOT)
    try:
        upstream.wait_ready(f"127.0.0.1:{admin_port}", "/readyz", process, timeout=20.0)
        procs.wait_listeners(port, target.workers, process)
    except BenchError as exc:
        procs.stop(process)
        raise BenchError(f"the shim did not start: {exc}\n{procs.log_tail(log)}") from exc
    return Server(process, f"127.0.0.1:{port}", log)


def start_target(target: Target, origin: Server, settings: Settings) -> Running:
    if target.kind == "origin":
        return Running(target, origin)
    if target.kind == "nginx":
        return Running(target, start_nginx_proxy(target, origin.address, settings))
    return Running(target, start_shim(target, origin.address, settings))
