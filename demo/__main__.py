"""`python -m demo`: the legacy portal with the shim in front (default), or the portal alone.

Exit status: 0 after Ctrl-C or SIGTERM, 1 when its port is taken, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="An emulated legacy Matrix account portal, with msc4191-shim in front of it.",
    )
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("shim", help="the portal with the shim in front (the default)")
    portal = commands.add_parser("portal", help="only the emulated legacy portal")
    for sub in (parser, demo):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument(
            "--port",
            type=int,
            default=8080,
            help="the shim's port (default 8080; `make demo PORT=8090` passes it)",
        )
        sub.add_argument("--era", default="mas-0.9", help="the emulated portal (default mas-0.9)")
    portal.add_argument("--listen", default="127.0.0.1:8081")
    portal.add_argument("--era", default="mas-0.9")
    portal.add_argument("--public-base", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "portal":
        from demo.portal import run_portal  # only aiohttp: the portal image has no shim

        return run_portal(listen=args.listen, era=args.era, public_base=args.public_base)
    from demo.run import run_demo

    return run_demo(host=args.host, port=args.port, era=args.era)


if __name__ == "__main__":
    sys.exit(main())
