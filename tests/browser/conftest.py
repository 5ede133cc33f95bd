"""Browser fixtures: Debian's Chromium driven by Playwright, and a page that records console errors.

A missing Playwright or Chromium fails these tests with a message that says how to install it:
the dashboard is part of the product, so its tests never skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(
            f"the browser tests need Playwright for Python ({exc}); install the test tools with `make .venv`",
            pytrace=False,
        )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests drive Debian's Chromium at {CHROMIUM}, which is missing: run `make deps`",
            pytrace=False,
        )
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        except Exception as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}", pytrace=False)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Console:
    """Every console message and uncaught page error of one page; errors fail the test."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """An error the test provokes on purpose (e.g. the 401 of a wrong token)."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, msg: Any) -> None:
        text = f"{msg.type}: {msg.text} ({msg.location.get('url', '')}:{msg.location.get('lineNumber', '')})"
        self.messages.append(text)
        if msg.type in ("error", "assert") and not any(p.search(text) for p in self.allowed):
            self.errors.append(text)

    def on_page_error(self, exc: Any) -> None:
        self.errors.append(f"uncaught: {exc}")


@dataclass
class Dashboard:
    page: Any
    console: Console


@pytest.fixture
def dashboard(browser: Any) -> Iterator[Callable[..., Dashboard]]:
    """``dashboard(url, width=1440, height=900)`` opens the page in a fresh browser context."""
    opened: list[tuple[Any, Console]] = []

    def open_page(url: str, *, width: int = 1440, height: int = 900) -> Dashboard:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        opened.append((context, console))
        page.goto(url, wait_until="domcontentloaded")
        return Dashboard(page, console)

    yield open_page
    errors = [e for _, console in opened for e in console.errors]
    for context, _ in opened:
        context.close()
    assert not errors, "console errors on the dashboard:\n" + "\n".join(errors)
