"""The discovery rewrite: set the MSC4191 keys in an OAuth server-metadata document.

Pure functions over parsed JSON; no I/O. The proxy buffers an upstream discovery document, calls
`rewrite_document` (decode, `parse_json`, `rewrite_discovery` or `rewrite_well_known`,
`render_json`), and serves the result with `strong_etag`. Everything the shim does not own —
other keys, their values, their order and how numbers were written — comes out as the upstream
sent it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from shim.config.actions import RedirectUnsupported
from shim.config.model import AccountManagementConfig, Config, DiscoveryConfig
from shim.http.codings import DecodeRefused, decode_body
from shim.vocabulary import STABLE_ACTIONS, ActionTable

ACCOUNT_MANAGEMENT_URI = "account_management_uri"
ACTIONS_SUPPORTED = "account_management_actions_supported"
UNSTABLE_PREFIX = "org.matrix.msc4191."
UNSTABLE_ACCOUNT_MANAGEMENT_URI = UNSTABLE_PREFIX + ACCOUNT_MANAGEMENT_URI
UNSTABLE_ACTIONS_SUPPORTED = UNSTABLE_PREFIX + ACTIONS_SUPPORTED
WELL_KNOWN_AUTHENTICATION = "org.matrix.msc2965.authentication"

#: why `rewrite_document` leaves the upstream's bytes as they are: each is a discovery outcome
#: the shim counts (`obs.metrics.DiscoveryOutcome`, which mypy holds this to)
Untouched = Literal[
    "unchanged",
    "passthrough_not_json",
    "passthrough_not_object",
    "passthrough_encoding",
    "passthrough_too_large",
]


def account_management_uri(
    doc: Mapping[str, Any], discovery: DiscoveryConfig, default_uri: str
) -> str:
    """The configured URI, else the upstream's stable key, else its unstable key, else default."""
    if discovery.account_management_uri is not None:
        return discovery.account_management_uri
    for key in (ACCOUNT_MANAGEMENT_URI, UNSTABLE_ACCOUNT_MANAGEMENT_URI):
        value = doc.get(key)
        if isinstance(value, str) and value:
            return value
    return default_uri


def derived_actions(
    upstream_doc: Mapping[str, Any], discovery: DiscoveryConfig, account: AccountManagementConfig
) -> list[str]:
    """The actions to advertise: configured, else derived from the upstream's, else the dialect's.

    Known names become stable names and are kept only when a deep link with them reaches a
    destination; with `stable+legacy` the legacy names of the advertised stable ones follow.

    Under a dialect whose portal speaks both name sets (`mas-1.10`), a list that already names
    the stable name of every MSC4191 name in it, each reachable, is kept as written: its legacy
    names are the portal's own and it serves them, so they stay under `advertise: stable`, and
    `stable+legacy` adds names only when it lists no legacy name of its own. The document then
    passes unchanged. Under other dialects the list is brought to stable names, as the spec's
    schema wants (its items are an enum of the six).
    """
    own = upstream_doc.get(ACTIONS_SUPPORTED)
    if discovery.actions is not None:
        names = list(discovery.actions)
    elif isinstance(own, list) and _keeps_its_own(own, account):
        names = list(own)
        if discovery.advertise == "stable" or any(account.table.is_legacy(n) for n in names):
            return names
    else:
        upstream = _upstream_actions(upstream_doc)
        if upstream is None:
            names = [name for name in STABLE_ACTIONS if _reachable(name, account)]
        else:
            names = _translated(upstream, account)
    if discovery.advertise == "stable+legacy":
        names = _unique([*names, *_legacy_names(names, account)])
    return names


def lists_stable_names(names: Sequence[Any], table: ActionTable) -> bool:
    """True when `names` (a portal's action list) holds only strings, at least one MSC4191 name,
    and the stable name of every MSC4191 name in it; other names (`org.matrix.plan_management`)
    do not count either way."""
    if not all(isinstance(name, str) for name in names):
        return False
    stables = {table.to_stable(name) for name in names} - {None}
    return bool(stables) and stables <= set(names)


