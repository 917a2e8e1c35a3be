"""An emulated legacy account portal: what the shim stands in front of in the demo and the tests.

It is outside the shim on purpose: it knows only its own era's action names (modelled on
matrix-authentication-service before 1.10, a prototype that served only the `org.matrix.msc4191.*`
keys, and an MSC3824-era portal) and nothing of the shim's tables, so a test that lands on the right
page through the shim proves the translation rather than restating it. `mas-1.10` is the portal
that no longer needs it: matrix-authentication-service 1.10 and later serves and advertises the
stable names and its older `org.matrix.session_*` names alike.

- `GET /.well-known/openid-configuration`: the era's discovery document, with every URL under the
  public base (`public_base`, else the request's own scheme and Host, so through a proxy that keeps
  the Host it shows the proxy's origin).
- `GET /account`, `/account/...`: one static single-page-app page whatever the query; its script
  reads `action` and `device_id` from the browser's URL and renders `<main id="view">` with
  `data-view` (see `view_for`), `data-action`, `data-device-id` and `data-href`. The response also
  carries `X-Portal-Action` (the action the *server* received) and `X-Portal-Query` (the raw query),
  so tests of the rewrite strategy can see what reached the upstream.
- `GET /oauth2/keys.json`: an empty key set.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal, get_args
from urllib.parse import quote

from aiohttp import hdrs, web

Era = Literal["mas-0.9", "mas-0.7", "prototype-unstable-keys", "msc3824", "mas-1.10"]
ERAS: tuple[Era, ...] = get_args(Era)

PORTAL_ACTION_HEADER = "X-Portal-Action"
PORTAL_QUERY_HEADER = "X-Portal-Query"

#: `data-view` when the URL has no action (or an empty one), and when the era does not speak it.
HOME_VIEW = "home"
UNKNOWN_ACTION_VIEW = "unknown-action"

_MAS_07_VIEWS = {
    "org.matrix.profile": "profile",
    "org.matrix.sessions_list": "sessions",
    "org.matrix.session_view": "session",
    "org.matrix.session_end": "session-end",
}

#: Per era: each action name the portal understands -> the page (`data-view`) it shows for it.
ERA_VIEWS: Mapping[Era, Mapping[str, str]] = MappingProxyType(
    {
        "mas-0.9": MappingProxyType(
            {**_MAS_07_VIEWS, "org.matrix.cross_signing_reset": "cross-signing-reset"}
        ),
        "mas-0.7": MappingProxyType(dict(_MAS_07_VIEWS)),
        "prototype-unstable-keys": MappingProxyType(dict(_MAS_07_VIEWS)),
        "msc3824": MappingProxyType(
            {
                "profile": "profile",
                "sessions_list": "sessions",
                "session_view": "session",
                "session_end": "session-end",
            }
        ),
        # both sets, in the order it advertises them (stable first)
        "mas-1.10": MappingProxyType(
            {
                "org.matrix.profile": "profile",
                "org.matrix.devices_list": "sessions",
                "org.matrix.device_view": "session",
                "org.matrix.device_delete": "session-end",
                "org.matrix.cross_signing_reset": "cross-signing-reset",
                "org.matrix.sessions_list": "sessions",
                "org.matrix.session_view": "session",
                "org.matrix.session_end": "session-end",
            }
        ),
    }
)


def view_for(era: Era, action: str | None) -> str:
    """The `data-view` the page's script renders for `action`: mirrors the script, for tests."""
    if not action:
        return HOME_VIEW
    return ERA_VIEWS[era].get(action, UNKNOWN_ACTION_VIEW)


def discovery_document(era: Era, base: str) -> dict[str, object]:
    """The era's `/.well-known/openid-configuration`, every URL under `base` (ending in '/')."""
    if era in ("mas-0.9", "mas-0.7", "mas-1.10"):
        return _mas_document(base, list(ERA_VIEWS[era]))
    document = _prototype_document(base)
    if era == "prototype-unstable-keys":
        document["org.matrix.msc4191.account_management_uri"] = f"{base}account/"
        document["org.matrix.msc4191.account_management_actions_supported"] = list(
            ERA_VIEWS["prototype-unstable-keys"]
        )
    # "msc3824": no account-management key at all, which is what Synapse refuses.
    return document


