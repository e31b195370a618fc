"""The web console (/ui) on real data: Foursquare check-ins in New York (../shared/data/foursquare-nyc).

A retriever is fitted on the last WINDOW_DAYS days of the check-ins (untuned, without the item index: seconds),
served by `promptrec serve`, and the console is driven in Debian's chromium on the user with the most check-ins
in that window: the timeline shows their check-ins at the file's own local times, the map draws the city's
places with theirs and the recommended ones, the list has 20 places; a click on the map far from the user sets
the place, the list is asked again with that latitude and longitude and moves towards it.

PROMPTREC_NYC names another folder holding checkins.csv. PROMPTREC_UI_RETRIEVER=DIR serves a retriever already
fitted on the whole file (`promptrec retriever fit ../shared/data/foursquare-nyc/checkins.csv --out DIR`)
instead; with PROMPTREC_UI_SCREENSHOTS=docs/assets the docs' console-nyc-*.png screenshots are written.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest

from promptrec.retriever.signals.place import haversine_km
from promptrec.testing.process import ServerProcess
from tests.browser import browser, open_console  # noqa: F401  (browser: a fixture)

NYC = Path(os.environ.get("PROMPTREC_NYC", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" /
                          "foursquare-nyc"))
RETRIEVER = os.environ.get("PROMPTREC_UI_RETRIEVER")
SHOTS = os.environ.get("PROMPTREC_UI_SCREENSHOTS")
WINDOW_DAYS = 14
BACKGROUND = [0xF4, 0xF7, 0xFB]

pytestmark = pytest.mark.skipif(not (NYC / "checkins.csv").exists(),
                                reason=f"Foursquare NYC check-ins not found at {NYC / 'checkins.csv'} "
                                       "(set PROMPTREC_NYC to the folder holding checkins.csv)")

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None


def km(a, b) -> float:
    return float(np.asarray(haversine_km(a[0], a[1], b[0], b[1])))


@pytest.fixture(scope="module")
def checkins() -> pd.DataFrame:
    """The file as it is (read-only): the truth the page is checked against."""
    frame = pd.read_csv(NYC / "checkins.csv", dtype={"user_id": str, "POI_id": str})
    frame["utc"] = pd.to_datetime(frame["UTC_time"], utc=True)
    return frame


@pytest.fixture(scope="module")
def served(checkins, tmp_path_factory):
    """(server, the check-ins the served retriever holds)."""
    import promptrec
    from promptrec.serve.auth import add_key

    tmp = tmp_path_factory.mktemp("ui-nyc")
    if RETRIEVER:
        folder, held = Path(RETRIEVER), checkins
    else:
        since = checkins["utc"].max().normalize() - pd.Timedelta(days=WINDOW_DAYS)
        ds = promptrec.load_dataset(NYC / "checkins.csv", since=since)
        retriever = promptrec.fit_retriever(ds, index=None, tune=False)
        assert "place" in retriever.signals
        folder, held = retriever.save(tmp / "retriever"), checkins[checkins["utc"] >= since]
    token = add_key(tmp / "keys.json", "console")
    with ServerProcess("--retriever", str(folder), "--llm", "none", "--keys", str(tmp / "keys.json"),
                       "--db", str(tmp / "events.sqlite"), log=tmp / "server.log") as proc:
        proc.token = token
        yield proc, held


@pytest.fixture(scope="module")
def user(served) -> str:
    """The user with the most check-ins the retriever holds: a long history."""
    _, held = served
    return str(held["user_id"].value_counts().index[0])


@pytest.fixture(scope="module")
def page(served, browser, user):
    server, _ = served
    requested: list[str] = []
    pg = open_console(browser, server, user, requested, height=1100, timeout_ms=20_000)
    pg.requested = requested
    pg.wait_for_selector(f"#timeline[data-user='{user}'] tbody tr")
    pg.wait_for_selector(f"#times-table[data-user='{user}'] tbody li")
    yield pg
    pg.close()


def shown_places(pg) -> list[tuple[str, tuple[float, float] | None]]:
    return [(i, tuple(c) if c else None) for i, c in pg.evaluate("() => state.recs.items.map(i => [i.item_id, i.coords])")]


def pixel_xy(pg, at: tuple[float, float]) -> tuple[float, float]:
    return tuple(pg.evaluate("([lat, lon]) => { const p = projection(); return [p.x(lon), p.y(lat)]; }", list(at)))


def count_pixels(pg, rgb: tuple[int, int, int], within: int = 30) -> int:
    """Pixels of the map of about this colour (edges are blended with what lies under them)."""
    return pg.evaluate("""([rgb, within]) => { const c = document.getElementById('map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4)
          if (Math.abs(d[i] - rgb[0]) <= within && Math.abs(d[i + 1] - rgb[1]) <= within && Math.abs(d[i + 2] - rgb[2]) <= within) n++;
        return n; }""", [list(rgb), within])


def test_user_view_shows_the_timeline_map_and_recommendations(page, served, user, checkins):
    server, held = served
    mine = held[held["user_id"] == user].sort_values("utc")
    assert len(mine) >= 30  # a long history
    assert "UTC-05:00" in page.text_content("#status")  # New York winter time, whatever the zone is named
    # the timeline: the latest events, newest first, at the local time the file gives for each check-in
    rows = page.locator("#timeline tbody tr")
    expect(rows).to_have_count(min(200, len(mine)))
    last = mine.iloc[-1]
    local = pd.Timestamp(last["local_time"])
    first = rows.first.locator("td").all_text_contents()
    assert first[0] == local.strftime("%a %Y-%m-%d %H:%M"), (first, last["local_time"])
    assert first[1] == last["POI_catname"]  # the place's text (its category names it)
    assert first[3] == f"{last['latitude']:.3f}, {last['longitude']:.3f}"
    oldest_shown = mine.iloc[-min(200, len(mine))]
    assert rows.last.locator("td").first.text_content() == pd.Timestamp(oldest_shown["local_time"]).strftime(
        "%a %Y-%m-%d %H:%M")
    # the map: the city's places (every place of the file has coordinates), the user's, the recommended
    places = checkins["POI_id"].nunique()
    expect(page.locator("#map")).to_be_visible()
    # the map is drawn again as the places, the timeline and the recommendations arrive, in any order
    page.wait_for_function(f"() => {{ const d = document.getElementById('map').dataset; return d.places === "
                           f"'{places}' && +d.userPlaces >= 3 && +d.recPlaces >= 10; }}")
    assert f"{places:,} places" in page.text_content("#map-note")
    assert count_pixels(page, (0x0B, 0x57, 0xD0)) > 50  # blue rings: the user's places, drawn
    assert count_pixels(page, (0xE3, 0x74, 0x00)) > 50  # orange dots: the recommended ones
    # the recommendations: 20 places with retriever scores, signal bars and their distance from the last place
    recs = page.locator("#recs li")
    expect(recs).to_have_count(20)
    assert page.locator("#recs li").first.locator(".bars span.bar").count() >= 3
    assert "retriever" in recs.first.text_content()
    assert "km from the last place" in recs.first.text_content()
    response = httpx.get(server.url + "/ui/api/meta", headers={"Authorization": f"Bearer {server.token}"}).json()
    assert response["utc_offset"] == "UTC-05:00" and response["map"]["places"] == places


def test_map_click_sets_the_place_and_the_list_moves(page, served, user):
    server, held = served
    before = shown_places(page)
    last = tuple(page.evaluate("() => origin().at"))  # the user's last place: where distances are measured from now
    # one of the user's own places (a blue dot), the one farthest from where they are now, inside the map
    mine = held[held["user_id"] == user].groupby("POI_id")[["latitude", "longitude"]].first()
    width, height = page.evaluate("() => [document.getElementById('map').width, document.getElementById('map').height]")

    def inside(at) -> bool:
        x, y = pixel_xy(page, at)
        return 10 < x < width - 10 and 10 < y < height - 10

    far = sorted(((km((r.latitude, r.longitude), last), r.Index, (r.latitude, r.longitude))
                  for r in mine.itertuples() if inside((r.latitude, r.longitude))), reverse=True)
    distance, target_id, target = far[0]
    assert distance > 3, far[:3]
    x, y = pixel_xy(page, target)
    assert page.evaluate("([x, y]) => Array.from(document.getElementById('map').getContext('2d')"
                         ".getImageData(Math.round(x), Math.round(y), 1, 1).data)", [x, y])[:3] != BACKGROUND
    box = page.locator("#map").bounding_box()
    css = box["width"] / width
    with page.expect_response(lambda r: "/ui/api/recommend?" in r.url and "lat=" in r.url) as resp:
        page.mouse.click(box["x"] + x * css, box["y"] + y * css)
    assert resp.value.ok
    query = parse_qs(urlsplit(resp.value.url).query)
    sent = float(query["lat"][0]), float(query["lon"][0])
    assert km(sent, target) < 0.3  # the place under the mouse, to a pixel (about 0.1 km)
    assert page.input_value("#lat") == query["lat"][0] and page.input_value("#lon") == query["lon"][0]
    page.wait_for_selector(f"#recs[data-query$='|{query['lat'][0]}|{query['lon'][0]}'] li")
    after = shown_places(page)
    ids_before, ids_after = [i for i, _ in before], [i for i, _ in after]
    assert ids_after != ids_before

    def mean_km(items) -> float:
        located = [c for _, c in items if c]
        return sum(km(c, sent) for c in located) / len(located)

    # the place signal now measures from the click: the user's place there moves up, the list comes closer
    rank_before = ids_before.index(target_id) if target_id in ids_before else len(ids_before)
    assert target_id in ids_after and ids_after.index(target_id) < rank_before, (rank_before, ids_after)
    assert mean_km(after) < mean_km(before), (mean_km(before), mean_km(after))
    assert "km from the place set" in page.locator("#recs li").first.text_content()
    if SHOTS:
        page.locator("#user").screenshot(path=str(Path(SHOTS) / "console-nyc-user.png"))
    page.click("#clear-place")
    page.wait_for_selector("#recs[data-query$='||'] li")
    assert [i for i, _ in shown_places(page)] == ids_before


def test_other_times_on_nyc(page):
    expect(page.locator("#times-table tbody li")).to_have_count(40)
    heads = page.locator("#times-table thead th").all_text_contents()
    assert heads[1].split()[0] in {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}
    assert heads[2].startswith("Sunday")
    columns = [page.locator(f"#times-table tbody td:nth-child({n}) li").all_text_contents() for n in (2, 3)]
    assert columns[0] != columns[1]  # the weekday's places are not the Sunday's
    if SHOTS:
        page.locator("#times").screenshot(path=str(Path(SHOTS) / "console-nyc-times.png"))


def test_no_request_leaves_the_server(page, served):
    server, _ = served
    hosts = {urlsplit(u).netloc for u in page.requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(server.url).netloc}, hosts
