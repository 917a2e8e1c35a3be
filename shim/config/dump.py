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
from shim.config.schema import yaml_value

REDACTED: Final = "REDACTED"


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


def _readable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    if isinstance(value, float):
        return f"{value:g}s"  # every float in the model is a duration in seconds
    if isinstance(value, str):
        return redact_url(value)
    return value


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
