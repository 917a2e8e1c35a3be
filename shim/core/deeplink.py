"""Deep-link decisions: what to do with `account_management_uri?action=...` on an entry path.

Pure functions over the raw query string; no I/O. The query is edited, never re-encoded: it is
split on `&` only, and a translation replaces the bytes of one parameter's value and nothing else,
so `device_id`, `id_token_hint` and anything unknown reach the portal exactly as the client wrote
them. Names and values are percent-decoded only to be compared.

Repeated `action`: the decision is taken on the FIRST `action` parameter (the one a browser's
`URLSearchParams.get` reads). When the first needs no change (unknown, empty, already spoken) the
query is passed through untouched, later `action` parameters included. When it does, every
`action` parameter is brought to the portal's dialect in the same pass (translated, or removed under
`unsupported: strip`), so the result is passed through when decided again: no second redirect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, unquote_to_bytes

from shim.config.actions import RedirectUnsupported, Unsupported
from shim.config.model import AccountManagementConfig
from shim.http.target import split_reference
from shim.vocabulary import ActionTable

#: what `decide` concluded about the query, before the strategy is applied
Outcome = Literal["passthrough", "translate", "strip", "redirect-unsupported"]
#: what the shim did with a deep link: the one vocabulary of logs, metrics and `translate`
#: (`translate` is named after the strategy that carried it out); `followup`: passed through, the
#: browser following the shim's own redirect (never a plan's: only the proxy can tell)
DeeplinkOutcome = Literal[
    "redirect", "rewrite", "strip", "redirect-unsupported", "passthrough", "followup"
]

ACTION = "action"
#: characters that end a header line or a C string; a value holding one is never a known name
_FORBIDDEN = frozenset("\r\n\0")
#: how much of an unknown value a reason quotes
_SHOWN_CHARS = 64


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One `&`-separated piece of a raw query; `name`/`value` decoded, None when undecodable."""

    raw: str
    name: str | None
    value: str | None

    @property
    def is_action(self) -> bool:
        return self.name == ACTION

    def with_value(self, value: str) -> str:
        """The raw piece with only its value replaced (written as given: action names are ASCII)."""
        raw_name, _, _ = self.raw.partition("=")
        return f"{raw_name}={value}"


def decode_component(raw: str) -> str | None:
    """Form-decode one name or value (`+` is a space), strictly: None for bad UTF-8 or CR/LF/NUL."""
    if "%" not in raw and "+" not in raw and raw.isascii():  # nothing to decode: the usual case
        return None if "\r" in raw or "\n" in raw or "\0" in raw else raw
    try:
        text = unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeError:  # lone surrogates in the raw text, or undecodable bytes
        return None
    return None if _FORBIDDEN.intersection(text) else text


def parse_query(raw_query: str) -> tuple[QueryParam, ...]:
    """Split a raw query on `&` (not `;`); `format_query` joins the pieces back byte for byte."""
    params = []
    for raw in raw_query.split("&"):
        raw_name, _, raw_value = raw.partition("=")
        params.append(QueryParam(raw, decode_component(raw_name), decode_component(raw_value)))
    return tuple(params)


def format_query(pieces: Iterable[str]) -> str:
    return "&".join(pieces)


@dataclass(frozen=True, slots=True)
class DeepLinkDecision:
    outcome: Outcome
    incoming: str | None  # the first `action` value as decoded (None: absent or undecodable)
    stable: str | None  # its stable name if known
    sent: str | None  # the name that goes to the portal ("translate"), else None
    query: str | None  # the new raw query for translate/strip, else None
    location: str | None  # the operator's URL for redirect-unsupported, else None
    reason: str  # one short human sentence for logs and `msc4191-shim translate`


def is_entry_path(path: str, entry_paths: tuple[str, ...]) -> bool:
    """Exact match, except that one trailing slash is optional on either side."""
    bare = _without_trailing_slash(path)
    return any(path == e or bare == _without_trailing_slash(e) for e in entry_paths)


def is_entry_raw_path(raw_path: str, entry_paths: tuple[str, ...]) -> bool:
    """`is_entry_path` on a still percent-encoded path; a path that is not UTF-8 is no entry."""
    try:
        return is_entry_path(unquote(raw_path, errors="strict"), entry_paths)
    except UnicodeError:
        return False


def _without_trailing_slash(path: str) -> str:
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def _first_action(raw_query: str) -> tuple[bool, str | None]:
    """(whether the query has an `action` parameter, the first one's decoded value): what
    `parse_query` would find, decoding only what it needs to."""
    if ACTION not in raw_query and "%" not in raw_query:  # no name can decode to `action`
        return False, None
    for raw in raw_query.split("&"):
        raw_name, _, raw_value = raw.partition("=")
        if decode_component(raw_name) == ACTION:
            return True, decode_component(raw_value)
    return False, None


