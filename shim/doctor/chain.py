"""`msc4191-shim doctor --homeserver`: the discovery chain a client follows, read and compared.

Pure: `doctor.fetch` asks the homeserver for `/.well-known/matrix/client`, `/versions` and both
`auth_metadata` paths, then the issuer for its `/.well-known/openid-configuration`; `read_chain`
turns those answers into findings and the `Metadata` clients will act on (the first document they
would use: the stable `auth_metadata`, else the unstable one, else the issuer's own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from yarl import URL

from shim.core.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACCOUNT_MANAGEMENT_URI,
    UNSTABLE_ACTIONS_SUPPORTED,
    WELL_KNOWN_AUTHENTICATION,
    parse_json_object,
)
from shim.doctor.values import Answer, Fetched, Finding, NoAnswer

WELL_KNOWN_CLIENT: Final = "/.well-known/matrix/client"
VERSIONS: Final = "/_matrix/client/versions"
AUTH_METADATA: Final = "/_matrix/client/v1/auth_metadata"
UNSTABLE_AUTH_METADATA: Final = "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"
OPENID_CONFIGURATION: Final = "/.well-known/openid-configuration"
#: a discovery document is a few KiB; this only stops a wrong URL streaming forever
DOCUMENT_LIMIT: Final = 1024 * 1024

#: what the Matrix spec (v1.19, GET /auth_metadata) requires of the document, and the values
#: each listed array MUST contain
REQUIRED_KEYS: Final = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "registration_endpoint",
    "response_types_supported",
    "grant_types_supported",
    "response_modes_supported",
    "code_challenge_methods_supported",
)
REQUIRED_VALUES: Final[Mapping[str, tuple[str, ...]]] = {
    "response_types_supported": ("code",),
    "grant_types_supported": ("authorization_code", "refresh_token"),
    "response_modes_supported": ("query", "fragment"),
    "code_challenge_methods_supported": ("S256",),
}
SYNAPSE_REFUSES = "Synapse answers 500 when the issuer's document has no account_management_uri"


@dataclass(frozen=True, slots=True)
class ChainAnswers:
    """What `doctor.fetch` got; None where it did not ask (no --homeserver, or no issuer)."""

    homeserver: str | None
    client_base: str | None
    well_known: Fetched | None
    versions: Fetched | None
    auth_metadata: Fetched | None
    unstable_auth_metadata: Fetched | None
    issuer: str | None
    issuer_document: Fetched | None


@dataclass(frozen=True, slots=True)
class Document:
    """One discovery document as read: where it came from, and its JSON object (None: unusable)."""

    name: str
    url: str
    doc: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Metadata:
    """What clients act on: the first usable document, its account page and its action names."""

    source: str
    doc: Mapping[str, Any]
    account_uri: str | None
    names: tuple[str, ...] | None


# --- where to ask ------------------------------------------------------------------------------


def parse_base_url(text: str) -> str:
    """A homeserver or issuer URL as given on the command line; `https://` when it has no scheme.

    Raises ValueError, worded for the operator, for anything but an http(s) URL with a host.
    """
    given = text.strip()
    candidate = given if "://" in given else f"https://{given}"
    try:
        url = URL(candidate)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"expected an http(s) URL such as https://example.com, got {text!r}")
    if url.query_string or url.fragment:
        raise ValueError(f"expected a base URL without query or fragment, got {text!r}")
    return candidate


def join(base: str, path: str) -> str:
    """`base` (which may have a path) with `path` appended: what Synapse and clients do."""
    return base.rstrip("/") + path


def client_base(homeserver: str, well_known: Fetched) -> str:
    """The client API's base URL: `m.homeserver.base_url` when the well-known names one."""
    doc = _object(well_known)
    home = doc.get("m.homeserver") if doc else None
    base = home.get("base_url") if isinstance(home, dict) else None
    return base if isinstance(base, str) and _is_http_url(base) else homeserver


def issuer_of(
    given: str | None, auth_metadata: Sequence[Fetched | None], well_known: Fetched | None
) -> str | None:
    """--issuer, else the `issuer` of the first auth_metadata answer, else the well-known's."""
    if given:
        return given
    for fetched in auth_metadata:
        issuer = (_object(fetched) or {}).get("issuer")
        if isinstance(issuer, str) and _is_http_url(issuer):
            return issuer
    auth = (_object(well_known) or {}).get(WELL_KNOWN_AUTHENTICATION)
    issuer = auth.get("issuer") if isinstance(auth, dict) else None
    return issuer if isinstance(issuer, str) and _is_http_url(issuer) else None


def _object(fetched: Fetched | None) -> dict[str, Any] | None:
    if not isinstance(fetched, Answer) or fetched.status != 200:
        return None
    return parse_json_object(fetched.body)


def _is_http_url(text: str) -> bool:
    try:
        url = URL(text)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


