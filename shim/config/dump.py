"""`msc4191-shim config dump`: the effective configuration, as a file that would give it.

Pure. Every key is written, defaults and environment overrides applied, in the model's order,
so an operator sees what the shim runs with (like `nginx -T` or `mas-cli config dump`).
Credentials in URLs are redacted; paths (a TLS key's too) are not secrets and are kept.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from yarl import URL

from shim.config.model import Config
from shim.config.schema import SIZE_FIELDS, yaml_value

REDACTED: Final = "REDACTED"
#: the binary units `config.example.yaml` writes sizes in, largest first
SIZE_UNITS: Final = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def config_as_yaml_data(config: Config) -> dict[str, Any]:
    """The configuration as the file writes it, durations as `5s`, secrets redacted."""
    data = _readable(yaml_value(config))
    assert isinstance(data, dict)
    return data


def dump_config(config: Config, source: str) -> str:
    """YAML a file could hold, with a comment naming where it came from."""
    header = (
        f"# msc4191-shim effective configuration: {source}, defaults and MSC4191_SHIM_* "
        "variables applied; credentials redacted\n"
    )
    body = yaml.safe_dump(config_as_yaml_data(config), sort_keys=False, allow_unicode=True)
    return header + body


def _readable(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _readable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v, name) for v in value]
    if isinstance(value, float):
        return format_duration(value)  # every float in the model is a duration in seconds
    if isinstance(value, int) and not isinstance(value, bool) and name in SIZE_FIELDS:
        return format_size(value)
    if isinstance(value, str):
        return redact_url(value)
    return value


def format_duration(seconds: float) -> str:
    """As the example file writes durations: `100ms` below a second, else `10s`."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """As the example file writes sizes: `1MiB`, `32KiB`, else plain bytes."""
    for unit, factor in SIZE_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def redact_url(text: str) -> str:
    """`text` with a URL's user and password replaced; anything else unchanged."""
    if "://" not in text or "@" not in text:
        return text
    try:
        url = URL(text)
    except ValueError:
        return text
    if url.user is None and url.password is None:
        return text
    return str(url.with_user(REDACTED).with_password(None if url.password is None else REDACTED))
