"""Keep secrets out of logs and debug output: query values, credential headers, free text.

Pure functions over strings; none of them raises for any `str` input. Which query parameters
are secrets is `shim.http.secrets`' decision (`translate` needs it too); this module adds
headers and free text.
"""

from __future__ import annotations

import re

from aiohttp import hdrs

from shim.http.secrets import REDACTED, is_secret_param

#: Headers whose whole value is replaced in debug output.
SECRET_HEADERS = frozenset(
    {hdrs.AUTHORIZATION, hdrs.PROXY_AUTHORIZATION, hdrs.COOKIE, hdrs.SET_COOKIE}
)
_SECRET_HEADERS_FOLDED = frozenset(name.casefold() for name in SECRET_HEADERS)

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
