"""Debian's chromium driven by Playwright, for the console's browser tests (Playwright's own download is not
reachable here: scripts/install-chromium.sh installs the browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
try:
    from playwright import sync_api
except ImportError:
    sync_api = None


def open_console(browser, server, user: str, requested: list[str], *, height: int = 1000, timeout_ms: int = 15_000):
    """A page with the console, ``server.token`` typed in and ``user`` selected (their recommendations shown);
    every URL the page requests is appended to ``requested``."""
    pg = browser.new_page(viewport={"width": 1400, "height": height})
    pg.set_default_timeout(timeout_ms)
    pg.on("request", lambda r: requested.append(r.url))
    pg.goto(server.url + "/ui")
    pg.fill("#key", server.token)
    pg.click("#key-form button[type=submit]")
    pg.fill("#user-q", user)
    pg.click(f"#user-results button[data-user='{user}']")
    pg.wait_for_selector(f"#recs[data-query^='{user}|'] li")
    return pg


@pytest.fixture(scope="module")
def browser():
    """A headless chromium for the module; skips with the reason where it cannot start."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (scripts/install-chromium.sh installs Debian's chromium)")
    if sync_api is None:
        pytest.skip("playwright not installed (pip install 'promptrec[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()
