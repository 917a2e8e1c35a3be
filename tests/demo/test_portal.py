"""The emulated legacy portal: discovery documents per era, the static page, the upstream echo."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import hdrs, web
from aiohttp.test_utils import TestClient
from yarl import URL

from demo.portal import (
    ERAS,
    Era,
    account_page,
    discovery_document,
    header_safe,
    make_portal_app,
    view_for,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]

BASE = "https://auth.example.com/"
MAS_KEYS = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "revocation_endpoint",
    "introspection_endpoint",
    "code_challenge_methods_supported",
    "userinfo_endpoint",
    "prompt_values_supported",
    "device_authorization_endpoint",
    "org.matrix.matrix-authentication-service.graphql_endpoint",
    "account_management_uri",
    "account_management_actions_supported",
]
PROTOTYPE_KEYS = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "revocation_endpoint",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "code_challenge_methods_supported",
]
MAS_07_ACTIONS = [
    "org.matrix.profile",
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
]


def test_mas_09_document_is_mas_before_1_10() -> None:
    document = discovery_document("mas-0.9", BASE)

    assert list(document) == MAS_KEYS
    assert document["issuer"] == BASE
    assert document["account_management_uri"] == "https://auth.example.com/account/"
    assert document["account_management_actions_supported"] == [
        *MAS_07_ACTIONS,
        "org.matrix.cross_signing_reset",
    ]


def test_mas_07_document_lacks_cross_signing_reset() -> None:
    document = discovery_document("mas-0.7", BASE)

    assert list(document) == MAS_KEYS
    assert document["account_management_actions_supported"] == MAS_07_ACTIONS


def test_mas_110_document_lists_both_name_sets_as_mas_does() -> None:
    document = discovery_document("mas-1.10", BASE)

    assert list(document) == MAS_KEYS
    # the order of tests/data/vectors.json's mas-1.10-and-later: stable names, then the old ones
    assert document["account_management_actions_supported"] == [
        "org.matrix.profile",
        "org.matrix.devices_list",
        "org.matrix.device_view",
        "org.matrix.device_delete",
        "org.matrix.cross_signing_reset",
        *MAS_07_ACTIONS[1:],
    ]


def test_prototype_document_has_only_the_unstable_keys() -> None:
    document = discovery_document("prototype-unstable-keys", BASE)

    assert list(document) == [
        *PROTOTYPE_KEYS,
        "org.matrix.msc4191.account_management_uri",
        "org.matrix.msc4191.account_management_actions_supported",
    ]
    assert document["org.matrix.msc4191.account_management_uri"] == f"{BASE}account/"
    assert document["org.matrix.msc4191.account_management_actions_supported"] == MAS_07_ACTIONS


def test_msc3824_document_has_no_account_management_at_all() -> None:
    assert list(discovery_document("msc3824", BASE)) == PROTOTYPE_KEYS


@pytest.mark.parametrize("era", ERAS)
def test_every_url_in_a_document_is_under_the_base(era: Era) -> None:
    urls = [v for v in discovery_document(era, BASE).values() if isinstance(v, str)]

    assert urls
    assert all(url.startswith(BASE) for url in urls)


@pytest.mark.parametrize(
    ("era", "action", "view"),
    [
        ("mas-0.9", None, "home"),
        ("mas-0.9", "", "home"),
        ("mas-0.9", "org.matrix.profile", "profile"),
        ("mas-0.9", "org.matrix.sessions_list", "sessions"),
        ("mas-0.9", "org.matrix.session_view", "session"),
        ("mas-0.9", "org.matrix.session_end", "session-end"),
        ("mas-0.9", "org.matrix.cross_signing_reset", "cross-signing-reset"),
        ("mas-0.9", "org.matrix.device_delete", "unknown-action"),
        ("mas-0.9", "session_end", "unknown-action"),
        ("mas-0.7", "org.matrix.cross_signing_reset", "unknown-action"),
        ("prototype-unstable-keys", "org.matrix.session_end", "session-end"),
        ("msc3824", "session_end", "session-end"),
        ("msc3824", "sessions_list", "sessions"),
        ("msc3824", "org.matrix.session_end", "unknown-action"),
        ("mas-1.10", "org.matrix.device_delete", "session-end"),
        ("mas-1.10", "org.matrix.session_end", "session-end"),
        ("mas-1.10", "org.matrix.devices_list", "sessions"),
        ("mas-1.10", "org.matrix.sessions_list", "sessions"),
        ("mas-1.10", "session_end", "unknown-action"),
        ("mas-1.10", "org.matrix.account_deactivate", "unknown-action"),
    ],
)
def test_view_for(era: Era, action: str | None, view: str) -> None:
    assert view_for(era, action) == view


def test_header_safe_escapes_everything_outside_printable_ascii() -> None:
    assert header_safe("a b~") == "a b~"
    assert header_safe("x\r\ny\x00é\udcff") == "x%0D%0Ay%00%C3%A9%ED%B3%BF"


def test_the_page_embeds_the_era_safely() -> None:
    page = account_page("msc3824")

    assert '"era": "msc3824"' in page
    assert '"session_end": "session-end"' in page
    assert "{{PORTAL_CONFIG}}" not in page


def test_an_unknown_era_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown portal era 'mas-2'"):
        make_portal_app("mas-2")  # type: ignore[arg-type]


async def test_discovery_uses_the_request_host(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app("mas-0.9"))

    response = await client.get(
        "/.well-known/openid-configuration", headers={hdrs.HOST: "shim.example:8080"}
    )

    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document == discovery_document("mas-0.9", "http://shim.example:8080/")


async def test_discovery_uses_the_public_base(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app("prototype-unstable-keys", "https://a.example"))

    response = await client.get("/.well-known/openid-configuration")

    document = await response.json()
    assert document == discovery_document("prototype-unstable-keys", "https://a.example/")


async def test_jwks_is_an_empty_key_set(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app())

    response = await client.get("/oauth2/keys.json")

    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"keys": []}


@pytest.mark.parametrize(
    "path_qs",
    [
        "/account/",
        "/account",
        "/account/?action=org.matrix.session_end&device_id=ABCDEFGH",
        "/account/?action=nonsense",
        "/account/sessions/ABC?x=1",
    ],
)
async def test_the_page_is_the_same_whatever_the_url(
    aiohttp_client: ClientFactory, path_qs: str
) -> None:
    client = await aiohttp_client(make_portal_app("mas-0.7"))

    response = await client.get(path_qs)

    assert response.status == 200
    assert response.content_type == "text/html"
    assert await response.text() == account_page("mas-0.7")


async def test_the_server_echoes_the_action_it_received(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app())

    # encoded=True: the client sends these bytes as written, without requoting them.
    url = URL("/account/?device_id=A%2FB&action=org%2Ematrix.session_end&x", encoded=True)
    response = await client.get(url)

    assert response.headers["X-Portal-Action"] == "org.matrix.session_end"
    assert response.headers["X-Portal-Query"] == "device_id=A%2FB&action=org%2Ematrix.session_end&x"


async def test_no_action_no_echo_header(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app())

    response = await client.get("/account/?device_id=A")

    assert "X-Portal-Action" not in response.headers
    assert response.headers["X-Portal-Query"] == "device_id=A"


async def test_control_characters_in_the_action_never_reach_a_header(
    aiohttp_client: ClientFactory,
) -> None:
    client = await aiohttp_client(make_portal_app())

    response = await client.get("/account/?action=a%0D%0AX-Evil:%201&action=second")

    assert response.status == 200
    assert response.headers["X-Portal-Action"] == "a%0D%0AX-Evil: 1"
    assert "X-Evil" not in response.headers


async def test_head_answers_without_a_body(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_portal_app())

    response = await client.head("/account/?action=org.matrix.profile")

    assert response.status == 200
    assert response.headers["X-Portal-Action"] == "org.matrix.profile"
    assert await response.read() == b""
