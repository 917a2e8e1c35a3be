"""The environment the shim reads, and a warning for `MSC4191_SHIM_*` names it does not read.

Pure. A misspelt override (`MSC4191_SHIM_UPSTREAM_ULR`) is otherwise silently ignored and the
file's value wins; the warning names the nearest variable the shim does read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from shim.config.errors import nearest
from shim.config.parse import ENV_OVERRIDES
from shim.config.source import CONFIG_ENV

PREFIX: Final = "MSC4191_SHIM_"
#: read by deploy/ess-helm/post-renderer.sh, not by the shim: not a mistake when set
DEPLOY_VARIABLES: Final = frozenset({"MSC4191_SHIM_OVERLAY"})


def known_variables() -> tuple[str, ...]:
    """Every `MSC4191_SHIM_*` variable the shim reads, the config file's first."""
    return (CONFIG_ENV, *ENV_OVERRIDES)


def unknown_variable_warnings(env: Mapping[str, str]) -> list[str]:
    """One warning per `MSC4191_SHIM_*` variable that nothing reads, with the nearest name."""
    known = known_variables()
    return [_warning(name, known) for name in sorted(_unknown(env, known))]


def _unknown(env: Mapping[str, str], known: Iterable[str]) -> set[str]:
    names = {name for name in env if name.startswith(PREFIX)}
    return names - set(known) - DEPLOY_VARIABLES


def _warning(name: str, known: tuple[str, ...]) -> str:
    # compared without the common prefix, which would make every name look alike
    match = nearest(name.removeprefix(PREFIX), [k.removeprefix(PREFIX) for k in known])
    suggestion = None if match is None else PREFIX + match
    hint = f"did you mean {suggestion}?" if suggestion else f"the shim reads {', '.join(known)}"
    return f"warning: environment variable {name} is not one msc4191-shim reads; {hint}"
