"""`msc4191-shim healthcheck`: is this host's shim alive? The image's HEALTHCHECK runs it.

It reads the configuration `run` reads (the file, the MSC4191_SHIM_* variables) and asks
`/healthz` on the admin listener it names, so an admin listener moved by the operator's file is
still the one asked (a fixed URL in the Dockerfile would report a healthy shim as dead). Plain
urllib: it runs every few seconds, and aiohttp's import alone would cost more than the check.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from shim.config.values import ListenAddress
from shim.doctor.diagnose import admin_base_url

#: the HEALTHCHECK's own --timeout is 3 s: answer (or give up) before Docker does
TIMEOUT_SECONDS = 2.0


def check_health(listen: ListenAddress, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, what was found): GET <admin>/healthz must answer 2xx within `timeout`."""
    url = admin_base_url(listen) + "/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}; the shim's log says why"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} did not answer ({reason}); is the shim running, listening there?"
    if not 200 <= status < 300:
        return False, f"{url} answered {status}"
    return True, f"{url} answered {status}"