def decide(raw_query: str, table: ActionTable, unsupported: Unsupported) -> DeepLinkDecision:
    """Decide what the shim does with a request to an entry path carrying `raw_query`."""
    found, incoming = _first_action(raw_query)
    if not found:
        return _passthrough(None, None, "no action parameter")
    if incoming is None:
        return _passthrough(None, None, "the action value is not UTF-8 or holds CR, LF or NUL")
    stable = table.to_stable(incoming)
    if stable is None:
        return _passthrough(incoming, None, _unknown_reason(incoming))
    dialect = table.dialect.name
    if table.speaks(incoming):
        return _passthrough(incoming, stable, f"{dialect} speaks {incoming} as sent")
    sent = table.to_portal(stable)
    if sent is not None and not table.speaks(sent):
        # only a contradictory configuration gets here (the dialect's name is configured as an
        # alias of another action); translating would start a redirect loop
        reason = f"{dialect}'s name {sent} for {stable} is an alias of {table.to_stable(sent)}"
        return _passthrough(incoming, stable, reason + "; fix account_management")
    if sent is not None:
        query = format_query(_to_portal(raw_query, table, unsupported))
        reason = f"{dialect} speaks {sent} for {stable}"
        return DeepLinkDecision("translate", incoming, stable, sent, query, None, reason)
    return _unsupported(raw_query, incoming, stable, table, unsupported)


def _unsupported(
    raw_query: str,
    incoming: str,
    stable: str,
    table: ActionTable,
    unsupported: Unsupported,
) -> DeepLinkDecision:
    not_served = f"{stable} is not served by {table.dialect.name}"
    if isinstance(unsupported, RedirectUnsupported):
        return DeepLinkDecision(
            "redirect-unsupported", incoming, stable, None, None, unsupported.url, not_served
        )
    if unsupported == "pass":
        return _passthrough(incoming, stable, f"{not_served}; unsupported: pass")
    query = format_query(_to_portal(raw_query, table, unsupported))
    reason = f"{not_served}; unsupported: strip"
    return DeepLinkDecision("strip", incoming, stable, None, query, None, reason)


def _to_portal(raw_query: str, table: ActionTable, unsupported: Unsupported) -> list[str]:
    """Every piece, with each `action` the portal does not speak translated or (strip) dropped.

    Only names, and the values of `action` pieces, are decoded (what `parse_query` would give).
    """
    pieces = []
    for raw in raw_query.split("&"):
        raw_name, _, raw_value = raw.partition("=")
        if decode_component(raw_name) != ACTION:
            pieces.append(raw)
            continue
        value = decode_component(raw_value)
        stable = table.to_stable(value) if value is not None else None
        if stable is None or value is None or table.speaks(value):
            pieces.append(raw)
        elif (portal := table.to_portal(stable)) is not None:
            pieces.append(f"{raw_name}={portal}" if table.speaks(portal) else raw)
        elif unsupported != "strip":
            pieces.append(raw)
    return pieces


def _passthrough(incoming: str | None, stable: str | None, reason: str) -> DeepLinkDecision:
    return DeepLinkDecision("passthrough", incoming, stable, None, None, None, reason)


def _unknown_reason(value: str) -> str:
    if not value:
        return "the action parameter is empty"
    shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
    return f"{shown!r} is not a known action name"


#: what a browser strips, folds or reads as a delimiter; always sent percent-encoded
_UNSAFE = re.compile(r"[^\x21-\x7e]|#")


def redirect_location(raw_path: str, query: str) -> str:
    """A relative `Location` for `raw_path?query` that a browser resolves on the request's origin.

    `raw_path` is the path as received (a query or fragment on it is dropped; `query` replaces it).
    Leading runs of `/` and `\\` collapse to one `/` (`//host` and `/\\host` name another host), a
    scheme and authority in front are dropped, and controls, spaces, `#` and non-ASCII are
    percent-encoded, so the result has no raw CR, LF or NUL and no hidden delimiter.
    """
    path = _QUERY_OR_FRAGMENT.split(raw_path, maxsplit=1)[0]
    if path[:1] in _SCHEME_STARTS:  # else no scheme, so no absolute form: the usual case
        reference = split_reference(path)
        path = reference.rest if reference.is_absolute else path
    path = "/" + _percent_encode_unsafe(path).lstrip("/\\")
    return f"{path}?{_percent_encode_unsafe(query)}" if query else path


_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
#: what a URI scheme starts with (RFC 3986: ALPHA)
_SCHEME_STARTS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _percent_encode_unsafe(text: str) -> str:
    if _UNSAFE.search(text) is None:  # nothing to encode: the usual case
        return text
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in _utf8(m.group())), text)


def _utf8(char: str) -> bytes:
    try:  # undo aiohttp's surrogateescape decoding of raw non-UTF-8 bytes
        return char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return char.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class DeepLinkPlan:
    """What the shim does with one deep link: the proxy carries it out, `translate` words it.

    Exactly one of `location` (answer 302 to it) and `target` (forward upstream with this
    path and query) is set; neither means "forward the request as received".
    """

    decision: DeepLinkDecision
    outcome: DeeplinkOutcome
    location: str | None = None
    target: str | None = None


def plan_deeplink(raw_path: str, query: str, account: AccountManagementConfig) -> DeepLinkPlan:
    """Decide, then apply the strategy: the single place a decision becomes an action."""
    decision = decide(query, account.table, account.unsupported)
    if decision.outcome == "redirect-unsupported" and decision.location is not None:
        return DeepLinkPlan(decision, "redirect-unsupported", location=decision.location)
    if decision.query is None:
        return DeepLinkPlan(decision, "passthrough")
    outcome: DeeplinkOutcome = "strip" if decision.outcome == "strip" else account.strategy
    if account.strategy == "redirect":
        return DeepLinkPlan(decision, outcome, location=redirect_location(raw_path, decision.query))
    target = f"{raw_path}?{decision.query}" if decision.query else raw_path
    return DeepLinkPlan(decision, outcome, target=target)
