"""The status page's HTML: escaped, self-contained, bars per name, the verdict; no server."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.obs.status import NameCount, StatusSnapshot
from shim.obs.status_html import format_uptime, render_status

SNAPSHOT = StatusSnapshot(
    version="1.2.3",
    started_at=0.0,
    uptime_seconds=3725.0,
    all_workers=True,
    fronts=(("portal", "https://portal.internal/"), ("dialect", "mas-0.9")),
    choices=(("discovery.advertise", "stable"),),
    deeplinks=(
        NameCount(
            "session_end",
            "legacy",
            4,
            (("org.matrix.session_end", "redirect", 4),),
            (("element-x", 3), ("other", 1)),
        ),
        NameCount(
            "org.matrix.device_delete", "stable", 2, (("org.matrix.session_end", "redirect", 2),)
        ),
        NameCount("unknown", "unknown", 1, (("none", "passthrough", 1),)),
    ),
    discovery={"rewritten": 5, "cached": 7},
    upstream_errors={"refused": 1},
    portal_detail="the portal's own document was read",
    reasons=("dialect mas-0.9 is not stable", "it changed 6 client deep links"),
    notes=("clients still sent 4 legacy-named deep links (element-x: 3, other: 1)",),
)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, to check the page's structure."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


def test_a_bar_per_name_as_wide_as_its_share_of_the_largest() -> None:
    tags = parse(render_status(SNAPSHOT)).tags
    rows = [a for t, a in tags if t == "tr" and "data-incoming" in a]
    assert [(r["data-incoming"], r["data-kind"]) for r in rows] == [
        ("session_end", "legacy"),
        ("org.matrix.device_delete", "stable"),
        ("unknown", "unknown"),
    ]
    bars = [a for t, a in tags if t == "div" and "bar" in (a.get("class") or "").split()]
    assert [(b["class"], b["style"]) for b in bars] == [
        ("bar legacy", "width:100.0%"),
        ("bar stable", "width:50.0%"),
        ("bar unknown", "width:25.0%"),
    ]


def test_counts_verdict_and_header_are_in_the_text() -> None:
    text = " ".join(parse(render_status(SNAPSHOT)).text)
    assert "org.matrix.session_end (redirect): 4" in text
    assert "from element-x: 3, other: 1" in text
    assert "clients still sent 4 legacy-named deep links (element-x: 3, other: 1)" in text
    assert "Still needed" in text
    assert "dialect mas-0.9 is not stable" in text
    assert "1 h 2 min" in text
    assert "all workers" in text
    assert "1.2.3" in text
    for label in ("rewritten", "cached", "refused"):
        assert label in text


def test_ready_to_retire_when_there_is_no_reason() -> None:
    page = render_status(replace(SNAPSHOT, reasons=()))
    assert "data-verdict=retire" in page
    assert "Ready to retire" in page
    assert "No deep link" not in page
    empty = render_status(replace(SNAPSHOT, reasons=(), deeplinks=(), discovery={}))
    assert "No deep link has been seen yet" in empty
    assert "No deep link since the shim started." in empty


def test_self_contained_no_script_no_external_asset() -> None:
    page = render_status(SNAPSHOT)
    assert "<script" not in page.lower()
    for tag, attrs in parse(page).tags:
        assert not {"src", "href", "action"} & attrs.keys(), tag
    assert "url(" not in page
    assert "@import" not in page


hostile = st.text(alphabet=st.sampled_from("<>&\"'`=/ ax;"), min_size=1, max_size=12)


@given(hostile)
def test_every_value_is_escaped(value: str) -> None:
    snapshot = replace(
        SNAPSHOT,
        version=value,
        fronts=((value, value),),
        choices=((value, value),),
        deeplinks=(NameCount(value, value, 1, ((value, value, 1),)),),
        discovery={value: 1},
        upstream_errors={value: 1},
        portal_detail=value,
        reasons=(value,),
    )
    parsed = parse(render_status(snapshot))
    # the value never opens a tag nor adds an attribute: the structure is the fixed one
    assert {t for t, _ in parsed.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "div", "ul",
        "li", "table", "tr", "th", "td", "code", "strong",
    }  # fmt: skip
    for _tag, attrs in parsed.tags:
        assert set(attrs) <= {"lang", "charset", "http-equiv", "content", "id", "class", "style",
                              "data-verdict", "data-incoming", "data-kind", "data-key"}  # fmt: skip
    assert value in "".join(parsed.text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59.9, "59 s"), (61, "1 min 1 s"), (7200, "2 h 0 min"), (90000, "1 d 1 h")],
)
def test_uptime(seconds: float, shown: str) -> None:
    assert format_uptime(seconds) == shown


def test_no_line_of_the_page_is_a_query() -> None:
    assert not re.search(r"https?://[^\s<'\"]*\?", render_status(SNAPSHOT))
