"""The system packages `scripts/setup.sh --test` installs, chosen per release from /etc/os-release.

    python3 scripts/packages.py [OS_RELEASE_FILE]    one line per package: `install NAME`,
                                                     `lean NAME` (without recommends) or
                                                     `absent TOOL REASON` (the tests skip)
    python3 scripts/packages.py available NAME...   the NAMEs the archive offers, on one line;
                                                     each other one said on stderr

Debian 12 (bookworm, where CI runs) gets every package. Elsewhere a package may be named
differently (`nginx-light` is gone in Debian 13) or not be usable at all (Ubuntu's `chromium` is
a snap stub, which a headless test cannot run): `plan` says so, setup.sh installs the rest, and
the tests that need a missing one skip with a message naming it (tests/support/prerequisites.py
asks `absent_tools` for this machine). Standard library only: setup.sh runs it with the
system's Python before any virtualenv exists. `plan` is pure; tests/unit/scripts feeds it a
fixture os-release file per release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class Package:
    name: str
    #: False: apt-get --no-install-recommends (Debian's prometheus recommends a set of exporters
    #: and starts them; the tests start their own Prometheus and want none of them)
    recommends: bool = True


@dataclass(frozen=True)
class Plan:
    release: str
    install: tuple[Package, ...]
    #: a tool the tests need that this release cannot provide -> why (what the skip says)
    absent: Mapping[str, str] = field(default_factory=dict)


_BOOKWORM = {
    "chromium": Package("chromium"),
    "nginx": Package("nginx-light"),
    "wrk": Package("wrk"),
    "gcc": Package("gcc"),
    "python3-dev": Package("python3-dev"),
    "prometheus": Package("prometheus", recommends=False),
}
#: Debian 13 folded nginx-light, -core and -full into `nginx`; it ships Python 3.13
_TRIXIE = {**_BOOKWORM, "nginx": Package("nginx")}
_IMAGE_PYTHON = "python3.11"


def _no_image_python(release: str, python: str) -> str:
    return (
        f"{release} ships Python {python}; the image test replays the python:3.11 image and "
        "needs a world-runnable Python 3.11 (tests/process/test_image_entrypoint.py)"
    )


def parse_os_release(text: str) -> dict[str, str]:
    """The KEY=value lines of os-release(5), quotes removed."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip("\"'")
    return values


def plan(os_release: Mapping[str, str]) -> Plan:
    """What to install on this release, and what the tests must do without."""
    system, version = os_release.get("ID", ""), os_release.get("VERSION_ID", "")
    name = os_release.get("PRETTY_NAME") or f"{system} {version}".strip() or "this system"
    if system == "debian" and version == "12":
        return Plan(name, tuple(_BOOKWORM.values()))
    if system == "ubuntu" and version == "24.04":
        packages = {**_TRIXIE}
        del packages["chromium"]
        absent = {
            "chromium": "Ubuntu 24.04's chromium package is a snap stub, which headless tests "
            "cannot run; the browser tests need a deb Chromium at /usr/bin/chromium",
            _IMAGE_PYTHON: _no_image_python(name, "3.12"),
        }
        return Plan(name, tuple(packages.values()), absent)
    # Debian 13, and anything newer or unknown: the current Debian names; setup.sh skips a
    # package the archive does not have and says so
    absent = {_IMAGE_PYTHON: _no_image_python(name, "3.13")} if system == "debian" else {}
    return Plan(name, tuple(_TRIXIE.values()), absent)


def absent_tools(os_release: Path = OS_RELEASE) -> Mapping[str, str]:
    """`plan(...).absent` for this machine; nothing when it has no os-release file."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return {}
    return plan(parse_os_release(text)).absent


def lines(chosen: Plan) -> list[str]:
    """What setup.sh reads: `install NAME`, `lean NAME`, `absent TOOL REASON`."""
    out = [f"{'install' if p.recommends else 'lean'} {p.name}" for p in chosen.install]
    out += [f"absent {tool} {reason}" for tool, reason in chosen.absent.items()]
    return out


def candidates(policy: str) -> dict[str, bool]:
    """Which packages `apt-cache policy NAME...` (in the C locale) offers a version of.

    Each package is a section: its name and a colon at the start of a line, then indented
    `Installed:`, `Candidate:` and the version table. `Candidate: (none)` is a name the archive
    knows but cannot install (a virtual package); a name it does not know gets no section.
    """
    offered: dict[str, bool] = {}
    section = None
    for line in policy.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            section = line[:-1]
            offered[section] = False
        elif section is not None and line.strip().startswith("Candidate:"):
            offered[section] = line.split(":", 1)[1].strip() not in ("", "(none)")
    return offered


def available(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(offered, not offered) of `names`, asking apt-cache once.

    Read whole, never through a pipe to `grep -q`: under `set -o pipefail` the early exit made
    apt-cache die of SIGPIPE, and present packages (nginx, wrk, python3-dev) were reported
    missing. The C locale, because apt translates `Candidate`.
    """
    wanted = list(names)
    if not wanted:
        return [], []
    done = subprocess.run(
        ["apt-cache", "policy", *wanted],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    offered = candidates(done.stdout)
    return (
        [name for name in wanted if offered.get(name)],
        [name for name in wanted if not offered.get(name)],
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["available"]:
        kept, dropped = available(argv[1:])
        for name in dropped:
            print(
                f"Not in this release's archive: {name}; the tests that need it skip",
                file=sys.stderr,
            )
        print(" ".join(kept))
        return 0
    path = Path(argv[0]) if argv else OS_RELEASE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"packages.py: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    print("\n".join(lines(plan(parse_os_release(text)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
