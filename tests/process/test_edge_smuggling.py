"""Request smuggling and desync, black-box (issue 21): a real shim process, raw client sockets,
and a recording upstream that reads what it got with h11 (independent of the shim's llhttp).

Each test states the fixed rule: what the portal receives is exactly the requests the client
sent, one well-framed request each, whatever Connection tokens, Upgrade, trailers or methods say.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.support.rawhttp import (
    MARKER,
    SMUGGLED,
    RawAnswer,
    UpstreamRequest,
    chunked,
    client,
    one_response,
    parse_responses,
    read_until_closed,
    request,
    send_raw,
)
from tests.support.shimchild import edge

pytestmark = pytest.mark.timeout(60)

#: the fields this hop writes itself for an untrusted client (SECURITY.md, Forwarding fields)
OWN_FORWARDING = {
    "x-forwarded-for": "127.0.0.1",
    "x-forwarded-proto": "http",
    "x-forwarded-host": "portal.example",
}


def _own_answer(sock: socket.socket, within: float = 5.0) -> bytes:
    """The bytes of one answer on a kept-alive connection (read until a quiet moment)."""
    sock.settimeout(within)
    data = sock.recv(65536)
    sock.settimeout(0.3)
    try:
        while piece := sock.recv(65536):
            data += piece
    except TimeoutError:
        pass
    return data


def _markers(data: bytes) -> list[object]:
    parsed = parse_responses(data, eof=False)
    return [r.echo["marker"] if r.echo else r.status for r in parsed.responses]


# -- 1. Connection tokens never remove framing, Host or this hop's forwarding fields -------------

_LENGTH = f"Content-Length: {len(SMUGGLED)}"
#: the framing line and body for each token (a body whose own bytes are a whole request)
TOKEN_CASES = {
    "Content-Length": (_LENGTH, SMUGGLED),
    "Transfer-Encoding": ("Transfer-Encoding: chunked", chunked(SMUGGLED)),
    "Host": (_LENGTH, SMUGGLED),
    "X-Forwarded-For": (_LENGTH, SMUGGLED),
    "X-Forwarded-Host": (_LENGTH, SMUGGLED),
    "X-Forwarded-Proto": (_LENGTH, SMUGGLED),
    "Forwarded": (_LENGTH, SMUGGLED),
}


@pytest.mark.parametrize("token", list(TOKEN_CASES))
def test_a_connection_token_cannot_unframe_the_body_or_shift_answers(
    tmp_path: Path, token: str
) -> None:
    """Two clients on the one pooled upstream connection: each gets its own answer, and the
    portal gets one request per client request, the body whole, with a Host and this hop's
    forwarding fields."""
    framing, body = TOKEN_CASES[token]
    with edge(tmp_path / "shim.yaml", upstream={"max_connections": 1}) as (portal, shim):
        with client(shim.port) as first:
            first.sendall(
                request("POST", "/a", f"Connection: {token}", f"{MARKER}: A", framing, body=body)
            )
            answer_a = _own_answer(first)
            second = send_raw(shim.port, request("GET", "/b", f"{MARKER}: B", "Connection: close"))
            first.sendall(request("GET", "/c", f"{MARKER}: C", "Connection: close"))
            rest = read_until_closed(first, 5.0)
        seen = portal.wait_for(3, within=1.0)
    assert _markers(answer_a) == ["A"], answer_a[:400]
    assert _markers(second.data) == ["B"], second.data[:400]
    assert _markers(rest.data) == ["C"], rest.data[:400]
    assert portal.errors() == []
    assert [r.marker for r in seen] == ["A", "B", "C"], portal.raw()[:600]
    posted = seen[0]
    assert posted.body == SMUGGLED
    assert posted.getall("host") == ["portal.example"]
    for name, value in OWN_FORWARDING.items():
        assert posted.getall(name) == [value], (name, posted.headers)


def _discovery(request: UpstreamRequest) -> RawAnswer | None:
    """The portal's discovery document names the Host it saw (none: an empty host)."""
    if not request.target.endswith("/openid-configuration"):
        return None
    host = request.get("host") or ""
    body = json.dumps(
        {"issuer": f"https://{host}/", "authorization_endpoint": f"https://{host}/authorize"}
    ).encode()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Cache-Control: public, max-age=300\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return RawAnswer(head + body)


def test_discovery_with_connection_host_is_built_for_the_host_the_portal_saw(
    tmp_path: Path,
) -> None:
    target = "/.well-known/openid-configuration"
    with edge(tmp_path / "shim.yaml", answer=_discovery) as (portal, shim):
        one = one_response(
            send_raw(
                shim.port,
                request("GET", target, "Connection: Host, close", host="one.example"),
            )
        )
        two = one_response(
            send_raw(shim.port, request("GET", target, "Connection: close", host="two.example"))
        )
    assert portal.errors() == []
    assert [r.getall("host") for r in portal.requests()][:1] == [["one.example"]]
    assert one.status == 200, one
    assert b"https://one.example/" in one.body, one.body
    assert two.status == 200, two
    assert b"one.example" not in two.body, two.body
    assert b"https://two.example/" in two.body, two.body


# -- 2. an Upgrade with a body is refused; its body is never read as a request ------------------


