"""Secrets in logs and answers: the process's stderr, 502 bodies, translate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import RawUpstreamFactory, ShimFactory, ShimProcessFactory
from tests.support.loopback import exchange_one, read_head, run_cli, shim_settings, write_config

SECRET = "s3cr3tVALUE"
#: the reported list, and names that only *contain* token, secret, password, code or ticket
PARAMS = [
    "ticket",
    "token",
    "id_token",
    "access_token",
    "refresh_token",
    "password",
    "code_verifier",
    "device_code",
    "user_code",
    "loginToken",
    "client_secret",
    "mas_session_token",
    "new_password",
    "recovery_code",
    "cas_ticket",
    "webhook_secret",
]


async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


async def test_no_credential_parameter_is_logged(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    upstream = await raw_upstream_factory(not_found)
    settings = shim_settings(upstream.url, log={"format": "json", "level": "DEBUG"})
    shim = await shim_process_factory(settings)
    for name in PARAMS:
        target = f"/callback?action=x&{name}={SECRET}-{name}"
        request = f"GET {target} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
        head, _ = await exchange_one(shim.port, request.encode())
        assert head.status == 404
    await shim.wait_for_event("request", count=len(PARAMS))
    await shim.terminate(30)
    assert SECRET not in shim.stderr
    paths = [event["path"] for event in shim.events("request")]
    assert paths[0] == "/callback?action=x&ticket=[redacted]"


async def test_a_502_never_echoes_the_upstream_s_header_bytes(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=" + SECRET.encode() + b"\r\n"
            b"Bad\x01Line: " + SECRET.encode() + b"\r\n"
            b"X-Folded: a\r\n " + SECRET.encode() + b"\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    upstream = await raw_upstream_factory(broken)
    shim = await shim_factory(shim_settings(upstream.url))
    for target in ("/login", "/.well-known/openid-configuration"):
        request = f"GET {target} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
        head, body = await exchange_one(shim.port, request.encode())
        assert head.status == 502, body
        assert SECRET.encode() not in body
        assert all(SECRET not in value for _, value in head.fields)


URL = (
    "https://account.example.com/account/?action=org.matrix.device_delete&device_id=D"
    f"&id_token_hint={SECRET}&code={SECRET}"
)


async def _translate(tmp_path: Path) -> str:
    config = tmp_path / "shim.yaml"
    write_config(config, shim_settings("http://127.0.0.1:9"))
    status, out, err = await run_cli("translate", "--config", str(config), URL)
    assert status == 0, err
    return out


async def test_translate_redacts_its_explanation(tmp_path: Path) -> None:
    out = await _translate(tmp_path)
    explanation = out.splitlines()[1]
    assert "id_token_hint=[redacted]" in explanation
    assert SECRET not in explanation


async def test_translate_redacts_the_url_it_echoes(tmp_path: Path) -> None:
    assert SECRET not in await _translate(tmp_path)
