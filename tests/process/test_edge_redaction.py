"""No refusal quotes a query value, and the access log never holds a credential-bearing query
parameter's value (issue 21): a real shim process, its JSON log on stderr."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.rawhttp import MARKER, one_response, request, send_raw
from tests.support.shimchild import ShimChild, edge

pytestmark = pytest.mark.timeout(60)

SECRETS = "id_token_hint=SECRET1&code=SECRET2&state=SECRET3"


def _logged(shim: ShimChild, *needles: str, within: float = 3.0) -> str:
    """The child's stderr once every needle is in it (access lines are written in batches)."""
    deadline = time.monotonic() + within
    while not all(n in shim.stderr for n in needles) and time.monotonic() < deadline:
        time.sleep(0.05)
    return shim.stderr


@pytest.mark.parametrize(
    "target",
    [
        f"ftp://portal.example/x?{SECRETS}",  # an absolute form that is not proxied
        f"*?{SECRETS}",  # the asterisk form, with a query
        f"/x?{SECRETS}&\x7f",  # a byte a client should have percent-encoded
        f"/x?{SECRETS}&\x80",
        f"/../x?{SECRETS}",  # leaves the upstream prefix
        f"//../x?{SECRETS}",
        f"portal.example:443?{SECRETS}",  # the authority form
    ],
    ids=["absolute-ftp", "asterisk", "del", "non-ascii", "prefix", "prefix-merged", "authority"],
)
def test_a_refusal_never_quotes_query_values(tmp_path: Path, target: str) -> None:
    data = f"OPTIONS {target} HTTP/1.1\r\nHost: portal.example\r\nConnection: close\r\n\r\n"
    with edge(tmp_path / "shim.yaml", prefix="/prefix") as (portal, shim):
        reply = send_raw(shim.port, data.encode("latin-1"))
        time.sleep(0.2)
    if portal.raw():
        pytest.fail(f"proxied, not refused: {portal.raw()[:200]!r}")
    response = one_response(reply)
    assert 400 <= response.status < 500, response
    for secret in ("SECRET1", "SECRET2", "SECRET3"):
        assert secret.encode() not in reply.data, reply.data


#: query parameters that carry credentials in common APIs (AWS, SAML, API gateways, sessions)
CREDENTIAL_PARAMS = (
    "api_key",
    "apikey",
    "key",
    "auth",
    "jwt",
    "session",
    "sid",
    "sig",
    "signature",
    "SAMLResponse",
    "X-Amz-Signature",
    "assertion",
)


def test_the_access_log_never_holds_a_credential_parameter_s_value(tmp_path: Path) -> None:
    query = "&".join(f"{name}=VALUE{n:02}Z" for n, name in enumerate(CREDENTIAL_PARAMS))
    with edge(tmp_path / "shim.yaml") as (portal, shim):
        response = one_response(
            send_raw(
                shim.port, request("GET", f"/x?{query}&page=2", f"{MARKER}: L", "Connection: close")
            )
        )
        log = _logged(shim, "page=2")
    assert response.status == 200
    assert portal.requests()[0].target == f"/x?{query}&page=2"  # the portal gets them all
    assert "page=2" in log, "no access line for the request"
    leaked = [name for n, name in enumerate(CREDENTIAL_PARAMS) if f"VALUE{n:02}Z" in log]
    assert leaked == [], f"logged in clear: {leaked}"
