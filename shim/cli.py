"""`msc4191-shim`: run, check-config, healthcheck, translate, doctor, config dump|schema.

Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shim import __version__
from shim.config.errors import ConfigError
from shim.config.source import CONFIG_ENV, DEFAULT_CONFIG_PATH, resolve_config_path
from shim.server.signals import hold_signals, release_signals

if TYPE_CHECKING:
    from shim.config.model import Config

EXIT_CONFIG = 2

EXAMPLES = """\
examples:
  msc4191-shim run --config /etc/msc4191-shim/config.yaml
  msc4191-shim check-config --config config.yaml
  msc4191-shim healthcheck                          # the image's HEALTHCHECK
  msc4191-shim config dump --config config.yaml     # the effective configuration
  msc4191-shim config schema > config.schema.json   # JSON Schema of the file
  msc4191-shim translate --dialect mas-0.9 \\
      'https://account.example.com/account/?action=org.matrix.device_delete&device_id=X'
  msc4191-shim doctor --homeserver https://example.com          # does it need the shim?
  msc4191-shim doctor --homeserver https://example.com --json   # the same, for CI
  msc4191-shim doctor --config config.yaml          # what the running shim does
"""

EXIT_CODES = """\
exit status:
  0  success; doctor: clients will work
  1  runtime failure; doctor: problems clients will trip over (listed last)
  2  bad configuration or usage
