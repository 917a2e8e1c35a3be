"""`msc4191-shim`: run, check-config, translate, doctor.

Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from msc4191_shim import __version__
from msc4191_shim.config.errors import ConfigError
from msc4191_shim.config.parse import Config, load_config, resolve_config_path

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msc4191-shim",
        description="Translate MSC4191 account-management deep links and discovery metadata "
        "in front of a legacy Matrix account portal.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = "YAML config (default: $MSC4191_SHIM_CONFIG, then /etc/msc4191-shim/config.yaml)"

    run = commands.add_parser("run", help="serve the proxy")
    run.add_argument("--config", help=config_help)
    run.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)

    check = commands.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config", help=config_help)

    translate = commands.add_parser("translate", help="say what the shim does with deep links")
    translate.add_argument("--config", help=config_help)
    translate.add_argument("urls", nargs="+", metavar="URL")

    doctor = commands.add_parser("doctor", help="say what the shim is doing and whether it can go")
    doctor.add_argument("--config", help=config_help)
    doctor.add_argument(
        "--admin-url",
        help="the shim's admin listener (default: from admin.listen, 0.0.0.0 read as 127.0.0.1)",
    )

    return parser


def _load(path: str | None) -> Config | None:
    resolved = resolve_config_path(path, os.environ)
    try:
        return load_config(resolved)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        config = _load(args.config)
        if config is None:
            return EXIT_CONFIG
        print(f"configuration OK: {resolve_config_path(args.config, os.environ)}")
        return 0
    if args.command == "translate":
        return _translate(args.config, args.urls)
    if args.command == "doctor":
        return _doctor(args.config, args.admin_url)
    if args.command == "run":
        return _run(args)
    return EXIT_CONFIG  # pragma: no cover - argparse enforces the choices


def _translate(path: str | None, urls: Sequence[str]) -> int:
    from msc4191_shim.core.explain import explain_url

    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    for url in urls:
        print(f"{url}\n  -> {explain_url(url, config.account_management)}")
    return 0


def _doctor(path: str | None, admin_url: str | None) -> int:
    from msc4191_shim.doctor.probe import run_doctor

    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    return run_doctor(config, shim_admin_url=admin_url)


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.workers < 1:
        print(f"--workers: expected 1 or more, got {args.workers}", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers > 1 and not args.worker:
        from msc4191_shim.server.workers import run_workers

        argv = ["run", "--config", resolve_config_path(args.config, os.environ)]
        return run_workers(args.workers, argv)
    from msc4191_shim.server.process import run_loop, serve

    config_path = resolve_config_path(args.config, os.environ)
    return run_loop(lambda: serve(config, config_path, reuse_port=args.worker))
