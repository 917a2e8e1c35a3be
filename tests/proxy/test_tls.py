"""TLS on the listener (reloaded with the config) and a verified https upstream."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import trustme
import yaml
from aiohttp import web
from yarl import URL

from shim.config.parse import load_config
from shim.server.process import Shim, start, stop


def _write_cert(ca: trustme.CA, directory: Path, name: str) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@asynccontextmanager
async def _upstream(context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello over {request.scheme}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _peer_serial(url: str, context: ssl.SSLContext) -> tuple[str, bytes]:
    """The body of a GET, and the certificate a fresh handshake presents."""
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        text = await response.text()
    parsed = URL(url)
    assert parsed.host is not None
    assert parsed.port is not None
    _, writer = await asyncio.open_connection(parsed.host, parsed.port, ssl=context)
    der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return text, der


@asynccontextmanager
async def _tls_shim(
    tmp_path: Path, cert_file: Path, key_file: Path
) -> AsyncIterator[tuple[Shim, str]]:
    """A shim with TLS on its listener, started from a file so `reload` re-reads it."""
    async with _upstream() as upstream_port:
        raw = {
            "listen": "127.0.0.1:0",
            "admin": {"listen": "127.0.0.1:0"},
            "upstream": {"url": f"http://127.0.0.1:{upstream_port}"},
            "tls": {"cert_file": str(cert_file), "key_file": str(key_file)},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        shim = await start(load_config(str(path)), str(path))
        try:
            yield shim, f"https://{shim.bound[0]}/x"
        finally:
            await stop(shim)


async def test_tls_listener_serves_and_reloads_its_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = _write_cert(ca, tmp_path, "first")
    async with _tls_shim(tmp_path, cert_file, key_file) as (shim, url):
        text, first = await _peer_serial(url, _client_context(ca))
        assert text == "hello over http"
        # a new certificate, same paths: SIGHUP's reload applies it to new handshakes
        new_cert, new_key = _write_cert(ca, tmp_path, "second")
        cert_file.write_bytes(new_cert.read_bytes())
        key_file.write_bytes(new_key.read_bytes())
        shim.reload()
        text, second = await _peer_serial(url, _client_context(ca))
        assert text == "hello over http"
        assert second != first
        # a client that does not trust the CA is refused: the listener really is TLS
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(url)


async def test_a_broken_certificate_on_reload_keeps_the_running_one(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = _write_cert(ca, tmp_path, "good")
    async with _tls_shim(tmp_path, cert_file, key_file) as (shim, url):
        _, before = await _peer_serial(url, _client_context(ca))
        cert_file.write_text("not a certificate\n")
        shim.reload()
        _, after = await _peer_serial(url, _client_context(ca))
        assert after == before


async def test_https_upstream_is_verified_against_the_given_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with _upstream(server_context) as upstream_port:
        for ca_key, expected_status in ((str(ca_file), 200), (None, 502)):
            raw = {
                "listen": "127.0.0.1:0",
                "admin": {"listen": "127.0.0.1:0"},
                "upstream": {"url": f"https://127.0.0.1:{upstream_port}", "ca_file": ca_key},
            }
            path = tmp_path / "config.yaml"
            path.write_text(yaml.safe_dump(raw))
            shim = await start(load_config(str(path)), str(path))
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://{shim.bound[0]}/") as response,
                ):
                    body = await response.text()
                    assert response.status == expected_status, body
                    if expected_status == 200:
                        assert body == "hello over https"
                    else:  # the system CAs do not know the test CA: refused, and said why
                        assert "TLS" in body
                        assert "Traceback" not in body
            finally:
                await stop(shim)
