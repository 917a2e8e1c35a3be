"""The admin status page as HTML: one self-contained document, inline CSS, no script.

Pure: `render_status(snapshot) -> str`. Every value is escaped where it is written; the page
loads nothing (the container's root filesystem is read-only and the admin port may have no
route out), and reloads itself every `REFRESH_SECONDS` with a meta refresh, not JavaScript.
Elements carry `data-*` attributes and ids so a test (or a scraper) can read the counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from html import escape
from typing import Final

from shim.obs.status import RETIRE_SECTION, NameCount, StatusSnapshot

REFRESH_SECONDS: Final = 30

STYLE: Final = """
body{font:14px/1.35 system-ui,sans-serif;margin:1.2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.1em;margin:1.1em 0 .4em}
.meta{color:#666}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.2em .5em;border-bottom:1px solid #eee;vertical-align:top}
th{font-weight:600;width:16em}td.count{text-align:right;width:4em;font-variant-numeric:tabular-nums}
code{font-size:.92em}.track{background:#f1f1f1;width:100%;height:1.1em;border-radius:3px}
.bar{height:100%;border-radius:3px}.stable{background:#2e8b57}.legacy{background:#e08a00}
.none,.unknown{background:#8a8a8a}.became{color:#555;font-size:.85em;font-weight:400}
.key span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
.verdict{padding:.5em 1em;border-radius:4px}.verdict ul{margin:.3em 0}
.needed{background:#fff4e0;border:1px solid #e08a00}
.retire{background:#e8f5ee;border:1px solid #2e8b57}.empty{color:#666}
table.counts{width:auto;min-width:28em}
"""


def render_status(snapshot: StatusSnapshot) -> str:
    """The whole page."""
    return "".join(
        (
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>",
            f'<meta http-equiv=refresh content="{REFRESH_SECONDS}">',
            "<title>msc4191-shim status</title>",
            f"<style>{STYLE}</style></head><body>",
            _header(snapshot),
            _verdict(snapshot),
            _section("Clients' deep links since start", _deeplinks(snapshot.deeplinks)),
            _section(
                "Clients' discovery documents since start", _counts(snapshot.discovery, "discovery")
            ),
            _section("Upstream errors since start", _counts(snapshot.upstream_errors, "errors")),
            _section("What it fronts", _pairs(snapshot.fronts, "fronts")),
            _section("Configuration", _pairs(snapshot.choices, "choices")),
            "</body></html>\n",
        )
    )


def _header(snapshot: StatusSnapshot) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot.started_at))
    scope = "all workers" if snapshot.all_workers else "this process"
    return (
        "<h1>msc4191-shim</h1><p class=meta>"
        f"version <span id=version>{escape(snapshot.version)}</span> · "
        f"up <span id=uptime>{escape(format_uptime(snapshot.uptime_seconds))}</span> "
        f"(since {escape(started)}) · counts from {escape(scope)}</p>"
    )


def _verdict(snapshot: StatusSnapshot) -> str:
    portal = f"<p class=meta>{escape(snapshot.portal_detail)}</p>"
    if snapshot.notes:
        items = "".join(f"<li>{escape(note)}</li>" for note in snapshot.notes)
        portal = f"<ul id=notes>{items}</ul>{portal}"
    if snapshot.reasons:
        items = "".join(f"<li>{escape(reason)}</li>" for reason in snapshot.reasons)
        return (
            "<div id=verdict class='verdict needed' data-verdict=needed>"
            "<strong>Still needed</strong>: the shim is still needed because:"
            f"<ul>{items}</ul>See {escape(RETIRE_SECTION)}.{portal}</div>"
        )
    caveat = (
        "" if snapshot.deeplinks else " No deep link has been seen yet: watch a client release."
    )
    return (
        "<div id=verdict class='verdict retire' data-verdict=retire>"
        "<strong>Ready to retire</strong>: nothing here needs the shim any more."
        f"{escape(caveat)} See {escape(RETIRE_SECTION)} before removing it.{portal}</div>"
    )


def _section(title: str, body: str) -> str:
    return f"<h2>{escape(title)}</h2>{body}"


def _pairs(pairs: Iterable[tuple[str, str]], table_id: str) -> str:
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td><code>{escape(value)}</code></td></tr>"
        for key, value in pairs
    )
    return f"<table id={table_id}>{rows}</table>"


def _deeplinks(names: tuple[NameCount, ...]) -> str:
    if not names:
        return "<p class=empty id=deeplinks>No deep link since the shim started.</p>"
    widest = max(name.count for name in names)
    rows = "".join(_deeplink_row(name, widest) for name in names)
    key = "".join(f"<span class={kind}></span>{kind}" for kind in ("stable", "legacy", "unknown"))
    return f"<p class=key>{key}</p><table id=deeplinks>{rows}</table>"


def _deeplink_row(name: NameCount, widest: int) -> str:
    width = f"{100 * name.count / widest:.1f}%"
    became = ", ".join(
        f"{escape(sent)} ({escape(outcome)}): {n}" for sent, outcome, n in name.became
    )
    clients = ", ".join(f"{escape(client)}: {n}" for client, n in name.clients)
    sent_by = f"<div class=became>from {clients}</div>" if clients else ""
    return (
        f"<tr data-incoming='{escape(name.incoming)}' data-kind='{escape(name.kind)}'>"
        f"<th><code>{escape(name.incoming)}</code><div class=became>→ {became}</div>{sent_by}</th>"
        f"<td class=count>{name.count}</td><td><div class=track>"
        f"<div class='bar {escape(name.kind)}' style='width:{width}'></div></div></td></tr>"
    )


def _counts(counts: Mapping[str, int], table_id: str) -> str:
    if not counts:
        return f"<p class=empty id={table_id}>None.</p>"
    rows = "".join(
        f"<tr data-key='{escape(key)}'><th>{escape(key)}</th><td class=count>{n}</td></tr>"
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f"<table id={table_id} class=counts>{rows}</table>"


def format_uptime(seconds: float) -> str:
    """`3 d 4 h`, `2 h 5 min`, `7 min 3 s`, `12 s`."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
