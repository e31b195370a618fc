"""The web console (/ui) in a real browser: Playwright driving Debian's chromium against `promptrec serve`.

The demo's planted effects must show on the page: at a morning hour more News/Fitness items are in the top
list than late in the evening (and the reverse for Music/Thriller); on a TV at noon more evening content and
less Tech than on a desktop. Set PROMPTREC_UI_SCREENSHOTS=docs/assets to refresh the docs' screenshots of the
user, other-times and live views.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
try:
    from playwright import sync_api
    from playwright.sync_api import expect
except ImportError:
    sync_api = None

try:
    from promptrec.testing.process import ServerProcess
except ImportError:
    from promptrec.testing.process import ServerProcess

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
USER, DAY = "u0001", "2024-04-30"  # a Tuesday after the demo log's end
MORNING, EVENING = {"News", "Fitness"}, {"Music", "Thriller"}
SHOTS = os.environ.get("PROMPTREC_UI_SCREENSHOTS")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a0f30000000049454e44ae426082")


@pytest.fixture(scope="module")
def server(served_demo, tmp_path_factory):
    from promptrec.serve.auth import add_key

    path, _, _ = served_demo
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "results" / "demo").mkdir(parents=True)
    (tmp / "results" / "demo" / "results.md").write_text("# Demo results\n\n| model | ndcg@10 |\n|---|---|\n| retriever | 0.31 |\n")
    (tmp / "results" / "demo" / "curve.png").write_bytes(PNG)
    (tmp / "secret.md").write_text("not for the console")
    token = add_key(tmp / "keys.json", "console")
    with ServerProcess("--retriever", str(path), "--llm", "none", "--keys", str(tmp / "keys.json"),
                       "--db", str(tmp / "events.sqlite"), "--results", str(tmp / "results"),
                       log=tmp / "server.log") as proc:
        proc.token = token
        yield proc


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (scripts/install-chromium.sh installs Debian's chromium)")
    if sync_api is None:
        pytest.skip("playwright not installed (pip install 'promptrec[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(server, browser):
    """The console with the key typed in and the demo user selected."""
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(15_000)
    pg.goto(server.url + "/ui")
    pg.fill("#key", server.token)
    pg.click("#key-form button[type=submit]")
    pg.fill("#user-q", USER)
    pg.click(f"#user-results button[data-user='{USER}']")
    pg.wait_for_selector(f"#recs[data-query^='{USER}|'] li")
    yield pg
    pg.close()


def shot(pg, name: str, selector: str | None = None) -> None:
    if SHOTS:
        target = Path(SHOTS) / f"console-{name}.png"
        (pg.locator(selector).screenshot(path=str(target)) if selector else pg.screenshot(path=str(target)))


def categories(pg, when: str, device: str = "") -> list[str]:
    pg.wait_for_selector(f"#recs[data-query^='{USER}|{when}|{device}|'] li")
    return pg.locator("#recs li").evaluate_all("els => els.map(e => e.dataset.category)")


def test_data_endpoints_need_a_key(server):
    assert httpx.get(server.url + "/ui").status_code == 200  # the shell: no data in it
    for path in ("meta", "users", "timeline", "recommend", "times", "prompt", "results", "results/file"):
        params = {"user": USER, "path": "demo/results.md"}
        assert httpx.get(f"{server.url}/ui/api/{path}", params=params).status_code == 401, path
    for path in ("meta", "recommend"):  # few: failed authentication is rate-limited per address (burst 20)
        bad = httpx.get(f"{server.url}/ui/api/{path}", params={"user": USER}, headers={"Authorization": "Bearer prk_x"})
        assert bad.status_code == 401, path
    r = httpx.get(server.url + "/ui/api/recommend", params={"user": USER, "now": f"{DAY}T07:00"},
                  headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 200 and len(r.json()["items"]) == 20


def test_results_files_are_read_only_and_confined(server):
    auth = {"Authorization": f"Bearer {server.token}"}
    listed = httpx.get(server.url + "/ui/api/results", headers=auth).json()
    assert {f["path"] for f in listed["files"]} == {"demo/results.md", "demo/curve.png"}
    ok = httpx.get(server.url + "/ui/api/results/file", params={"path": "demo/curve.png"}, headers=auth)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png" and ok.content == PNG
    for bad in ("../secret.md", "demo/../../secret.md", str(Path(server.log).parent / "secret.md"), "/etc/passwd",
                "demo/", "..", "keys.json", "../keys.json", "demo/./results.md", "demo\\results.md"):
        assert httpx.get(server.url + "/ui/api/results/file", params={"path": bad}, headers=auth).status_code == 404
    for method in (httpx.post, httpx.put, httpx.delete):
        assert method(server.url + "/ui/api/results/file", params={"path": "demo/results.md"},
                      headers=auth).status_code == 405


def test_without_a_key_no_data_is_shown(server, browser):
    pg = browser.new_page()
    pg.goto(server.url + "/ui")
    assert "Type an API key" in pg.text_content("#status")
    pg.fill("#key", "prk_wrong")
    pg.click("#key-form button[type=submit]")
    expect(pg.locator("#status")).to_contain_text("refused")
    assert pg.locator("#recs li").count() == 0 and pg.locator("#timeline tbody tr").count() == 0
    assert pg.locator("#user-results button").count() == 0
    assert server.token not in pg.url
    pg.close()


def test_time_slider_moves_the_planted_hour_effect(page):
    page.fill("#now", f"{DAY}T12:00")
    page.dispatch_event("#now", "change")
    categories(page, f"{DAY}T12:00")
    page.focus("#hour")
    page.keyboard.press("Home")  # 0 h, then up to 7 h with the arrow keys, as a keyboard user would
    for _ in range(7):
        page.keyboard.press("ArrowRight")
    morning = categories(page, f"{DAY}T07:00")
    assert page.input_value("#weekday") == "1"  # Tuesday
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    evening = categories(page, f"{DAY}T22:00")
    assert len(morning) == len(evening) == 20
    assert sum(c in MORNING for c in morning) > sum(c in MORNING for c in evening)
    assert sum(c in EVENING for c in evening) > sum(c in EVENING for c in morning)
    assert page.locator("#recs li .bars span.bar").count() > 0  # per-signal contributions drawn
    assert page.locator("#timeline tbody tr").count() > 0
    shot(page, "user", "#user")


def test_device_switch_shows_the_device_effect(page):
    page.focus("#hour")
    page.keyboard.press("Home")
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    categories(page, f"{DAY}T12:00")
    page.select_option("#device", "tv")
    tv = categories(page, f"{DAY}T12:00", "tv")
    page.select_option("#device", "desktop")
    desktop = categories(page, f"{DAY}T12:00", "desktop")
    evening = EVENING | {"Cooking"}
    assert sum(c in evening for c in tv) > sum(c in evening for c in desktop)
    assert desktop.count("Tech") > tv.count("Tech")


def test_other_times_and_prompt(page):
    expect(page.locator("#times-table tbody tr")).to_have_count(4)
    heads = page.locator("#times-table thead th").all_text_contents()
    assert heads[1].startswith("Tuesday") and heads[2].startswith("Sunday")
    assert page.locator("#times-table tbody ol").count() == 8
    assert page.locator("#times-table tbody li").count() == 40
    shot(page, "times", "#times")
    page.click("#prompt-btn")
    expect(page.locator("#prompt-info")).to_contain_text("No LLM is configured")


def test_posted_event_appears_live(page, server):
    page.check("#live-on")
    now = page.input_value("#now")
    top = page.locator("#recs li").first.get_attribute("data-item")
    at = pd.Timestamp(now).tz_localize("America/New_York") - pd.Timedelta(minutes=30)
    r = httpx.post(server.url + "/events", headers={"Authorization": f"Bearer {server.token}"},
                   json={"user_id": USER, "item_id": top, "timestamp": at.isoformat(), "event_id": "ui-test-1",
                         "context": {"device": "tv"}})
    assert r.status_code == 200, r.text
    # the page polls: the event shows in the timeline, and the watched item leaves the recommendations
    page.wait_for_selector(f"#timeline tbody tr.posted[data-item='{top}']", timeout=10_000)
    expect(page.locator(f"#recs li[data-item='{top}']")).to_have_count(0, timeout=10_000)
    shot(page, "live", "#user .cols > div:nth-child(2)")  # the timeline, the posted event on top
    page.uncheck("#live-on")


def test_results_are_browsable(page):
    page.click("#results-list button[data-path='demo/results.md']")
    page.wait_for_selector("#results-view table")
    assert page.text_content("#results-view h3") == "demo/results.md"
    assert "retriever" in page.text_content("#results-view table")
    page.click("#results-list button[data-path='demo/curve.png']")
    page.wait_for_selector("#results-view img")
    assert page.locator("#results-view img").get_attribute("src").startswith("blob:")  # fetched with the key