def portal_speaks_msc4191(doc: Mapping[str, Any], table: ActionTable) -> bool:
    """True when the portal's own document already carries what MSC4191 asks for: a non-empty
    `account_management_uri` and a stable action list (`lists_stable_names`)."""
    uri, names = doc.get(ACCOUNT_MANAGEMENT_URI), doc.get(ACTIONS_SUPPORTED)
    return (
        isinstance(uri, str)
        and bool(uri)
        and isinstance(names, list)
        and (lists_stable_names(names, table))
    )


def _keeps_its_own(names: list[Any], account: AccountManagementConfig) -> bool:
    table = account.table
    return (
        bool(table.dialect.also_speaks)
        and lists_stable_names(names, table)
        and all(_reachable(name, account) for name in names if name in STABLE_ACTIONS)
    )


def _upstream_actions(doc: Mapping[str, Any]) -> list[Any] | None:
    for key in (ACTIONS_SUPPORTED, UNSTABLE_ACTIONS_SUPPORTED):
        value = doc.get(key)
        if isinstance(value, list):
            return value
    return None


def _reachable(stable: str, account: AccountManagementConfig) -> bool:
    """True when a deep link with this action leads somewhere useful through the shim."""
    return account.table.to_portal(stable) is not None or isinstance(
        account.unsupported, RedirectUnsupported
    )


def _translated(upstream: list[Any], account: AccountManagementConfig) -> list[str]:
    # A name the shim does not know stays, as written: the portal advertised it and the shim
    # passes it through, so a client that understands it can still use it.
    names: list[str] = []
    for item in upstream:
        if not isinstance(item, str):
            continue
        stable = account.table.to_stable(item)
        if stable is None:
            names.append(item)
        elif _reachable(stable, account):
            names.append(stable)
    return _unique(names)


def _legacy_names(names: list[str], account: AccountManagementConfig) -> Iterator[str]:
    for name in names:
        if name in STABLE_ACTIONS:
            yield from account.table.legacy_names(name)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def rewrite_discovery(
    doc: dict[str, Any],
    *,
    discovery: DiscoveryConfig,
    account: AccountManagementConfig,
    default_uri: str,
) -> dict[str, Any]:
    """A new document: the upstream's keys in order, with the account-management keys set.

    The stable keys are replaced where they stand or appended. Upstream `org.matrix.msc4191.*`
    keys are left as they are unless `unstable_keys` is on: a client that reads only them keeps
    working with what the portal said, and the shim does not invent keys it was not asked for.
    """
    values = {
        ACCOUNT_MANAGEMENT_URI: account_management_uri(doc, discovery, default_uri),
        ACTIONS_SUPPORTED: derived_actions(doc, discovery, account),
    }
    if discovery.unstable_keys:
        values[UNSTABLE_ACCOUNT_MANAGEMENT_URI] = values[ACCOUNT_MANAGEMENT_URI]
        values[UNSTABLE_ACTIONS_SUPPORTED] = list(values[ACTIONS_SUPPORTED])
    return _with_values(doc, values)


