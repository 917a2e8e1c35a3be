"""scripts/packages.py: the system packages per release, from a fixture os-release file each.

Debian 12 (where CI runs) gets every package under the names it had; Debian 13 has no
nginx-light; Ubuntu 24.04's chromium is a snap stub. What a release lacks is named, with why, so
the tests that need it can skip saying so.
"""

from __future__ import annotations

import subprocess
import sys
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