# --- reading the chain -------------------------------------------------------------------------


def read_chain(answers: ChainAnswers) -> tuple[list[Finding], Metadata | None]:
    """Findings for each step of the chain, their disagreements, and what clients act on."""
    findings: list[Finding] = []
    documents: list[Document] = []
    if answers.homeserver is not None and answers.client_base is not None:
        findings += _homeserver_steps(answers, documents)
    if answers.issuer is None:
        what = "no issuer to ask: neither auth_metadata nor the well-known names one"
        findings.append(Finding("FAIL", what, "pass --issuer, or fix the homeserver's MAS setup"))
    elif answers.issuer_document is not None:
        url = join(answers.issuer, OPENID_CONFIGURATION)
        doc, finding = read_document("the issuer's document", url, answers.issuer_document)
        findings.append(finding)
        documents.append(Document("the issuer's document", url, doc))
    metadata = effective_metadata(documents)
    findings += disagreements(documents, _well_known_account(answers.well_known))
    if metadata is None:
        what = "no discovery document clients could read"
        findings.append(Finding("FAIL", what, "clients cannot log in or find the account page"))
    else:
        findings += check_account_metadata(metadata)
        findings += missing_required(metadata)
    return findings, metadata


def _homeserver_steps(answers: ChainAnswers, documents: list[Document]) -> list[Finding]:
    assert answers.homeserver is not None
    assert answers.client_base is not None
    findings = [check_well_known(answers.homeserver, answers.well_known)]
    findings.append(check_versions(answers.client_base, answers.versions))
    for name, path, fetched in (
        ("auth_metadata", AUTH_METADATA, answers.auth_metadata),
        ("unstable auth_metadata", UNSTABLE_AUTH_METADATA, answers.unstable_auth_metadata),
    ):
        if fetched is None:
            continue
        url = join(answers.client_base, path)
        doc, finding = read_document(name, url, fetched)
        findings.append(finding)
        documents.append(Document(name, url, doc))
    return findings


def check_well_known(homeserver: str, fetched: Fetched | None) -> Finding:
    url = join(homeserver, WELL_KNOWN_CLIENT)
    if fetched is None or isinstance(fetched, NoAnswer):
        reason = "not asked" if fetched is None else fetched.reason
        return Finding("INFO", f"{url} does not answer: {reason}", "clients use --homeserver as is")
    doc = _object(fetched)
    if doc is None:
        what = f"{url} answers {fetched.status} without a JSON object"
        return Finding("INFO", what, "clients use the homeserver URL as given")
    auth = doc.get(WELL_KNOWN_AUTHENTICATION)
    if not isinstance(auth, dict):
        what = f"{url} has no {WELL_KNOWN_AUTHENTICATION}"
        return Finding("INFO", what, "current clients read auth_metadata instead; old ones need it")
    shown = ", ".join(f"{k}: {v}" for k, v in auth.items() if k in ("issuer", "account"))
    return Finding("OK", f"{url} names the issuer ({shown})")


def check_versions(base: str, fetched: Fetched | None) -> Finding:
    url = join(base, VERSIONS)
    if fetched is None or isinstance(fetched, NoAnswer):
        reason = "not asked" if fetched is None else fetched.reason
        what = f"the homeserver does not answer: {url}: {reason}"
        return Finding("FAIL", what, "check --homeserver (or m.homeserver.base_url)")
    doc = _object(fetched)
    versions = doc.get("versions") if doc else None
    if not isinstance(versions, list):
        what = f"{url} answers {fetched.status}, not a Matrix /versions document"
        return Finding("FAIL", what, "is this a Matrix homeserver's client API?")
    newest = max((v for v in versions if isinstance(v, str)), key=_version_key, default="none")
    return Finding("OK", f"the homeserver answers {VERSIONS} (newest spec version {newest})")


def _version_key(version: str) -> tuple[int, ...]:
    digits = version.lstrip("rv").split(".")
    return tuple(int(d) if d.isdigit() else 0 for d in digits)


def read_document(name: str, url: str, fetched: Fetched) -> tuple[dict[str, Any] | None, Finding]:
    """One discovery document, or None with a finding that says what was wrong with it."""
    if isinstance(fetched, NoAnswer):
        return None, Finding("FAIL", f"{name} {url} does not answer: {fetched.reason}")
    if fetched.status == 200:
        doc = parse_json_object(fetched.body)
        if doc is not None:
            return doc, Finding("OK", f"{name} {url} is a JSON object ({len(doc)} keys)")
        return None, Finding("FAIL", f"{name} {url} answers 200 but not with a JSON object")
    error = _matrix_error(fetched.body)
    what = f"{name} {url} answers {fetched.status}{error}"
    if fetched.status == 500 and "auth_metadata" in name:
        return None, Finding("FAIL", what, f"{SYNAPSE_REFUSES}: see the issuer's document below")
    if fetched.status == 404 and name == "unstable auth_metadata":
        return None, Finding("INFO", what, "clients use the stable path")
    return None, Finding("FAIL", what)


