"""Rewriting the `Location` of an upstream redirect, as nginx's `proxy_redirect default` does.

Pure; no I/O. The Location is split by hand, never re-serialised: path, query and fragment go
back out byte for byte, and only the origin (and, under `strategy: rewrite`, an `action` value)
changes. Anything that does not parse is returned as it came.
"""

from __future__ import annotations

from yarl import URL

from shim.core.deeplink import format_query, is_entry_raw_path, parse_query
from shim.http.target import split_reference
from shim.vocabulary import ActionTable

Origin = tuple[str, str, int | None]


def rewrite_location(
    location: str,
    *,
    upstream_origin: URL,
    public_origin: str,
    back_translate: ActionTable | None,
    entry_paths: tuple[str, ...],
) -> str:
    """The Location the client sees: the upstream's own origin becomes `public_origin`.

    With `back_translate` (strategy `rewrite`), `action` values on an entry path of this site
    (a path-absolute Location, or one on the upstream's or the public origin) go back to their
    stable names. Other origins and relative references without a leading `/` are left alone.
    """
    scheme, authority, rest = split_reference(location)
    if authority is None and scheme is None:
        # relative: only a path-absolute reference names a path we can check
        return _back_translate(rest, back_translate, entry_paths) if rest[:1] == "/" else location
    upstream, public = _origin_of(upstream_origin), _parsed_origin(public_origin)
    # a scheme-relative `//host` takes the scheme of the side it is compared with
    if upstream is not None and _origin(scheme or upstream[0], authority) == upstream:
        prefix = public_origin
    elif public is not None and _origin(scheme or public[0], authority) == public:
        prefix = location[: len(location) - len(rest)]
    else:
        return location
    return prefix + _back_translate(rest, back_translate, entry_paths)


def _back_translate(reference: str, table: ActionTable | None, entry_paths: tuple[str, ...]) -> str:
    """`path?query#fragment` with the query's action names made stable, when on an entry path."""
    if table is None:
        return reference
    before_fragment, hash_, fragment = reference.partition("#")
    path, question, query = before_fragment.partition("?")
    if not question or not is_entry_raw_path(path or "/", entry_paths):
        return reference
    return f"{path}?{back_translate_query(query, table)}{hash_}{fragment}"


def back_translate_query(raw_query: str, table: ActionTable) -> str:
    """The raw query with each known non-stable `action` value replaced by its stable name.

    A name the portal serves as written next to its stable name (`mas-1.10`) stays: nothing needs
    translating for a portal that speaks both.
    """
    pieces = []
    for param in parse_query(raw_query):
        stable = table.to_stable(param.value) if param.is_action and param.value else None
        if stable is None or stable == param.value or _speaks_both(table, param.value, stable):
            pieces.append(param.raw)
        else:
            pieces.append(param.with_value(stable))
    return format_query(pieces)


def _speaks_both(table: ActionTable, name: str | None, stable: str) -> bool:
    return name is not None and table.speaks(name) and table.speaks(stable)


def _origin(scheme: str, authority: str | None) -> Origin | None:
    """The (scheme, host, port) of an absolute reference; None without a host or with userinfo."""
    if authority is None or "@" in authority:
        return None
    try:
        return _origin_of(URL(f"{scheme}://{authority}/"))
    except (ValueError, TypeError):
        return None


def _origin_of(url: URL) -> Origin | None:
    if url.host is None:
        return None
    return (url.scheme.lower(), url.host.lower(), url.port)


def _parsed_origin(origin: str) -> Origin | None:
    try:
        return _origin_of(URL(origin))
    except (ValueError, TypeError):
        return None
