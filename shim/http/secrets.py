"""Which query parameters carry credentials, and a query or URL with their values replaced. Pure.

One home for the list, used by the logs (`shim.obs.redact`) and by `translate`
(`shim.core.translate`), which sits below the logs and so cannot import them.

A name is a secret when it is in `SECRET_QUERY_PARAMS` or *contains* one of `SECRET_WORDS`
(`token`, `secret`, `password`, `code`, `ticket`, `signature`, `session`, ...), compared after
percent-decoding (and `+` as a space, as a form decoder does) and case-insensitively. OAuth and
MSC4191 names are case-sensitive, so a portal treats `Code=` as a different parameter, and
`country_code` is no credential; but redacting one parameter too many only loses a little debug
detail, while missing a lenient framework's `Code=` or a portal's own `mas_session_token=` would
write a secret. An empty value (`code=`) carries no secret and is kept, so the log still shows it
was empty.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

REDACTED: Final = "[redacted]"

#: Query parameters whose values are credentials, one-time tokens or identify a login.
SECRET_QUERY_PARAMS: Final = frozenset(
    {
        "id_token_hint",
        "code",
        "state",
        "login_hint",
        "org.matrix.msc4198.login_hint",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code_verifier",
        "device_code",
        "user_code",
        "loginToken",
        "ticket",
        "token",
        "password",
        # API keys, signed URLs, SAML and session identifiers
        "key",
        "auth",
        "sid",
        "sig",
    }
)
#: A parameter whose name contains one of these (case-insensitively) is a secret too
#: (`X-Amz-Signature`, `SAMLResponse`, `api_key`, `session_id`, `jwt`, `client_assertion`).
SECRET_WORDS: Final = (
    "token",
    "secret",
    "password",
    "code",
    "ticket",
    "signature",
    "apikey",
    "api_key",
    "session",
    "jwt",
    "assertion",
    "saml",
)
_SECRET_QUERY_FOLDED: Final = frozenset(name.casefold() for name in SECRET_QUERY_PARAMS)


def _is_secret_name(name: str) -> bool:
    folded = name.casefold()
    return folded in _SECRET_QUERY_FOLDED or any(word in folded for word in SECRET_WORDS)


def is_secret_param(raw_name: str) -> bool:
    """True when a raw (still percent-encoded) query parameter name names a secret."""
    if "%" not in raw_name and "+" not in raw_name:  # nothing to decode: the usual case
        return _is_secret_name(raw_name)
    return _is_secret_name(unquote(raw_name.replace("+", " "), errors="replace"))


def _redact_pair(pair: str) -> str:
    name, sep, value = pair.partition("=")
    if sep and value and is_secret_param(name):
        return f"{name}={REDACTED}"
    return pair


def redact_query(raw_query: str) -> str:
    """Replace the values of secret parameters; every other byte stays as it was."""
    if "=" not in raw_query:  # no value, so no secret
        return raw_query
    return "&".join(_redact_pair(pair) for pair in raw_query.split("&"))


def redact_path_qs(raw_path_qs: str) -> str:
    """`redact_query` on the query, and on a fragment (implicit-flow tokens travel there)."""
    rest, hash_sign, fragment = raw_path_qs.partition("#")
    path, question_mark, query = rest.partition("?")
    redacted = path + question_mark + redact_query(query) if question_mark else rest
    return redacted + hash_sign + redact_query(fragment) if hash_sign else redacted
