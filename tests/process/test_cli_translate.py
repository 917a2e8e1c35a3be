"""`msc4191-shim translate --config PATH URL...` as an operator runs it: one process per call."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import hdrs
from yarl import URL

from tests.support.e2e import demo_stack
from tests.support.paths import REPO

DL = "org.matrix.device_delete"


def translate(
    tmp_path: Path, config: Mapping[str, object], *urls: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"upstream": {"url": "http://127.0.0.1:8081"}, **config}))
    return subprocess.run(
        [sys.executable, "-m", "shim", "translate", "--config", str(path), *urls],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def verdicts(output: str) -> dict[str, str]:
    """URL -> what the shim does with it: the output is a URL line, then `  -> ...`."""
    lines = output.splitlines()
    assert len(lines) % 2 == 0, output
    pairs = dict(zip(lines[::2], lines[1::2], strict=True))
    for url, verdict in pairs.items():
        assert verdict.startswith("  -> "), (url, verdict)
        assert verdict.endswith(")"), "every verdict says why, in parentheses"
    return {url: verdict.removeprefix("  -> ") for url, verdict in pairs.items()}


def test_redirect_strategy(tmp_path: Path) -> None:
    urls = [
        f"https://id.example.org/account/?id_token_hint=t&action={DL}&device_id=A%2FB",
        "https://id.example.org/account/?action=org.matrix.session_end&device_id=A",
        "/account?action=org.matrix.account_deactivate&device_id=A",
        "/account/?action=org.example.unknown",
        "/account/",
        f"https://id.example.org/elsewhere/?action={DL}",
    ]
    done = translate(tmp_path, {}, *urls)
    assert (done.returncode, done.stderr) == (0, "")
    got = verdicts(done.stdout)
    # the token-bearing parameter is never echoed, in the URL line or in the verdict
    echoed = [url.replace("id_token_hint=t", "id_token_hint=[redacted]") for url in urls]
    assert list(got) == echoed
    got[urls[0]] = got.pop(echoed[0])
    assert got[urls[0]].startswith(
        "redirect to /account/?id_token_hint=[redacted]"
        "&action=org.matrix.session_end&device_id=A%2FB ("
    )
    assert "org.matrix.session_end" in got[urls[0]].partition("(")[2]
    assert got[urls[1]].startswith("pass through (")
    assert got[urls[2]].startswith("strip action -> redirect to /account?device_id=A (")
    assert "org.matrix.account_deactivate" in got[urls[2]]
    assert got[urls[3]].startswith("pass through (")
    assert "org.example.unknown" in got[urls[3]]
    assert got[urls[4]].startswith("pass through (")
    assert got[urls[5]] == "pass through (not an entry path)"


def test_rewrite_strategy_and_operator_redirect(tmp_path: Path) -> None:
    config = {
        "account_management": {
            "dialect": "msc3824",
            "strategy": "rewrite",
            "unsupported": {"redirect": "https://help.example.org/deactivate"},
        }
    }
    urls = [f"/account/?action={DL}&device_id=A", "/account/?action=org.matrix.account_deactivate"]
    done = translate(tmp_path, config, *urls)
    assert done.returncode == 0, done.stderr
    got = verdicts(done.stdout)
    assert got[urls[0]].startswith("forward upstream as /account/?action=session_end&device_id=A (")
    assert got[urls[1]].startswith("send to https://help.example.org/deactivate (")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"account_management": {"strategy": "bounce"}}, "account_management.strategy"),
        ({"account_management": {"dialct": "mas-0.9"}}, "account_management.dialct"),
    ],
)
def test_a_bad_configuration_exits_2_naming_the_key(
    tmp_path: Path, config: dict[str, object], key: str
) -> None:
    done = translate(tmp_path, config, "/account/")
    assert done.returncode == 2
    assert done.stdout == ""
    assert key in done.stderr


async def test_translate_says_what_the_running_shim_does(tmp_path: Path) -> None:
    """The CLI and the request path decide alike: each "redirect to X" is the shim's Location."""
    account = {"dialect": "msc3824"}
    queries = [
        f"action={DL}&device_id=A",
        "device_id=B&action=org.matrix.session_end&x=%FF",
        "action=org.matrix.cross_signing_reset",
        "action=org.matrix.profile&action=session_view",
        "action=profile",
        "action=",
    ]
    targets = [f"/account/?{query}" for query in queries]
    got = verdicts(translate(tmp_path, {"account_management": account}, *targets).stdout)
    async with (
        demo_stack("msc3824", {"account_management": account}) as stack,
        aiohttp.ClientSession() as client,
    ):
        for target in targets:
            url = URL(stack.shim_url + target, encoded=True)
            async with client.get(url, allow_redirects=False) as response:
                location = response.headers.get(hdrs.LOCATION)
            verdict = got[target]
            if response.status == 302:
                assert location is not None
                assert verdict.startswith(f"redirect to {location} (") or verdict.startswith(
                    f"strip action -> redirect to {location} ("
                ), (target, verdict)
            else:
                assert verdict.startswith("pass through ("), (target, verdict)
