"""scripts/packages.py: the system packages per release, from a fixture os-release file each.

Debian 12 (where CI runs) gets every package under the names it had; Debian 13 has no
nginx-light; Ubuntu 24.04's chromium is a snap stub. What a release lacks is named, with why, so
the tests that need it can skip saying so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import DATA, REPO, load_script

packages = load_script("scripts/packages.py")
RELEASES = DATA / "os-release"


def plan_for(release: str) -> Any:
    text = (RELEASES / release).read_text(encoding="utf-8")
    return packages.plan(packages.parse_os_release(text))


def names(plan: Any) -> list[str]:
    return [p.name for p in plan.install]


def test_debian_12_gets_everything_ci_needs() -> None:
    plan = plan_for("debian-12")
    assert names(plan) == ["chromium", "nginx-light", "wrk", "gcc", "python3-dev", "prometheus"]
    assert plan.absent == {}
    assert [p.name for p in plan.install if not p.recommends] == ["prometheus"]


def test_debian_13_has_nginx_not_nginx_light_and_no_python_3_11() -> None:
    plan = plan_for("debian-13")
    assert names(plan) == ["chromium", "nginx", "wrk", "gcc", "python3-dev", "prometheus"]
    assert list(plan.absent) == ["python3.11"]
    assert "ships Python 3.13" in plan.absent["python3.11"]


def test_ubuntu_24_04_has_no_usable_chromium_deb() -> None:
    plan = plan_for("ubuntu-24.04")
    assert "chromium" not in names(plan)
    assert "nginx" in names(plan)
    assert "snap stub" in plan.absent["chromium"]
    assert plan.release == "Ubuntu 24.04.3 LTS"


def test_an_unknown_release_gets_the_current_debian_names() -> None:
    plan = packages.plan({"ID": "debian", "VERSION_ID": "14"})
    assert names(plan) == names(plan_for("debian-13"))
    assert names(packages.plan({})) == names(plan_for("debian-13"))


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ('ID=debian\nVERSION_ID="12"\n', {"ID": "debian", "VERSION_ID": "12"}),
        ("# a comment\nNAME='Ubuntu'\n\nnonsense\n", {"NAME": "Ubuntu"}),
    ],
)
def test_os_release_lines(text: str, values: dict[str, str]) -> None:
    assert packages.parse_os_release(text) == values


def test_the_lines_setup_sh_reads() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/packages.py"), str(RELEASES / "ubuntu-24.04")],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["install nginx", "install wrk"]
    assert "lean prometheus" in lines
    assert [line.split()[:2] for line in lines if line.startswith("absent")] == [
        ["absent", "chromium"],
        ["absent", "python3.11"],
    ]
    missing = subprocess.run(
        [sys.executable, str(REPO / "scripts/packages.py"), str(RELEASES / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("packages.py: cannot read")


def test_a_test_needing_what_the_release_lacks_skips_naming_it_even_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support import prerequisites

    lacks = {"chromium": "a snap stub"}
    monkeypatch.setattr(prerequisites, "release_lacks", lambda: lacks)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception, match="needs chromium, which this release does not"):
        prerequisites.unavailable("/usr/bin/chromium is missing", "chromium")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        prerequisites.unavailable("wrk is missing", "wrk")


#: `apt-cache policy nginx wrk no-such-package python3-dev chromium fonts` on Debian 13 (trixie);
#: a name apt does not know gets no section, a virtual one `Candidate: (none)`
POLICY = """\
nginx:
  Installed: (none)
  Candidate: 1.26.3-3+deb13u10
  Version table:
     1.26.3-3+deb13u10 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
wrk:
  Installed: (none)
  Candidate: 4.1.0-4+b1
  Version table:
     4.1.0-4+b1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
python3-dev:
  Installed: (none)
  Candidate: 3.13.5-1
  Version table:
     3.13.5-1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
chromium:
  Installed: 156.0.8078.79-1~deb13u1
  Candidate: 156.0.8078.79-1~deb13u1
  Version table:
 *** 156.0.8078.79-1~deb13u1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
        100 /var/lib/dpkg/status
fonts:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


def test_what_apt_cache_policy_offers() -> None:
    assert packages.candidates(POLICY) == {
        "nginx": True,
        "wrk": True,
        "python3-dev": True,
        "chromium": True,
        "fonts": False,
    }
    assert packages.candidates("") == {}


WANTED = ["nginx", "wrk", "no-such-package", "python3-dev", "fonts"]


def test_available_reads_apt_cache_whole_in_the_c_locale(tmp_path: Path) -> None:
    # setup.sh used to pipe `apt-cache policy` into `grep -q` under pipefail: grep's early exit
    # killed apt-cache with SIGPIPE and nginx, wrk and python3-dev were "not in the archive" on
    # a fresh Debian 13. A version table far longer than a pipe's buffer must change nothing.
    calls = tmp_path / "calls"
    table = "".join(f"     1.0-{n} 500\n" for n in range(20_000))
    long_policy = POLICY.replace("  Version table:\n", "  Version table:\n" + table, 1)
    (tmp_path / "policy").write_text(long_policy)
    fake = tmp_path / "apt-cache"
    fake.write_text(
        f'#!/bin/sh\necho "LC_ALL=$LC_ALL $*" >> {calls}\nexec cat {tmp_path / "policy"}\n'
    )
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/packages.py"), "available", *WANTED],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "LC_ALL": "de_DE.UTF-8"},
    )
    assert done.stdout == "nginx wrk python3-dev\n"
    assert done.stderr.splitlines() == [
        "Not in this release's archive: no-such-package; the tests that need it skip",
        "Not in this release's archive: fonts; the tests that need it skip",
    ]
    assert calls.read_text() == "LC_ALL=C policy nginx wrk no-such-package python3-dev fonts\n"


def test_available_with_no_names_asks_nothing() -> None:
    assert packages.available([]) == ([], [])
