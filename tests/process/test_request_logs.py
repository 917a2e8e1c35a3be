"""The real process logs one JSON line per request and per lifecycle event, and no secret."""

from __future__ import annotations

import json
import signal

import aiohttp
import pytest
from yarl import URL

from tests.conftest import ShimProcessFactory
from tests.support.e2e import portal
from tests.support.loopback import shim_settings

SECRET = "s3cr3tvalue"
QUERIES = [
    f"/account/?id_token_hint={SECRET}&action=org.matrix.device_delete&device_id=D1",
    f"/callback?code={SECRET}&state={SECRET}",
    f"/account/?action=org.matrix.profile&login_hint={SECRET}",
    f"/account/?org.matrix.msc4198.login_hint={SECRET}",
]


async def test_one_json_line_per_request_and_no_secret_anywhere(
    shim_process_factory: ShimProcessFactory,
) -> None:
    async with portal("mas-0.9") as upstream:
        settings = shim_settings(upstream, log={"format": "json", "level": "DEBUG"})
        shim = await shim_process_factory(settings)
        headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"}
        async with aiohttp.ClientSession() as session:
            for query in QUERIES:
                url = URL(shim.url + query, encoded=True)
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    await response.read()
        await shim.wait_for_event("request", count=len(QUERIES))
        assert await shim.terminate(30) == 0
        await shim.wait_for_event("stopped")
    assert SECRET not in shim.stderr
    assert "Traceback" not in shim.stderr
    requests = shim.events("request")
    assert len(requests) == len(QUERIES), requests
    first = requests[0]
    for key in ("time", "method", "path", "status", "duration_ms", "bytes", "upstream_status"):
        assert key in first, (key, first)
    assert first["status"] == 302
    assert first["kind"] == "deeplink"
    assert first["outcome"] == "redirect"
    assert first["path"].startswith("/account/?id_token_hint=")
    assert "device_id=D1" in first["path"]
    assert requests[1]["kind"] == "passthrough"
    assert requests[1]["upstream_status"] == 404
    (ready,) = shim.events("ready")
    # the `uvloop` extra is installed with the tests: the shim runs on it
    assert ready["event_loop"] == "uvloop"
    lifecycle = [line["event"] for line in _json_lines(shim.lines) if line["event"] != "request"]
    assert lifecycle[0] == "ready"
    assert lifecycle[-2:] == ["draining", "stopped"]


def _json_lines(lines: list[str]) -> list[dict[str, object]]:
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert all(isinstance(line, dict) and "event" in line for line in parsed), parsed
    return parsed


async def test_access_lines_held_for_the_flush_interval_are_written_at_shutdown(
    shim_process_factory: ShimProcessFactory,
) -> None:
    async with portal("mas-0.9") as upstream:
        settings = shim_settings(upstream, log={"format": "json", "flush_interval": "10s"})
        shim = await shim_process_factory(settings)
        await _get(shim.url + "/healthz-of-the-portal")
        with pytest.raises(TimeoutError):  # held for up to 10 s
            await shim.wait_for_event("request", within=1.0)
        assert await shim.terminate(30) == 0
        await shim.wait_for_event("stopped")
    events = [line["event"] for line in _json_lines(shim.lines)]
    assert events.count("request") == 1
    assert events.index("request") < events.index("stopped")


async def test_a_reload_applies_a_new_flush_interval(
    shim_process_factory: ShimProcessFactory,
) -> None:
    async with portal("mas-0.9") as upstream:
        settings = shim_settings(upstream, log={"format": "json", "flush_interval": "10s"})
        shim = await shim_process_factory(settings)
        shim.rewrite_config(shim_settings(upstream, log={"format": "json", "flush_interval": 0}))
        shim.send_signal(signal.SIGHUP)
        await shim.wait_for_event("reloaded")
        await _get(shim.url + "/healthz-of-the-portal")
        await shim.wait_for_event("request", within=1.0)  # not held for 10 s


async def _get(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await response.read()


async def test_ecs_lines_from_the_real_process(shim_process_factory: ShimProcessFactory) -> None:
    """`log.format: ecs`: every line is an ECS object; a request's carries the names Elastic and
    Loki index (`event` and `client` objects), its User-Agent, and no secret."""
    async with portal("mas-0.9") as upstream:
        shim = await shim_process_factory(shim_settings(upstream, log={"format": "ecs"}))
        headers = {"User-Agent": "Element/1.11 (test)", "Authorization": f"Bearer {SECRET}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                URL(shim.url + QUERIES[0], encoded=True), headers=headers, allow_redirects=False
            ) as response,
        ):
            assert response.status == 302
        await shim.wait_for_event("request")
        assert await shim.terminate(30) == 0
    assert SECRET not in shim.stderr
    lines = _json_lines(shim.lines)
    for line in lines:
        assert list(line)[:4] == ["@timestamp", "log.level", "message", "ecs.version"], line
        assert isinstance(line["event"], dict), line
        assert not isinstance(line.get("client", {}), str), line
    (request,) = [line["ecs"] for line in shim.events("request")]
    assert request["http"]["request"]["method"] == "GET"
    assert request["http"]["response"]["status_code"] == 302
    assert request["url"]["path"] == "/account/"
    assert "device_id=D1" in request["url"]["query"]
    assert request["client"]["ip"] == "127.0.0.1"
    assert request["user_agent"]["original"] == "Element/1.11 (test)"
    assert isinstance(request["event"]["duration"], int)
    assert request["event"]["duration"] > 0
    assert request["message"].startswith("GET /account/?id_token_hint=")
    assert request["message"].endswith(" 302")
    assert [e["event"] for e in map(_ecs_name, lines)][-2:] == ["draining", "stopped"]


def _ecs_name(line: dict[str, object]) -> dict[str, object]:
    event = line["event"]
    assert isinstance(event, dict)
    return {"event": event.get("action", "request")}


async def test_a_deep_links_line_names_the_user_agent_whom_to_chase(
    shim_process_factory: ShimProcessFactory,
) -> None:
    element_x = "Element X/25.01.2 (iPhone; iOS 18.2; Scale/3.00)"
    async with portal("mas-0.9") as upstream:
        shim = await shim_process_factory(shim_settings(upstream))
        async with aiohttp.ClientSession() as session:
            for target, agent in (
                ("/account/?action=org.matrix.session_end", element_x),
                ("/account/?action=org.matrix.sessions_list", "x" * 1000),
                ("/oauth2/keys.json", element_x),
            ):
                headers = {"User-Agent": agent}
                async with session.get(shim.url + target, headers=headers) as response:
                    await response.read()
        await shim.wait_for_event("request", count=3)
        assert await shim.terminate(30) == 0
    legacy, long, passthrough = shim.events("request")
    assert (legacy["kind"], legacy["user_agent"]) == ("deeplink", element_x)
    assert long["user_agent"] == "x" * 256  # cut: it is the client's
    assert passthrough["kind"] == "passthrough"
    assert "user_agent" not in passthrough