"""


def _epilog() -> str:
    from shim.config.env import known_variables
    from shim.config.parse import ENV_OVERRIDES

    names = known_variables()
    width = max(map(len, names))
    lines = ["environment (other MSC4191_SHIM_* names get a warning):"]
    lines.append(f"  {names[0]:<{width}}  the config file when --config is not given")
    lines += [f"  {n:<{width}}  overrides {'.'.join(ENV_OVERRIDES[n])}" for n in names[1:]]
    return "\n".join([EXAMPLES, *lines, "", EXIT_CODES])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msc4191-shim",
        description="Translate MSC4191 account-management deep links and discovery metadata "
        "in front of a legacy Matrix account portal.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # the metavars name the choices: argparse would otherwise print the `dest`, an internal name
    commands = parser.add_subparsers(
        dest="command", metavar="{run,check-config,translate,config,doctor}", required=True
    )
    config_help = "YAML config (default: $MSC4191_SHIM_CONFIG, then /etc/msc4191-shim/config.yaml)"

    run = commands.add_parser("run", help="serve the proxy")
    run.add_argument("--config", help=config_help)
    run.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)

    check = commands.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config", help=config_help)

    health = commands.add_parser(
        "healthcheck",
        help="exit 0 if the shim on this host answers /healthz on its configured admin listener",
    )
    health.add_argument("--config", help=config_help)

    translate = commands.add_parser("translate", help="say what the shim does with deep links")
    translate.add_argument("--config", help=config_help)
    translate.add_argument(
        "--dialect",
        help="the portal's dialect (stable, mas-0.7, mas-0.9, msc3824) instead of a config file",
    )
    translate.add_argument("urls", nargs="+", metavar="URL")

    config = commands.add_parser("config", help="show the effective configuration or its schema")
    config_commands = config.add_subparsers(
        dest="config_command", metavar="{dump,schema}", required=True
    )
    dump = config_commands.add_parser(
        "dump",
        help="the effective configuration: defaults and environment applied, secrets redacted",
    )
    dump.add_argument("--config", help=config_help)
    config_commands.add_parser("schema", help="the JSON Schema of the configuration file")

    doctor = commands.add_parser(
        "doctor",
        help="check what clients get from a deployment, and whether it needs the shim",
        description="Follow the discovery chain clients follow (--homeserver, --issuer), open "
        "every advertised deep link and each common client's, and say whether the deployment "
        "needs the shim. With --config (and no --homeserver): what the shim is doing for its "
        "portal, and whether it can go; with both, both.",
    )
    doctor.add_argument(
        "--homeserver", metavar="URL", help="the homeserver clients use, e.g. https://example.com"
    )
    doctor.add_argument(
        "--issuer", metavar="URL", help="the OAuth issuer (default: what the homeserver names)"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    doctor.add_argument("--config", help=config_help)
    doctor.add_argument(
        "--admin-url",
        help="the shim's admin listener (default: from admin.listen, 0.0.0.0 read as 127.0.0.1)",
    )

    return parser


#: per command, what it can do without a configuration file (said when there is none)
WITHOUT_A_FILE = {
    "translate": "or name the portal's dialect instead of a file: "
    "msc4191-shim translate --dialect mas-0.9 URL",
    "doctor": "or check a deployment from the clients' side, which needs no file: "
    "msc4191-shim doctor --homeserver https://example.com",
}


def missing_default_file(command: str, path: str | None) -> str | None:
    """What to say when neither --config nor the variable names a file and the default is
    absent: how to name one, and what the command can do without one. None otherwise."""
    if path is not None or CONFIG_ENV in os.environ or os.path.exists(DEFAULT_CONFIG_PATH):
        return None
    lines = [
        f"msc4191-shim {command}: no configuration file: no --config given, {CONFIG_ENV} "
        f"is not set, and the default {DEFAULT_CONFIG_PATH} does not exist",
        f"  give one with --config PATH or {CONFIG_ENV}=PATH "
        "(config.example.yaml documents every key; only upstream.url is required)",
    ]
    if command in WITHOUT_A_FILE:
        lines.append(f"  {WITHOUT_A_FILE[command]}")
    return "\n".join(lines)


def _load(path: str | None, command: str) -> Config | None:
    # deferred, like every heavy import here, so that `main` holds the signals first
    from shim.config.env import unknown_variable_warnings
    from shim.config.parse import load_config

    for warning in unknown_variable_warnings(os.environ):
        print(warning, file=sys.stderr)
    missing = missing_default_file(command, path)
    if missing is not None:
        print(missing, file=sys.stderr)
        return None
    resolved = resolve_config_path(path, os.environ)
    try:
        return load_config(resolved)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _load_to_run(path: str | None, command: str) -> Config | None:
    """`_load`, and the CA bundle and TLS files loaded into SSL contexts as `run` loads them."""
    from shim.config.tls import check_contexts

    config = _load(path, command)
    if config is None:
        return None
    try:
        check_contexts(config, resolve_config_path(path, os.environ))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    return config


def main(argv: Sequence[str] | None = None) -> int:
    hold_signals()  # first: a SIGHUP while the shim starts must not end it (exit 129)
    args = _parser().parse_args(argv)
    if args.command != "run":
        release_signals()
    if args.command == "check-config":
        config = _load_to_run(args.config, "check-config")
        if config is None:
            return EXIT_CONFIG
        print(f"configuration OK: {resolve_config_path(args.config, os.environ)}")
        return 0
    if args.command == "healthcheck":
        return _healthcheck(args.config)
    if args.command == "translate":
        return _translate(args.config, args.dialect, args.urls)
    if args.command == "config":
        return _config(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "run":
        return _run(args)
    return EXIT_CONFIG  # pragma: no cover - argparse enforces the choices


def _healthcheck(path: str | None) -> int:
    from shim.doctor.health import check_health

    config = _load(path, "healthcheck")
    if config is None:
        return EXIT_CONFIG
    healthy, found = check_health(config.admin.listen)
    print(found, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def _translate(path: str | None, dialect: str | None, urls: Sequence[str]) -> int:
    from shim.core.translate import describe_url

    if dialect is not None and path is None:
        config = _with_dialect(dialect)
    else:
        config = _load(path, "translate")
        if config is not None and dialect is not None:
            print("translate: give --config or --dialect, not both", file=sys.stderr)
            return EXIT_CONFIG
    if config is None:
        return EXIT_CONFIG
    for url in urls:
        print(describe_url(url, config.account_management))
    return 0


def _with_dialect(dialect: str) -> Config | None:
    """A configuration with every default but the dialect: what `translate --dialect` needs."""
    from shim.config.parse import parse_config

    raw = {"upstream": {"url": "http://portal.invalid"}, "account_management": {"dialect": dialect}}
    try:
        return parse_config(raw, "--dialect")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _config(args: argparse.Namespace) -> int:
    import json

    if args.config_command == "schema":
        from shim.config.schema import config_schema

        print(json.dumps(config_schema(), indent=2))
        return 0
    from shim.config.dump import dump_config

    config = _load(args.config, "config dump")
    if config is None:
        return EXIT_CONFIG
    print(dump_config(config, resolve_config_path(args.config, os.environ)), end="")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    if args.homeserver is None and args.issuer is None:
        from shim.doctor.probe import run_doctor

        config = _load(args.config, "doctor")
        if config is None:
            return EXIT_CONFIG
        return run_doctor(config, shim_admin_url=args.admin_url, as_json=args.json)
    from shim.doctor.chain import parse_base_url
    from shim.doctor.fetch import run_homeserver_doctor

    try:
        homeserver = None if args.homeserver is None else parse_base_url(args.homeserver)
        issuer = None if args.issuer is None else parse_base_url(args.issuer)
    except ValueError as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    config = None if args.config is None else _load(args.config, "doctor")
    if args.config is not None and config is None:
        return EXIT_CONFIG
    return run_homeserver_doctor(
        homeserver, issuer, config=config, admin_url=args.admin_url, as_json=args.json
    )


def _run(args: argparse.Namespace) -> int:
    config = _load_to_run(args.config, "run")
    if config is None:
        return EXIT_CONFIG
    if args.workers < 1:
        print(f"--workers: expected 1 or more, got {args.workers}", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers > 1 and not args.worker:
        from shim.server.workers import run_workers

        argv = ["run", "--config", resolve_config_path(args.config, os.environ)]
        return run_workers(args.workers, argv)
    from shim.server.process import run_loop, serve

    config_path = resolve_config_path(args.config, os.environ)
    return run_loop(lambda: serve(config, config_path, reuse_port=args.worker))