@pytest.mark.parametrize("protocol", ["websocket", "h2c"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_upgrade_with_a_body_is_refused_and_nothing_reaches_the_portal(
    tmp_path: Path, protocol: str, framing: str
) -> None:
    if framing == "chunked":
        body_lines, body = ("Transfer-Encoding: chunked",), chunked(SMUGGLED)
    else:
        body_lines, body = (f"Content-Length: {len(SMUGGLED)}",), SMUGGLED
    extra = (
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13")
        if protocol == "websocket"
        else ("HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA",)
    )
    data = request(
        "GET",
        "/ws",
        f"Upgrade: {protocol}",
        "Connection: Upgrade" + (", HTTP2-Settings" if protocol == "h2c" else ""),
        f"{MARKER}: U",
        *extra,
        *body_lines,
        body=body,
    )
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(shim.port, data, within=4.0)
        time.sleep(0.2)
    assert reply.closed, "the connection stays open after the refusal"
    response = one_response(reply)
    assert response.status == 400, response
    assert response.body.strip(), "a 400 says why"
    assert portal.raw() == b"", portal.raw()[:400]


# -- 3. CONNECT and TRACE: 405, nothing upstream ----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        request(
            "CONNECT", "/path", f"{MARKER}: K", f"Content-Length: {len(SMUGGLED)}", body=SMUGGLED
        ),
        request("CONNECT", "portal.example:443", f"{MARKER}: K"),
        request("CONNECT", "/path", f"{MARKER}: K"),
    ],
    ids=["path-with-body", "authority", "path"],
)
def test_connect_is_refused_with_405_and_closed(tmp_path: Path, data: bytes) -> None:
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(shim.port, data, within=4.0)
        time.sleep(0.2)
    assert reply.closed
    response = one_response(reply)
    assert response.status == 405, response
    assert response.get("allow"), response.headers
    assert "CONNECT" not in (response.get("allow") or "").upper()
    assert portal.raw() == b"", portal.raw()[:400]


def test_trace_is_refused_with_405(tmp_path: Path) -> None:
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(shim.port, request("TRACE", "/x", f"{MARKER}: T", "Connection: close"))
        time.sleep(0.2)
    response = one_response(reply)
    assert response.status == 405, response
    assert portal.raw() == b"", portal.raw()[:400]


# -- 4. request trailers are dropped, the last-chunk written once -----------------------------

TRAILERS = ("Host: evil.example", "Authorization: Bearer x", "X-Forwarded-For: 6.6.6.6")


@pytest.mark.parametrize("position", ["first", "queued"])
def test_request_trailers_never_reach_the_portal(tmp_path: Path, position: str) -> None:
    body = b"0123456789" * 10
    posted = request(
        "POST",
        "/upload",
        f"{MARKER}: P",
        "Transfer-Encoding: chunked",
        body=chunked(body[:40], body[40:], trailers=TRAILERS),
    )
    before = [request("GET", "/before", f"{MARKER}: G")] if position == "queued" else []
    after = request("GET", "/after", f"{MARKER}: Z", "Connection: close")
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(shim.port, b"".join([*before, posted, after]))
        seen = portal.wait_for(len(before) + 2, within=1.0)
    markers = ["G"] * len(before) + ["P", "Z"]
    assert portal.errors() == []
    assert [r.marker for r in seen] == markers, portal.raw()[:800]
    assert _markers(reply.data) == markers
    for got in seen:
        assert got.getall("host") == ["portal.example"], got.headers
        assert got.get("authorization") is None, got.headers
        assert got.getall("x-forwarded-for") == ["127.0.0.1"], got.headers
        assert got.trailers == [], got.trailers
    assert seen[len(before)].body == body


# -- 9. Host is required in HTTP/1.1; underscored forwarding names never pass ------------------


@pytest.mark.parametrize(
    "data",
    [
        request("GET", "/x", f"{MARKER}: N", "Connection: close", host=None),
        request("GET", "/x", f"{MARKER}: N", "Connection: close", host=""),
        request("GET", "/x", f"{MARKER}: N", "Connection: close", host=" "),
    ],
    ids=["no-host", "empty-host", "blank-host"],
)
def test_http11_without_a_host_is_refused(tmp_path: Path, data: bytes) -> None:
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(shim.port, data)
        time.sleep(0.2)
    response = one_response(reply)
    assert response.status == 400, response
    assert b"Host" in response.body, response.body
    assert portal.raw() == b"", portal.raw()[:400]


def test_http10_without_a_host_is_still_proxied(tmp_path: Path) -> None:
    """The upstream request is HTTP/1.1 (this hop's version), which must carry a Host: the shim
    supplies one (h11, like any strict portal, refuses a 1.1 request without)."""
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(
            shim.port, request("GET", "/x", f"{MARKER}: O", host=None, version="HTTP/1.0")
        )
        seen = portal.wait_for(1, within=1.0)
    assert portal.errors() == []
    assert one_response(reply).status == 200
    assert [r.target for r in seen] == ["/x"]
    assert len(seen[0].getall("host")) == 1, seen[0].headers


UNDERSCORED = (
    "X_Forwarded_For: 6.6.6.6",
    "X_Real_IP: 6.6.6.6",
    "X_Forwarded_Host: evil.example",
    "X_Forwarded_Proto: https",
    "X-Forwarded_For: 6.6.6.6",
    "X_Forwarded-Host: evil.example",
    "X_Client_IP: 6.6.6.6",
    "True_Client_IP: 6.6.6.6",
    "X_Original_URL: /admin",
)


def test_underscored_forwarding_names_from_an_untrusted_client_never_pass(
    tmp_path: Path,
) -> None:
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        reply = send_raw(
            shim.port, request("GET", "/x", f"{MARKER}: U", *UNDERSCORED, "Connection: close")
        )
        seen = portal.wait_for(1, within=1.0)
    assert one_response(reply).status == 200
    (got,) = seen
    passed = [(name, value) for name, value in got.headers if "_" in name]
    assert passed == [], f"reached the portal: {passed}"
    for name, value in OWN_FORWARDING.items():
        assert got.getall(name) == [value], got.headers
