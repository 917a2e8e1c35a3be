"""The metrics' label vocabularies: every value a label may take, and how a value becomes one.

One home for the names that the counts (`obs/tally.py`), their exposition (`obs/metrics.py`)
and the code that reports an outcome (`proxy/`, `doctor`, the retirement verdict) share. Light
on purpose (no prometheus-client), so the compiled request path and the `--workers` supervisor's
side can import it. What a deep link did (`DeeplinkOutcome`) is the core's vocabulary
(`core/deeplink.py`, where `translate` reads it too); its label set is made here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Final, Literal, NoReturn, get_args

from shim.core.deeplink import DeeplinkOutcome

if TYPE_CHECKING:
    from shim.vocabulary import ActionTable

RequestKind = Literal["passthrough", "deeplink", "discovery", "websocket"]
DiscoveryOutcome = Literal[
    "rewritten",
    "unchanged",
    "cached",
    "stale",
    "passthrough_status",
    "passthrough_not_json",
    "passthrough_not_object",
    "passthrough_encoding",
    "passthrough_too_large",
    "not_modified",
]
UpstreamErrorReason = Literal[
    "refused", "dns", "tls", "connect_timeout", "read_timeout", "reset", "other"
]
#: the `limits.*` key that stopped a client (`upstream_max_connections`: a request had to wait
#: for a free upstream connection)
LimitName = Literal[
    "head_timeout",
    "keepalive_timeout",
    "body_idle_timeout",
    "max_head_bytes",
    "max_connections",
    "send_timeout",
    "upstream_max_connections",
]
#: who sent a request, from its User-Agent (`obs/clients.py` tells which)
ClientFamily = Literal["element-web", "element-x", "doctor", "other"]
#: `incoming_kind`: what the name a client sent is (`name_kind`)
NameKind = Literal["stable", "legacy", "unknown", "none"]
ReloadResult = Literal["ok", "error"]

REQUEST_KINDS: Final[frozenset[str]] = frozenset(get_args(RequestKind))
DEEPLINK_OUTCOMES: Final[frozenset[str]] = frozenset(get_args(DeeplinkOutcome))
DISCOVERY_OUTCOMES: Final[frozenset[str]] = frozenset(get_args(DiscoveryOutcome))
UPSTREAM_ERROR_REASONS: Final[frozenset[str]] = frozenset(get_args(UpstreamErrorReason))
LIMIT_NAMES: Final[frozenset[str]] = frozenset(get_args(LimitName))
CLIENT_FAMILIES: Final[frozenset[str]] = frozenset(get_args(ClientFamily))
RELOAD_RESULTS: Final[tuple[str, ...]] = get_args(ReloadResult)
#: in the order the exposition lists them
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "aborted", "other")

#: the label of a name the action table does not know: it is not an MSC4191 name to migrate
#: (another action the portal serves, such as MAS's `org.matrix.plan_management`, or a typo)
UNKNOWN_NAME: Final = "unknown"

#: a deep link's labels: incoming, incoming_kind, sent, outcome, client
DeeplinkLabels = tuple[str, str, str, str, str]


def status_class(status: int | None) -> str:
    """`2xx` for 204; `aborted` when no status was sent; `other` outside 100..599."""
    if status is None:
        return "aborted"
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def action_label(name: str | None, table: ActionTable) -> str:
    """The name itself when the table knows it; `none` when absent; `unknown` for anything else."""
    if name is None:
        return "none"
    return name if table.to_stable(name) is not None else UNKNOWN_NAME


def name_kind(name: str | None, table: ActionTable) -> NameKind:
    """`stable`, `legacy` (an alias or a dialect's name the table knows), `unknown`, `none`."""
    if name is None:
        return "none"
    if table.to_stable(name) is None:
        return "unknown"
    return "legacy" if table.is_legacy(name) else "stable"


def deeplink_labels(
    incoming: str | None, sent: str | None, outcome: str, client: str, table: ActionTable
) -> DeeplinkLabels:
    """A deep link's label values: names the table does not know are counted as `unknown`.

    Raises ValueError for an outcome or a client family outside the vocabularies.
    """
    check(outcome, DEEPLINK_OUTCOMES, "deep-link outcome")
    check(client, CLIENT_FAMILIES, "client family")
    kind = name_kind(incoming, table)
    return (action_label(incoming, table), kind, action_label(sent, table), outcome, client)


def check(value: str, allowed: Collection[str], what: str) -> None:
    """mypy checks the Literal types; this catches a caller that passes a plain `str`."""
    if value not in allowed:
        refuse(value, allowed, what)


def refuse(value: str, allowed: Collection[str], what: str) -> NoReturn:
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(allowed)}")
