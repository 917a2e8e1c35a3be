"""`msc4191-shim doctor --homeserver`: which portal this is, and whether it needs the shim.

Pure. MAS tells its version only to an administrator (`GET /api/admin/v1/version` with an admin
token), so the era is read from what the issuer's document advertises: MAS 0.7-0.8 lists the
`org.matrix.session_*` names, 0.9-1.9 adds `org.matrix.cross_signing_reset`, 1.10 and later list
the stable names next to the three `org.matrix.session_*` ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from shim.core.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACTIONS_SUPPORTED,
)
from shim.doctor.chain import Metadata, advertised
from shim.doctor.clients import stable_name
from shim.doctor.links import Landing
from shim.doctor.values import Finding
from shim.vocabulary import CROSS_SIGNING_RESET, DEVICE_DELETE, STABLE_ACTIONS

UPGRADE: Final = (
    "or upgrade the portal: MAS >= 1.10 (ess-helm >= 26.1.3, a current "
    "matrix-docker-ansible-deploy) speaks the stable names itself"
)
MAS_VERSION: Final = (
    "MAS tells its version only to an admin: GET /api/admin/v1/version with an admin token"
)
#: a key only matrix-authentication-service publishes (0.9-1.9 at least)
MAS_KEY: Final = "org.matrix.matrix-authentication-service.graphql_endpoint"


def portal_era(doc: Mapping[str, Any] | None) -> str | None:
    """What the document's metadata says about the portal; None when there is no document."""
    if doc is None:
        return None
    names = advertised(doc, ACTIONS_SUPPORTED)
    if names is None:
        if advertised(doc, UNSTABLE_ACTIONS_SUPPORTED) is not None:
            return "a prototype portal (only the unstable org.matrix.msc4191.* keys)"
        if isinstance(doc.get(ACCOUNT_MANAGEMENT_URI), str):
            return "a portal that lists no actions"
        return "a portal without account-management metadata (MSC3824 era)"
    mas = "MAS" if MAS_KEY in doc else "MAS-like"
    if DEVICE_DELETE in names:
        if "org.matrix.session_end" in names:
            return f"{mas} 1.10 or later (stable names next to org.matrix.session_*)"
        return "a portal that speaks the stable names"
    if "org.matrix.session_end" in names:
        if CROSS_SIGNING_RESET in names:
            return f"{mas} 0.9-1.9 (legacy names, with cross-signing reset)"
        return f"{mas} 0.7-0.8 (legacy names, no cross-signing reset)"
    if "session_end" in names:
        return "an MSC3824-era portal (unprefixed legacy names)"
    return None


def check_era(issuer_doc: Mapping[str, Any] | None, *, translated: bool) -> list[Finding]:
    """What the issuer's document says about the portal, unless a translator rewrote it."""
    if translated:
        what = "the issuer's document is rewritten in front of the portal: its era is hidden"
        todo = "msc4191-shim doctor --config on the shim's host reads the portal's own document"
        return [Finding("INFO", what, todo)]
    era = portal_era(issuer_doc)
    if era is None:
        return []
    return [Finding("INFO", f"the issuer's document looks like {era}", MAS_VERSION)]


def shim_reasons(
    metadata: Metadata | None,
    auth_metadata_refused: bool,
    landings: Iterable[Landing],
) -> tuple[list[str], list[str]]:
    """(why clients need a shim that is missing, why a shim in front is still needed)."""
    missing: list[str] = []
    if auth_metadata_refused:
        missing.append("Synapse refuses the issuer's document (auth_metadata answers 500)")
    if metadata is None:
        pass  # nothing was read: `verdict` says it cannot tell, unless Synapse refused
    elif metadata.account_uri is None:
        missing.append(f"clients find no {ACCOUNT_MANAGEMENT_URI}")
    elif metadata.names is not None:
        only_legacy = _only_legacy(metadata.names)
        if only_legacy:
            missing.append(f"the portal advertises only legacy names for {', '.join(only_legacy)}")
    renamed = sorted(
        {f"{x.sent} -> {x.reached}" for x in landings if x.sent in STABLE_ACTIONS and x.renamed}
    )
    in_front = []
    if renamed:
        pairs = ", ".join(renamed)
        in_front.append(f"a redirect in front of the portal renames stable names ({pairs})")
    return missing, in_front


def _only_legacy(names: Sequence[str]) -> list[str]:
    stables = {stable_name(n) for n in names}
    return [s for s in STABLE_ACTIONS if s in stables and s not in names]


def verdict(
    missing: Sequence[str], in_front: Sequence[str], era: str | None, *, read: bool = True
) -> Finding:
    """Does this deployment need the shim? The last line of the report.

    `read` False: no discovery document could be read, so nothing can be said without `missing`.
    """
    if not read and not missing:
        what = "cannot tell whether this deployment needs the shim: no document could be read"
        return Finding("INFO", what, "fix what cannot be reached above, then run doctor again")
    if missing:
        what = "this deployment needs the shim (or it is not on every route), because:"
        return Finding("INFO", what, f"see README 'Deployment'; {UPGRADE}", tuple(missing))
    if in_front:
        what = "the shim (or another translator) is in front and still needed, because:"
        return Finding("INFO", what, UPGRADE, tuple(in_front))
    what = "this deployment does not need the shim"
    if era is not None:
        what += f": the portal looks like {era}"
    return Finding("INFO", what, "if a shim is in front, see docs/retirement.md")