def _oauth_endpoints(base: str) -> dict[str, object]:
    # The first keys of both documents, in this order.
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}authorize",
        "token_endpoint": f"{base}oauth2/token",
        "jwks_uri": f"{base}oauth2/keys.json",
        "registration_endpoint": f"{base}oauth2/registration",
    }


def _mas_document(base: str, actions: list[str]) -> dict[str, object]:
    # matrix-authentication-service 0.9-1.9, key for key and in its order.
    return {
        **_oauth_endpoints(base),
        "scopes_supported": ["openid", "email"],
        "response_types_supported": ["code", "id_token", "code id_token"],
        "response_modes_supported": ["form_post", "query", "fragment"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "revocation_endpoint": f"{base}oauth2/revoke",
        "introspection_endpoint": f"{base}oauth2/introspect",
        "code_challenge_methods_supported": ["plain", "S256"],
        "userinfo_endpoint": f"{base}oauth2/userinfo",
        "prompt_values_supported": ["login", "create"],
        "device_authorization_endpoint": f"{base}oauth2/device",
        "org.matrix.matrix-authentication-service.graphql_endpoint": f"{base}graphql",
        "account_management_uri": f"{base}account/",
        "account_management_actions_supported": actions,
    }


def _prototype_document(base: str) -> dict[str, object]:
    return {
        **_oauth_endpoints(base),
        "revocation_endpoint": f"{base}oauth2/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
    }


@cache
def account_page(era: Era) -> str:
    """The single-page app's HTML for `era`: the same bytes whatever the URL's query."""
    template = resources.files("demo").joinpath("static/account.html").read_text("utf-8")
    config = json.dumps({"era": era, "views": dict(ERA_VIEWS[era])})
    # Inside <script>, "</" would end the element early; JSON allows the escaped form.
    return template.replace("{{PORTAL_CONFIG}}", config.replace("</", "<\\/"))


def header_safe(value: str) -> str:
    """`value` with everything outside printable ASCII percent-encoded: never a raw CR or LF."""
    return "".join(
        c if " " <= c <= "~" else quote(c.encode("utf-8", "surrogatepass"), safe="") for c in value
    )


def _base_url(request: web.Request, public_base: str | None) -> str:
    if public_base is not None:
        return public_base
    return f"{request.scheme}://{request.host}/"


def make_portal_app(era: Era = "mas-0.9", public_base: str | None = None) -> web.Application:
    """The legacy portal of `era`; `public_base` (`https://auth.example.com/`) fixes its URLs."""
    if era not in ERAS:
        raise ValueError(f"unknown portal era {era!r}; expected one of {', '.join(ERAS)}")
    base = None if public_base is None else public_base.rstrip("/") + "/"

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(discovery_document(era, _base_url(request, base)))

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": []})

    async def account(request: web.Request) -> web.Response:
        response = web.Response(text=account_page(era), content_type="text/html")
        response.headers[PORTAL_QUERY_HEADER] = header_safe(request.rel_url.raw_query_string)
        action = request.query.get("action")
        if action is not None:
            response.headers[PORTAL_ACTION_HEADER] = header_safe(action)
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        return response

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/oauth2/keys.json", keys)
    app.router.add_get("/account", account)
    app.router.add_get("/account/{tail:.*}", account)
    return app


async def serve_portal(host: str, port: int, era: Era, public_base: str | None) -> None:
    """Serve only the portal until SIGINT or SIGTERM (the compose demo's portal container)."""
    runner = web.AppRunner(make_portal_app(era, public_base))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"legacy portal ({era}) on http://{host}:{port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await runner.cleanup()


def run_portal(listen: str, era: str, public_base: str | None) -> int:
    """`python -m demo portal`: needs only aiohttp, so the portal's image has no shim in it."""
    if era not in ERAS:
        print(f"--era: expected one of {', '.join(ERAS)}, got {era!r}")
        return 2
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        print(f"--listen: expected HOST:PORT such as 127.0.0.1:8081, got {listen!r}")
        return 2
    asyncio.run(serve_portal(host or "0.0.0.0", int(port), era, public_base))
    return 0