def _with_values(doc: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Replace existing keys in place, append the others in the order given."""
    result = {key: values.get(key, value) for key, value in doc.items()}
    result.update((key, value) for key, value in values.items() if key not in result)
    return result


def rewrite_well_known(doc: dict[str, Any], account_uri: str) -> dict[str, Any]:
    """Set `account` in the MSC2965 authentication object; the same `doc` when there is none.

    Returning the very same object tells the caller nothing changed, so it can pass the
    upstream bytes through untouched.
    """
    authentication = doc.get(WELL_KNOWN_AUTHENTICATION)
    if not isinstance(authentication, dict):
        return doc
    return _with_values(
        doc, {WELL_KNOWN_AUTHENTICATION: _with_values(authentication, {"account": account_uri})}
    )


def rewrite_document(
    body: bytes,
    content_encoding: str | None,
    *,
    well_known: bool,
    config: Config,
    default_uri: str,
) -> bytes | Untouched:
    """The rewritten body, or why the upstream's bytes must pass through untouched."""
    discovery = config.discovery
    try:
        decoded = decode_body(body, content_encoding, discovery.max_body_bytes)
    except DecodeRefused as refused:
        return "passthrough_too_large" if refused.reason == "too-large" else "passthrough_encoding"
    try:
        doc = parse_json(decoded)
    except ValueError:
        return "passthrough_not_json"
    if not isinstance(doc, dict):
        return "passthrough_not_object"
    if well_known:
        uri = discovery.account_management_uri or _existing_account(doc) or default_uri
        new_doc = rewrite_well_known(doc, uri)
    else:
        new_doc = rewrite_discovery(
            doc, discovery=discovery, account=config.account_management, default_uri=default_uri
        )
    # the portal already serves what the shim would: its own bytes, a sign the shim can go
    return "unchanged" if new_doc == doc else render_json(new_doc)


def _existing_account(doc: dict[str, object]) -> str | None:
    auth = doc.get(WELL_KNOWN_AUTHENTICATION)
    account = auth.get("account") if isinstance(auth, dict) else None
    return account if isinstance(account, str) and account else None


class JsonInt(int):
    """An integer from the upstream document that remembers how it was written (`-0`)."""

    text: str

    def __new__(cls, text: str) -> JsonInt:
        number = super().__new__(cls, text)
        number.text = text
        return number


class JsonFloat(float):
    """A number with a fraction or exponent, kept as written: `1.10`, `1e5`, `1e400`."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> object:
    """The JSON value in `body`; ValueError when it is not JSON.

    Strict UTF-8 (a leading BOM is allowed, RFC 8259 8.1); NaN and Infinity are refused; numbers
    keep the text they were written with (`JsonInt`, `JsonFloat`) so `render_json` repeats it.
    Duplicate keys collapse as in any Python JSON reader: the last value, at the first position.
    """
    try:
        text = body.decode("utf-8-sig")
        return json.loads(
            text, parse_int=JsonInt, parse_float=JsonFloat, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and an integer over Python's 4300-digit limit.
        raise ValueError(f"not JSON: {exc}") from None


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in `body`, or None for anything else (the caller then passes it through)."""
    try:
        doc = parse_json(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def render_json(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (as MAS and Synapse serve it), numbers as the upstream wrote them.

    A string holding a lone surrogate (legal as a JSON `\\ud800` escape, not encodable as UTF-8)
    makes the whole document fall back to ASCII escapes, which every JSON reader decodes alike.
    """
    try:
        return "".join(_tokens(doc, ensure_ascii=False)).encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_tokens(doc, ensure_ascii=True)).encode("ascii")


class _Raw(str):
    """Already-rendered JSON text on the work stack."""


def _tokens(value: Any, *, ensure_ascii: bool) -> Iterator[str]:
    # Iterative, not recursive: a document nested as deep as json.loads allows must not
    # overflow the stack here, whatever depth the caller runs at.
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            yield item
        elif isinstance(item, Mapping):
            parts: list[Any] = [_Raw("}")]
            for i, (key, member) in enumerate(reversed(list(item.items()))):
                parts += [member, _Raw(json.dumps(str(key), ensure_ascii=ensure_ascii) + ":")]
                if i < len(item) - 1:
                    parts.append(_Raw(","))
            stack += parts
            yield "{"
        elif isinstance(item, list | tuple):
            parts = [_Raw("]")]
            for i, member in enumerate(reversed(item)):
                parts.append(member)
                if i < len(item) - 1:
                    parts.append(_Raw(","))
            stack += parts
            yield "["
        else:
            yield _scalar(item, ensure_ascii=ensure_ascii)


def _scalar(value: Any, *, ensure_ascii: bool) -> str:
    if isinstance(value, JsonInt | JsonFloat):
        return value.text
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)


def strong_etag(body: bytes) -> str:
    """A strong validator for `body`: 160 bits of its SHA-256, base64url (27 characters)."""
    digest = hashlib.sha256(body).digest()[:20]
    return '"sha256-' + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=") + '"'


_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


def if_none_match_matches(header: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: does If-None-Match name this representation (weak comparison)?

    `header` is the field value; join repeated field lines with ", " first. Quoted tags cannot
    hold a double quote, so each quoted string is one entity tag; anything between them (commas,
    empty list elements, stray text) is skipped, and "*" matches only on its own.
    """
    if header is None:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(header))