def _matrix_error(body: bytes) -> str:
    doc = parse_json_object(body)
    if doc is None or not isinstance(doc.get("errcode"), str):
        return ""
    message = doc.get("error")
    return f" {doc['errcode']}" + (f" ({message})" if isinstance(message, str) else "")


def effective_metadata(documents: Iterable[Document]) -> Metadata | None:
    """The first usable document, in the order clients try them."""
    for document in documents:
        if document.doc is not None:
            uri = document.doc.get(ACCOUNT_MANAGEMENT_URI)
            return Metadata(
                document.name,
                document.doc,
                uri if isinstance(uri, str) and uri else None,
                advertised(document.doc, ACTIONS_SUPPORTED),
            )
    return None


def advertised(doc: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    """The action names under `key` as written, or None when the key is absent or no list."""
    value = doc.get(key)
    if not isinstance(value, list):
        return None
    return tuple(dict.fromkeys(item for item in value if isinstance(item, str)))


def _well_known_account(fetched: Fetched | None) -> str | None:
    auth = (_object(fetched) or {}).get(WELL_KNOWN_AUTHENTICATION)
    account = auth.get("account") if isinstance(auth, dict) else None
    return account if isinstance(account, str) else None


# --- comparing and checking --------------------------------------------------------------------


def disagreements(documents: Sequence[Document], well_known_account: str | None) -> list[Finding]:
    """Where the documents a client might read say different things about the account page."""
    read = [d for d in documents if d.doc is not None]
    findings = []
    for key in (ACCOUNT_MANAGEMENT_URI, ACTIONS_SUPPORTED):
        values = {d.name: _shown(d.doc.get(key)) for d in read if d.doc is not None}
        if len(set(values.values())) > 1:
            details = tuple(f"{name}: {value}" for name, value in values.items())
            todo = "Synapse republishes the issuer's document: is one route missing the shim?"
            findings.append(Finding("WARN", f"the documents disagree on {key}", todo, details))
    uris = {_shown(d.doc.get(ACCOUNT_MANAGEMENT_URI)) for d in read if d.doc is not None}
    if well_known_account is not None and uris and json.dumps(well_known_account) not in uris:
        what = f"{WELL_KNOWN_AUTHENTICATION}.account ({well_known_account}) is not the documents'"
        todo = "old clients open the well-known's account page: make it the same"
        findings.append(Finding("WARN", what, todo, tuple(sorted(uris))))
    return findings


def _shown(value: object) -> str:
    return json.dumps(value) if value is not None else "absent"


def check_account_metadata(metadata: Metadata) -> list[Finding]:
    """The account page and the actions in the document clients act on, and its unstable keys."""
    doc, source = metadata.doc, metadata.source
    findings = []
    if metadata.account_uri is not None:
        findings.append(Finding("OK", f"{ACCOUNT_MANAGEMENT_URI}: {metadata.account_uri}"))
    else:
        only = _only_unstable(doc, UNSTABLE_ACCOUNT_MANAGEMENT_URI)
        what = f"{source} has no {ACCOUNT_MANAGEMENT_URI}{only}"
        todo = "clients show no account link; put the shim in front of the portal"
        findings.append(Finding("FAIL", what, todo))
    if metadata.names is None:
        only = _only_unstable(doc, UNSTABLE_ACTIONS_SUPPORTED)
        what = f"{source} has no {ACTIONS_SUPPORTED}{only}"
        findings.append(Finding("WARN", what, "clients cannot tell which deep links work"))
    for key in (UNSTABLE_ACCOUNT_MANAGEMENT_URI, UNSTABLE_ACTIONS_SUPPORTED):
        if key in doc:
            findings.append(Finding("INFO", f"{source} also has the unstable {key}"))
    return findings


def _only_unstable(doc: Mapping[str, Any], unstable_key: str) -> str:
    return f" (only the unstable {unstable_key})" if unstable_key in doc else ""


def missing_required(metadata: Metadata) -> list[Finding]:
    """Keys and values the Matrix spec requires of the document clients read."""
    doc = metadata.doc
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    for key, values in REQUIRED_VALUES.items():
        listed = doc.get(key)
        if isinstance(listed, list):
            missing += [f"{key} without {value}" for value in values if value not in listed]
    if not missing:
        return [Finding("OK", f"{metadata.source} has every key the Matrix spec requires")]
    what = f"{metadata.source} lacks what the Matrix spec requires"
    todo = "clients that validate the document (matrix-rust-sdk) refuse to log in"
    return [Finding("FAIL", what, todo, tuple(missing))]
