"""The web console (/ui) in a real browser: Playwright driving Debian's chromium against `promptrec serve`.

The demo's planted effects must show on the page: at a morning hour more News/Fitness items are in the top
list than late in the evening (and the reverse for Music/Thriller); on a TV at noon more evening content and
less Tech than on a desktop. The demo's items have no coordinates, so the map is tested on synthetic check-ins
(tests/checkin_data.py: places scattered around Midtown): a click on the map sets the place, the list is asked
again with that latitude and longitude, and places near the click come up. No request leaves the server. Set
PROMPTREC_UI_SCREENSHOTS=docs/assets to refresh the docs' screenshots of the user, other-times and live views.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

from promptrec.testing.process import ServerProcess
from tests.browser import browser, open_console  # noqa: F401  (browser: a fixture)

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
def requested():
    """Every URL the module's pages asked for (the page must ask nothing of any other host)."""
    return []



@pytest.fixture(scope="module")
def page(server, browser, requested):
    """The console with the key typed in and the demo user selected."""
    pg = open_console(browser, server, USER, requested)
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


def test_without_a_key_no_data_is_shown(server, browser, requested):
    pg = browser.new_page()
    pg.on("request", lambda r: requested.append(r.url))
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
    assert page.input_value("#weekday") == "1" and page.text_content("#weekday-out") == "Tuesday"
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


def test_week_slider_moves_the_day(page):
    page.select_option("#device", "")
    page.fill("#now", f"{DAY}T10:00")
    page.dispatch_event("#now", "change")
    categories(page, f"{DAY}T10:00")
    page.focus("#weekday")
    page.keyboard.press("End")  # Sunday of the same week, same hour
    categories(page, "2024-05-05T10:00")
    assert page.text_content("#weekday-out") == "Sunday"
    assert page.text_content("#recs-when").startswith("at Sunday 2024-05-05 10:00")


def test_demo_items_have_no_coordinates_so_no_map(page):
    assert page.locator("#map").is_hidden() and page.locator("#map-zoom").is_hidden()
    assert "no item coordinates" in page.text_content("#map-note")


# -- the map, on synthetic check-ins (the demo has no places) ------------------------------------------------

@pytest.fixture(scope="module")
def checkin_server(tmp_path_factory):
    """`promptrec serve` on a retriever fitted (untuned, no item index: a few seconds) on synthetic check-ins."""
    import promptrec
    from promptrec.serve.auth import add_key

    from checkin_data import make_checkins

    tmp = tmp_path_factory.mktemp("ui-map")
    (tmp / "checkins").mkdir()
    make_checkins(n_users=30, days=35, seed=3).to_csv(tmp / "checkins" / "checkins.csv", index=False)
    ds = promptrec.load_dataset(tmp / "checkins" / "checkins.csv")
    retriever = promptrec.fit_retriever(ds, index=None, tune=False)
    assert "place" in retriever.signals
    retriever.save(tmp / "retriever")
    token = add_key(tmp / "keys.json", "console")
    with ServerProcess("--retriever", str(tmp / "retriever"), "--llm", "none", "--keys", str(tmp / "keys.json"),
                       "--db", str(tmp / "events.sqlite"), log=tmp / "server.log") as proc:
        proc.token, proc.dataset = token, ds
        yield proc


def km(a, b) -> float:
    import numpy as np

    from promptrec.retriever.signals.place import haversine_km

    return float(np.asarray(haversine_km(a[0], a[1], b[0], b[1])))


def shown_places(pg) -> list[tuple[str, tuple[float, float]]]:
    """The recommended items' ids and coordinates, as the page got them."""
    got = pg.evaluate("() => state.recs.items.map(i => [i.item_id, i.coords])")
    return [(i, tuple(c)) for i, c in got]


def canvas_pixel(pg, x: float, y: float) -> list[int]:
    return pg.evaluate("([x, y]) => Array.from(document.getElementById('map').getContext('2d')"
                       ".getImageData(Math.round(x), Math.round(y), 1, 1).data)", [x, y])


