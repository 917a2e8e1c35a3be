"""Parsers for single configuration values: durations, sizes, URLs, listen addresses, CIDRs.

Each returns the parsed value or raises ValueError with a message that says what was expected and
what was got; the section parsers attach the key path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from yarl import URL

from shim.http.forwarding import IPNetwork

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_duration(value: object) -> float:
    """`5s`, `250ms`, `2m`, or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 5s, 250ms or 10, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 5s, 250ms or 10, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"expected a duration of zero or more, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """`1MiB`, `512KiB`, or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 1MiB, 512KiB or 65536, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 1MiB, 512KiB or 65536, got {value!r}")
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if size <= 0:
        raise ValueError(f"expected a size above zero, got {value!r}")
    return size


def parse_http_url(value: object, *, allow_path: bool = True) -> URL:
    """An absolute http(s) URL with a host."""
    if not isinstance(value, str):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    try:
        url = URL(value)
    except ValueError:
        raise ValueError(f"expected an http(s) URL, got {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"expected an http(s) URL such as https://account.example.com, got {value!r}"
        )
    if not allow_path and url.path not in ("", "/"):
        raise ValueError(f"expected an origin without a path, got {value!r}")
    return url


def parse_listen(value: object) -> ListenAddress:
    """`host:port`, `[v6]:port`, or `:port` for every address."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is None:
        raise ValueError(f"expected host:port such as 0.0.0.0:8080, got {value!r}")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)|(\d+)", text.strip())
    if not match:
        raise ValueError(f"expected host:port such as 0.0.0.0:8080, got {value!r}")
    host = match.group(1) or match.group(3) or "0.0.0.0"
    port = int(match.group(2) or match.group(4) or match.group(5))
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {port}")
    return ListenAddress(host, port)


def parse_admin_listen(value: object) -> ListenAddress:
    """`parse_listen`, but a bare port is refused: on the admin listener it would silently bind
    every interface and publish /metrics and the status page, where its default is loopback."""
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).isdigit():
        raise ValueError(
            f"a bare port ({value!r}) would bind every interface and expose /metrics and the "
            f"status page; write 127.0.0.1:{value} (this host only) or 0.0.0.0:{value} (every "
            "interface, as in a container)"
        )
    return parse_listen(value)


def parse_cidr(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR such as 10.0.0.0/8 or ::1/128, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"expected a CIDR such as 10.0.0.0/8 or ::1/128, got {value!r}") from None


def parse_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def choice(*choices: str) -> Callable[[object], Any]:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def parse_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        raise ValueError(f"expected a path starting with a single '/', got {value!r}")
    if "?" in value or "#" in value:
        raise ValueError(f"expected a path without '?' or '#', got {value!r}")
    return value


def parse_paths(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of paths, got {value!r}")
    problems = []
    for i, item in enumerate(value):
        try:
            parse_path(item)
        except ValueError as exc:
            problems.append(f"[{i}] {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(value)


def parse_file(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a file path, got {value!r}")
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"no readable file at {value!r}; give the path of an existing file")
    return path


def parse_cidrs(value: object) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of CIDRs such as ['10.0.0.0/8'], got {value!r}")
    return tuple(parse_cidr(item) for item in value)


def parse_log_level(value: object) -> str:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    if not isinstance(value, str) or value.upper() not in levels:
        raise ValueError(f"expected one of {', '.join(levels)}, got {value!r}")
    return value.upper()


def parse_positive_duration(value: object) -> float:
    """A duration above zero (a zero timeout would close every connection at once)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration above zero such as 10s, got {value!r}")
    return seconds


#: the longest `log.flush_interval`: access lines held longer stop being of use to anybody
#: watching, and a crash would lose them
MAX_FLUSH_INTERVAL: Final = 10.0


def parse_flush_interval(value: object) -> float:
    """A duration from zero to `MAX_FLUSH_INTERVAL`."""
    seconds = parse_duration(value)
    if seconds > MAX_FLUSH_INTERVAL:
        raise ValueError(
            f"expected at most {MAX_FLUSH_INTERVAL:g}s (lines held longer would be lost in a "
            f"crash and late for anybody watching), got {value!r}"
        )
    return seconds


def parse_count(value: object) -> int:
    """A whole number above zero, such as a connection limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a whole number above zero such as 256, got {value!r}")
    return value


def parse_upstream_url(value: object) -> URL:
    """The portal's URL, which must not carry credentials (they would be logged and shown)."""
    url = parse_http_url(value)
    if url.user is not None or url.password is not None:
        raise ValueError(
            f"credentials in the URL ({url.with_user(None)!s} with a user name"
            f"{' and password' if url.password is not None else ''}) are refused: they would be "
            "written to logs and shown by doctor. Remove them; the routes the shim forwards must "
            "not need basic auth on the portal (put it behind a private network or mTLS instead)"
        )
    return url
