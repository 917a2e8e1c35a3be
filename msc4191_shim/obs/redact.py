"""Keep secrets out of logs and debug output: query values, credential headers, free text.

Pure functions over strings; none of them raises for any `str` input.

Query parameter names are compared after percent-decoding (and `+` as a space, as a form
decoder does) and *case-insensitively*. OAuth and MSC4191 names are case-sensitive, so a
portal treats `Code=` as a different parameter; but redacting one parameter too many only loses
a little debug detail, while missing a lenient framework's `Code=` would write a secret. An
empty value (`code=`) carries no secret and is kept, so the log still shows it was empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from aiohttp import hdrs

REDACTED = "[redacted]"

#: Query parameters whose values are credentials or one-time tokens.
SECRET_QUERY_PARAMS = frozenset(
    {
        "id_token_hint",
        "code",
        "state",
        "login_hint",
        "org.matrix.msc4198.login_hint",
        "access_token",
        "refresh_token",
        "client_secret",
    }
)
_SECRET_QUERY_FOLDED = frozenset(name.casefold() for name in SECRET_QUERY_PARAMS)

#: Headers whose whole value is replaced in debug output.
SECRET_HEADERS = frozenset(
    {hdrs.AUTHORIZATION, hdrs.PROXY_AUTHORIZATION, hdrs.COOKIE, hdrs.SET_COOKIE}
)
_SECRET_HEADERS_FOLDED = frozenset(name.casefold() for name in SECRET_HEADERS)

#: Headers that carry a URL, whose query (an OAuth callback's `code`, say) is redacted.
URL_HEADERS = frozenset({hdrs.LOCATION, hdrs.CONTENT_LOCATION, hdrs.REFERER})
_URL_HEADERS_FOLDED = frozenset(name.casefold() for name in URL_HEADERS)


def is_secret_param(raw_name: str) -> bool:
    """True when a raw (still percent-encoded) query parameter name names a secret."""
    if "%" not in raw_name and "+" not in raw_name:  # nothing to decode: the usual case
        return raw_name.casefold() in _SECRET_QUERY_FOLDED
    return unquote(raw_name.replace("+", " "), errors="replace").casefold() in _SECRET_QUERY_FOLDED


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


def redact_header(name: str, value: str) -> str:
    """One header's value as it may be shown."""
    folded = name.casefold()
    if folded in _SECRET_HEADERS_FOLDED:
        return REDACTED
    if folded in _URL_HEADERS_FOLDED:
        return redact_path_qs(value)
    return value


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Header pairs (say `request.headers.items()`) for debug output, order and repeats kept."""
    return tuple((name, redact_header(name, value)) for name, value in headers)


# `name=value` inside free text, where the pair starts a string, a query, a fragment or a word.
_PAIR_IN_TEXT = re.compile(r"(?:(?<=[?&#;\s\"'(])|^)([^\s=&#?;\"']+)=([^\s&#;\"'<>]+)")
# `Authorization: Bearer x`, `'Cookie': 'a=b'`, `cookie=...` inside free text.
_HEADER_IN_TEXT = re.compile(
    r"(?i)\b(proxy-authorization|authorization|set-cookie|cookie)(['\"]?\s*[:=]\s*)(['\"]?)"
    r"([^'\"\r\n]+)"
)


def _redact_text_pair(match: re.Match[str]) -> str:
    return f"{match[1]}={REDACTED}" if is_secret_param(match[1]) else match[0]


def redact_text(text: str) -> str:
    """Best-effort scrub of free text (messages, exception text) as a last line of defence.

    Structured fields are redacted exactly by the functions above; this catches a URL or a
    header that found its way into an exception message. It may redact a little too much.
    """
    if "=" not in text and ":" not in text:  # neither pattern can match: most log fields
        return text
    if _may_name_secret_header(text):
        text = _HEADER_IN_TEXT.sub(_redact_text_header, text)
    return _PAIR_IN_TEXT.sub(_redact_text_pair, text) if "=" in text else text


def _redact_text_header(match: re.Match[str]) -> str:
    return f"{match[1]}{match[2]}{match[3]}{REDACTED}"


def _may_name_secret_header(text: str) -> bool:
    """False only when `_HEADER_IN_TEXT` cannot match; a cheap test before the regex.

    Only for ASCII text: a case-insensitive regex also lets U+0130, U+0131 (dotted and dotless
    i), U+017F (long s) and U+212A (Kelvin sign) stand for ASCII letters; `str.lower` does not.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return "authorization" in lowered or "cookie" in lowered
