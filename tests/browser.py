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
