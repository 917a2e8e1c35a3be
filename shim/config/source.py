"""Where the configuration file is: `--config`, else `$MSC4191_SHIM_CONFIG`, else the default.

Kept apart from the parser so the CLI can name the file without importing YAML and the model.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_CONFIG_PATH = "/etc/msc4191-shim/config.yaml"
CONFIG_ENV = "MSC4191_SHIM_CONFIG"


def resolve_config_path(given: str | None, env: Mapping[str, str]) -> str:
    return given or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
