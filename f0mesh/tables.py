"""Terminal tables of the CLI and the demo, sized for an 80-column terminal.

Every PeerId starts ``12D3KooW``, so its head tells peers apart no better than nothing: a short id
is the tail, as the dashboard shows it (``…Xy3kP9ab``), and ``--wide`` gives the full id. Cells never
wrap: a long one (a URL, a payload) is cut with an ellipsis, so one row is one line to grep.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

SHORT_ID_CHARS = 8  # the dashboard's shortId()
HEALTH_COLOURS = {"good": "green", "degraded": "yellow", "bad": "red"}
NUMERIC = frozenset(
    {"rtt ms", "jitter ms", "loss %", "kbps", "trust", "score", "edge", "hops", "entries", "bytes"}
)


def short_id(peer_id: str | None, wide: bool = False) -> str:
    if not peer_id:
        return "-"
    if wide or len(peer_id) <= SHORT_ID_CHARS + 4:
        return peer_id
    return "…" + peer_id[-SHORT_ID_CHARS:]


def show(console: Console, table: Table, wide: bool = False) -> None:
    """Print a table; a wide one at its natural width (the terminal may wrap it, nothing is cut)."""
    if wide:
        width = Measurement.get(console, console.options.update(width=10_000), table).maximum
        console = Console(width=width, file=console.file, force_terminal=console.is_terminal)
    console.print(table)


def _table(
    *columns: str, wide: bool, max_widths: dict[str, int] | None = None, flexible: str | None = None
) -> Table:
    """No vertical rules and no outer padding: eight narrow columns fit in 80 characters. The
    ``flexible`` column takes what the others leave and is cut to it (a payload, say)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=bool(flexible) and not wide)
    for name in columns:
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name in NUMERIC else "left",
            max_width=None if wide else (max_widths or {}).get(name),
            ratio=1 if name == flexible and not wide else None,
        )
    return table


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ago(ts: float | None, now: float | None = None) -> str:
    """A compact age: ``12 s``, ``5 min``, ``3 h``, ``2 d``."""
    if not ts:
        return "-"
    seconds = max(0.0, (now or time.time()) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def health(value: str | None) -> str:
    value = value or "unknown"
    return f"[{HEALTH_COLOURS.get(value, 'dim')}]{value}[/]"


def links_table(rows: list[dict[str, Any]], wide: bool = False) -> Table:
    columns = ["peer", "state", "health", "rtt ms", "jitter ms", "loss %", "kbps", "age"]
    table = _table(*(["link", *columns] if wide else columns), wide=wide)
    for r in rows:
        cells = [
            short_id(r["peer_id"], wide),
            r["state"],
            health(r.get("health")),
            _num(r.get("rtt_ms")),
            _num(r.get("jitter_ms")),
            _num(r.get("loss_pct")),
            _num(r.get("bitrate_kbps"), 0),
            ago(r.get("updated_at")),
        ]
        table.add_row(*([r["link_id"], *cells] if wide else cells))
    return table


def peers_table(rows: list[dict[str, Any]], wide: bool = False) -> Table:
    table = _table(
        "peer", "url", "trust", "seen", "status", "tags", wide=wide, max_widths={"url": 36}, flexible="tags"
    )
    for p in rows:
        status = "blocked" if p.get("blocked") else "linked" if p.get("linked") else ""
        table.add_row(
            short_id(p["peer_id"], wide),
            p.get("url") or "-",
            _num(p.get("trust"), 3),
            ago(p.get("last_seen")),
            status,
            " ".join(f"{k}={v}" for k, v in sorted((p.get("tags") or {}).items())) or "-",
        )
    return table


def messages_table(rows: list[dict[str, Any]], wide: bool = False) -> Table:
    table = _table(
        "id",
        "origin",
        "topic",
        "hops",
        "age",
        "payload",
        wide=wide,
        max_widths={"topic": 14},
        flexible="payload",
    )
    for m in rows:
        payload = json.dumps(m.get("payload"), ensure_ascii=False, separators=(",", ":"))
        table.add_row(
            m["id"] if wide else m["id"][:10],
            short_id(m.get("origin"), wide),
            m.get("topic") or "-",
            str(m.get("hops", "-")),
            ago(m.get("received_at")),
            payload,
        )
    return table


def documents_table(docs: list[dict[str, Any]]) -> Table:
    table = _table("document", "kind", "entries", "bytes", wide=False, max_widths={"document": 48})
    for d in docs:
        table.add_row(d["name"], d["kind"], str(d.get("size", "-")), str(d.get("bytes", "-")))
    return table


def trust_table(scores: dict[str, float], own_edges: dict[str, float], wide: bool = False) -> Table:
    """Every scored peer, highest first, with this node's own edge to it (if it has one)."""
    table = _table("peer", "score", "edge", wide=wide)
    for peer_id in sorted(scores.keys() | own_edges.keys(), key=lambda p: -scores.get(p, 0.0)):
        table.add_row(
            short_id(peer_id, wide), f"{scores.get(peer_id, 0.0):.4f}", _num(own_edges.get(peer_id), 2)
        )
    return table
