"""Request targets and URL references: the one scheme/authority split, the upstream's path
prefix, and the HTTP/2 preface. Pure.

With `upstream.url: http://portal/auth` the shim promises the portal sees only `/auth/...`. A
target with dot segments (`/../admin`, `/%2e%2e/admin`, `/..%2fadmin`) would step out of that
prefix once the portal (or anything between) normalises the path, so it is refused before it is
sent. The check reads the path as the most lenient server behind might: it decodes only what
changes the path's structure (`.`, `/`, and `\\`, which some servers read as `/`), merges runs of
`/`, takes `..;x` for `..` (path parameters, dropped by Tomcat and Jetty), and removes dot
segments as RFC 3986 5.2.4 does; the target itself is still sent byte for byte.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

#: what an HTTP/2 client with prior knowledge sends first (RFC 9113 3.4)
HTTP2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: the one-line reason the shim gives such a client, and the README explains
HTTP2_REFUSAL: Final = (
    "this endpoint speaks HTTP/1.1 only: send HTTP/1.1 (for Synapse, turn force_http2 off for "
    "this endpoint)"
)

#: [scheme ":"] ["//" authority] rest (RFC 3986 appendix B); `\\` ends an authority as browsers
#: read it, and a scheme-relative `//host/...` has an authority too
_REFERENCE: Final = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):)?(?://(?P<authority>[^/?#\\]*))?(?P<rest>.*)$",
    re.DOTALL,
)


class Reference(NamedTuple):
    """A URL reference split once: `rest` is the path, query and fragment, byte for byte."""

    scheme: str | None
    authority: str | None
    rest: str

    @property
    def is_absolute(self) -> bool:
        """`scheme://authority...`: the form whose scheme and authority a proxy drops."""
        return self.scheme is not None and self.authority is not None


def split_reference(text: str) -> Reference:
    """The one place the project splits `scheme://authority` off a URL or request target."""
    match = _REFERENCE.match(text)
    assert match is not None  # the pattern matches every string
    scheme, authority, rest = match.group("scheme", "authority", "rest")
    return Reference(scheme, authority, rest)


_STRUCTURAL: Final = re.compile(r"%(2[eEfF]|5[cC])")
_DECODED: Final = {"2e": ".", "2f": "/", "5c": "/"}
_SLASHES: Final = re.compile(r"/{2,}")


def is_http2_preface(start: bytes) -> bool:
    """True when the first bytes of a connection are (the start of) the HTTP/2 preface."""
    size = min(len(start), len(HTTP2_PREFACE))
    return size >= 3 and start[:size] == HTTP2_PREFACE[:size]


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on an absolute path; a segment whose path parameters (`;...`, which
    Tomcat and Jetty drop) leave `..` or `.` counts as that dot segment."""
    out: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if ";" in segment:
            bare = segment.partition(";")[0]
            segment = bare if bare in (".", "..") else segment
        if segment == "..":
            if len(out) > 0:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def structural_path(raw_path: str) -> str:
    """The path as a normalising server would walk it: `%2e`, `%2f`, `%5c` and `\\` decoded,
    and runs of `/` merged (nginx's `merge_slashes`, and most servers, read `//` as `/`)."""
    decoded = _STRUCTURAL.sub(lambda m: _DECODED[m[1].lower()], raw_path).replace("\\", "/")
    return _SLASHES.sub("/", decoded) if "//" in decoded else decoded


def escapes_prefix(prefix: str, raw_path: str) -> bool:
    """True when `prefix + raw_path` leaves `prefix` once dot segments are resolved.

    `prefix` is the upstream URL's path without a trailing slash (`/auth`, or empty for none:
    then nothing can escape it).
    """
    if not prefix or prefix == "/":
        return False
    joined = remove_dot_segments(structural_path(prefix + raw_path))
    return not (joined == prefix or joined.startswith(prefix.rstrip("/") + "/"))


def escape_refusal(prefix: str, raw_path: str) -> str:
    """The 400's reason for a target that `escapes_prefix`."""
    return (
        f"request path {raw_path[:64]!r} leaves the upstream path prefix {prefix!r} once its "
        "dot segments are resolved: send a path without '..' segments"
    )
