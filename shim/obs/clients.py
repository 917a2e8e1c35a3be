"""Which family of client a request came from, read from its User-Agent: a bounded metric label.

Pure (its memo holds a pure function's answers). A deep link is opened by a browser, not by the
Matrix client that wrote it, so the User-Agent says where the link was opened rather than which
client built it; the families are what it can tell:

- `doctor`: `msc4191-shim doctor` (`DOCTOR_USER_AGENT`), whose probes are not client traffic;
- `element-x`: Element X's own requests (its User-Agent names it, or matrix-rust-sdk), and a
  phone's browser, where Element X opens deep links (Element Web does not run on phones);
- `element-web`: Element Desktop (its Electron User-Agent carries `Element/`) and any other
  desktop browser, where Element Web's and Element Desktop's deep links open;
- `other`: everything else (no User-Agent, Synapse, curl, bots).

Anyone can send any User-Agent; a client that claims another family mislabels only its own
requests. The raw User-Agent is on each deep link's access line for a closer look.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from shim import __version__
from shim.memo import Memo
from shim.obs.labels import ClientFamily

#: the product token `msc4191-shim doctor` sends, and its whole User-Agent
DOCTOR_PRODUCT: Final = "msc4191-shim-doctor"
DOCTOR_USER_AGENT: Final = f"{DOCTOR_PRODUCT}/{__version__}"
#: the fields doctor sends on every request (its client sessions' defaults)
DOCTOR_HEADERS: Final = MappingProxyType({"User-Agent": DOCTOR_USER_AGENT})

#: lower-cased markers, checked in this order
_ELEMENT_X: Final = ("element x/", "elementx/", "element-x/", "matrix-rust-sdk")
_ELEMENT_DESKTOP: Final = " element/"  # a product token of its own, not `MyElement/`
_PHONE: Final = ("android", "iphone", "ipod", "mobile")
_BROWSER: Final = "mozilla/"

#: the family of the User-Agents seen lately (clients repeat theirs); bounded, emptied when full
_MEMO_MAX_BYTES: Final = 512
_families: Final[Memo[bytes | None, ClientFamily]] = Memo(256)


def client_family(user_agent: bytes | None) -> ClientFamily:
    """`family_of` a User-Agent field value as received (None: the request had none)."""
    family = _families.get(user_agent)
    if family is None:
        family = family_of(None if user_agent is None else user_agent.decode("latin-1"))
        if user_agent is None or len(user_agent) <= _MEMO_MAX_BYTES:
            _families.put(user_agent, family)
    return family


def family_of(user_agent: str | None) -> ClientFamily:
    """The family of a User-Agent (see the module's docstring); `other` when it tells none."""
    if not user_agent:
        return "other"
    if user_agent.startswith(DOCTOR_PRODUCT + "/"):
        return "doctor"
    text = user_agent.lower()
    if any(marker in text for marker in _ELEMENT_X):
        return "element-x"
    if _ELEMENT_DESKTOP in " " + text:
        return "element-web"
    if text.startswith(_BROWSER):
        return "element-x" if any(marker in text for marker in _PHONE) else "element-web"
    return "other"