def click_map_near(pg, target: tuple[float, float], requested: list[str]) -> tuple[float, float]:
    """Click the map where ``target`` (lat, lon) is drawn, as a user would (mouse, at the page's pixels). Returns
    the (lat, lon) of the recommendation request the click caused."""
    x, y = pg.evaluate("([lat, lon]) => { const p = projection(); return [p.x(lon), p.y(lat)]; }", list(target))
    box = pg.locator("#map").bounding_box()
    width = pg.evaluate("() => document.getElementById('map').width")
    css = box["width"] / width  # canvas pixels to CSS pixels
    before = len(requested)
    with pg.expect_response(lambda r: "/ui/api/recommend?" in r.url and "lat=" in r.url) as resp:
        pg.mouse.click(box["x"] + x * css, box["y"] + y * css)
    assert resp.value.ok
    query = parse_qs(urlsplit(resp.value.url).query)
    assert any("/ui/api/recommend?" in u for u in requested[before:])
    return float(query["lat"][0]), float(query["lon"][0])


def test_map_click_sets_the_place_and_near_places_come_up(checkin_server, browser, requested):
    pg = open_console(browser, checkin_server, "0", requested)
    try:
        expect(pg.locator("#map")).to_be_visible()
        places = len(checkin_server.dataset.catalog)  # the places visited at least once (about 150)
        # the map is drawn again as the places, the timeline and the recommendations arrive, in any order
        pg.wait_for_function(f"() => {{ const d = document.getElementById('map').dataset; return d.places === "
                             f"'{places}' && +d.userPlaces >= 5 && +d.recPlaces > 0; }}")  # the user's own places too
        assert f"Grey: {places} places;" in pg.text_content("#map-note")
        before = shown_places(pg)
        last = pg.evaluate("() => origin().at")  # the user's last place: where distances are measured from now
        # the user's own place farthest from there (the synthetic users keep going back to their own places)
        theirs = dict(pg.evaluate("() => state.timeline.map(e => [e.item_id, e.place])"))
        target_id = max(theirs, key=lambda i: km(theirs[i], last))
        target = tuple(theirs[target_id])
        assert km(target, last) > 3 and before[0][0] != target_id
        x, y = pg.evaluate("([lat, lon]) => { const p = projection(); return [p.x(lon), p.y(lat)]; }", list(target))
        assert canvas_pixel(pg, x, y)[:3] != [0xF4, 0xF7, 0xFB]  # the place is drawn where we click
        lat, lon = click_map_near(pg, target, requested)
        assert km((lat, lon), target) < 0.5  # the click's latitude and longitude were sent ...
        assert abs(float(pg.input_value("#lat")) - lat) < 1e-4 and abs(float(pg.input_value("#lon")) - lon) < 1e-4
        pg.wait_for_selector(f"#recs[data-query$='|{pg.input_value('#lat')}|{pg.input_value('#lon')}'] li")
        after = shown_places(pg)
        # ... and the place signal answered: the user's own place there comes first, more places nearby come up
        assert after[0][0] == target_id
        near = lambda items: sum(km(c, (lat, lon)) < 5 for _, c in items)  # noqa: E731
        mean = lambda items: sum(km(c, (lat, lon)) for _, c in items) / len(items)  # noqa: E731
        assert near(after) >= near(before) + 3 and mean(after) < mean(before), (near(before), near(after))
        assert "km from the place set" in pg.text_content("#recs li:first-child")
        x, y = pg.evaluate("([lat, lon]) => { const p = projection(); return [p.x(lon), p.y(lat)]; }", [lat, lon])
        r, g, b = canvas_pixel(pg, x + 6, y)[:3]
        assert r > 150 and g < 110 and b < 110, (r, g, b)  # the red cross marks the place set
        pg.click("#clear-place")
        pg.wait_for_selector("#recs[data-query$='||'] li")
        assert [i for i, _ in shown_places(pg)] == [i for i, _ in before]
    finally:
        pg.close()


def test_no_request_leaves_the_server(requested, server, browser):  # browser: skips without chromium
    assert len(requested) > 20
    hosts = {urlsplit(u).netloc for u in requested if not u.startswith(("data:", "blob:"))}
    assert hosts and all(h.startswith("127.0.0.1:") for h in hosts), hosts
