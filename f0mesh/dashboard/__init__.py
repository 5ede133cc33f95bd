"""The node's live dashboard: static files only (ES modules, CSS, inline SVG), no build step.

``STATIC_DIR`` holds every file the page loads; ``ASSETS`` maps the names the page may request
to their media types, so nothing else in the package can be fetched through the dashboard routes.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def assets() -> dict[str, str]:
    """File name -> media type for every servable file in STATIC_DIR (flat: no sub-folders)."""
    return {
        p.name: _TYPES[p.suffix]
        for p in sorted(STATIC_DIR.iterdir())
        if p.is_file() and p.suffix in _TYPES and not p.name.startswith(".")
    }
