"""The four views of "can the shim go?" on one running shim, read as an operator reads them.

- the queries of docs/retirement.md, on a real Prometheus (`retirement_queries`; `since_start`
  turns one into the count since the shim started, which the status page and doctor show);
- the Grafana dashboard's panels (`tests/deploy/test_grafana.py` reads them);
- the admin status page's verdict (`status_view`);
- `msc4191-shim doctor --config` (`doctor_view`).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import aiohttp

from shim.config.model import Config
from shim.doctor.probe import run_doctor
from tests.support.paths import REPO

RETIREMENT = REPO / "docs" / "retirement.md"
#: the names the queries go by in the tests, in the order docs/retirement.md gives them
QUERY_NAMES = ("changed links", "written documents", "whom to chase", "documents by outcome")
_INCREASE = re.compile(r"increase\((\w+\{[^}]*\})\[7d\]\)")


def retirement_queries() -> dict[str, str]:
    """The PromQL blocks of docs/retirement.md by `QUERY_NAMES`."""
    blocks = re.findall(r"```promql\n(.*?)\n```", RETIREMENT.read_text("utf-8"), flags=re.S)
    assert len(blocks) == len(QUERY_NAMES), blocks
    return dict(zip(QUERY_NAMES, blocks, strict=True))


def since_start(expr: str) -> str:
    """`expr` over every count since the shim started: `increase(X[7d])` becomes `X`.

    Prometheus extrapolates `increase` to the window's edges, so over a few seconds of samples it
    is close to the count, not equal; the counters themselves are exact.
    """
    replaced, found = _INCREASE.subn(r"\1", expr)
    assert found, expr
    return replaced


@dataclass(frozen=True, slots=True)
class Verdict:
    needed: bool
    reasons: tuple[str, ...]
    #: what is said beside the reasons: whom to chase, the shim's own traffic, ...
    notes: tuple[str, ...]


class _VerdictParser(HTMLParser):
    """The `<div id=verdict>`: its `data-verdict`, its reasons and its notes (`ul#notes`)."""

    def __init__(self) -> None:
        super().__init__()
        self.verdict = ""
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self._depth = 0  # inside div#verdict: how many divs deep
        self._into: list[str] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "div" and (self._depth or found.get("id") == "verdict"):
            self._depth += 1
            self.verdict = self.verdict or found.get("data-verdict") or ""
        elif self._depth and tag == "ul":
            self._into = self.notes if found.get("id") == "notes" else self.reasons
        elif self._depth and tag == "li":
            self._text = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1
        elif tag == "li" and self._into is not None:
            self._into.append(self._text)
        elif tag == "ul":
            self._into = None

    def handle_data(self, data: str) -> None:
        self._text += data


async def status_view(admin_url: str) -> Verdict:
    """The status page's verdict, as a browser gets it."""
    async with aiohttp.ClientSession() as session, session.get(admin_url + "/") as response:
        assert response.status == 200
        page = await response.text()
    parser = _VerdictParser()
    parser.feed(page)
    parser.close()
    assert parser.verdict in ("needed", "retire"), page[:2000]
    return Verdict(parser.verdict == "needed", tuple(parser.reasons), tuple(parser.notes))


async def doctor_view(config: Config, admin_url: str) -> tuple[Verdict, str]:
    """`doctor --config`'s verdict (its notes: every INFO finding) and its whole report."""
    out = io.StringIO()
    await asyncio.to_thread(run_doctor, config, shim_admin_url=admin_url, out=out, as_json=True)
    (section,) = json.loads(out.getvalue())["sections"]
    *findings, verdict = section["findings"]
    needed = verdict["what"] == "the shim is still needed because:"
    assert needed or verdict["what"] == "nothing here needs the shim any more", verdict
    notes = tuple(f["what"] for f in findings if f["level"] == "INFO")
    text = io.StringIO()
    await asyncio.to_thread(run_doctor, config, shim_admin_url=admin_url, out=text)
    return Verdict(needed, tuple(verdict["details"]), notes), text.getvalue()
