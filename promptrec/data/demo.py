"""A seeded, realistic small dataset with planted time effects: the default for demo and tests.

A streaming service with 8 content categories. What is planted (and returned in
:class:`DemoTruth`, so tests can check that models recover it):

* **hour of day / day of week** - each category has a local-time profile (news and
  fitness in the morning, tech in weekday working hours, cooking in the late afternoon,
  music in the evening, thrillers at night, kids' shows after school and on weekend
  mornings, travel on weekends). The category of a session is drawn in proportion to the
  user's taste times the category's affinity for that hour and day.
* **trending bursts** - a few items get 20x the usual weight for 3-8 days.
* **freshness** - items are released across the window and are most watched in their
  first weeks; nothing is watched before its release.
* **sequences** - items come in series (part 1, part 2, ...); after a part, the next
  part is often watched next.
* **no re-watching** - a user watches an item at most once, so every held-out event is an
  item the user has not seen (the protocol ranks unseen items).
* **interest drift** - a third of the users move their taste to a new category halfway
  through their activity.
* **device context** - mobile in the morning and at night, desktop in working hours,
  TV in the evening.
* **weather** (a ``weather`` column: sun, cloudy, rain) - rain is much more likely at events of indoor
  categories (cooking, thrillers, music), sun at travel and fitness, so which items people pick
  differs by weather. The weather is drawn after the events, from its own random stream, given each
  event's category: no other column and no event changes with it. It is not declared as context by
  default; ``load_dataset(context=["weather"])`` declares it (promptrec.data.context_columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.interactions import Interactions
from promptrec.data.problems import LoadReport

TIMEZONE = "America/New_York"
START = pd.Timestamp("2024-01-01", tz=TIMEZONE)
DAYS = 120

# name -> (hour peaks, weekday factor, weekend factor, title heads, title tails, description phrases)
CATEGORIES: dict[str, dict] = {
    "News": dict(peaks=[7, 8], weekday=1.3, weekend=0.7,
                 heads=["Morning Brief", "World Report", "Market Open", "Daily Digest", "Headline Hour"],
                 tails=["Elections", "Climate Talks", "Interest Rates", "Trade Deals", "Energy Crisis", "City Hall"],
                 about="a concise news round-up on {t}, with analysis from correspondents"),
    "Fitness": dict(peaks=[6, 7], weekday=1.0, weekend=1.0,
                    heads=["20-Minute", "Sunrise", "Power", "Low-Impact", "Core Blast"],
                    tails=["HIIT Workout", "Yoga Flow", "Stretch Routine", "Pilates Class", "Kettlebell Circuit", "Running Drills"],
                    about="a guided {t} session to build strength and stamina"),
    "Tech": dict(peaks=[11, 14], weekday=1.5, weekend=0.4,
                 heads=["Hands-On", "Deep Dive", "Explained", "Teardown", "Build Log"],
                 tails=["Laptop Review", "Rust Programming", "Home Server", "Smartphone Camera", "AI Chips", "Mechanical Keyboards"],
                 about="a technology show reviewing {t} for developers and gadget fans"),
    "Cooking": dict(peaks=[17, 18], weekday=1.0, weekend=1.2,
                    heads=["Weeknight", "Rustic", "Quick", "Grandma's", "Street Food"],
                    tails=["Lemon Pasta", "Ramen", "Tacos", "Curry", "Sourdough Bread", "Paella"],
                    about="a cooking show: step-by-step recipes for {t} in a home kitchen"),
    "Kids": dict(peaks=[8, 16], weekday=0.8, weekend=1.6,
                 heads=["Dino Friends", "Space Pups", "Little Builders", "Ocean Explorers", "Robot Pals"],
                 tails=["Big Adventure", "Sing-Along", "Lost Treasure", "Birthday Party", "Rainy Day", "Science Fair"],
                 about="an animated children's cartoon about {t}, for ages 3 to 8"),
    "Music": dict(peaks=[20, 21], weekday=1.0, weekend=1.1,
                  heads=["Late Night", "Live at", "Smooth", "Unplugged", "Blue Note"],
                  tails=["Jazz Session", "Piano Trio", "Soul Classics", "Acoustic Set", "Big Band", "Vinyl Hour"],
                  about="a relaxing music programme: {t} recorded live"),
    "Thriller": dict(peaks=[23, 0], weekday=1.0, weekend=1.1,
                     heads=["Midnight", "The Silent", "Cold Case", "Shadow", "Dark Harbor"],
                     tails=["Conspiracy", "Witness", "Heist", "Disappearance", "Code", "Informant"],
                     about="a tense crime thriller episode: a detective uncovers a {t}"),
    "Travel": dict(peaks=[11, 15], weekday=0.6, weekend=1.9,
                   heads=["Backroads", "Hidden", "Slow Travel", "Island Hopping", "Weekend in"],
                   tails=["Lisbon", "Kyoto", "Patagonia", "Iceland", "Morocco", "Tuscany"],
                   about="a travel documentary exploring {t}, its food, people and landscapes"),
}
DEVICES = ["mobile", "desktop", "tv"]
WEATHERS = ["sun", "cloudy", "rain"]
WEATHER_STREAM = 0x57EA  # the weather's own random stream: np.random.default_rng([seed, WEATHER_STREAM])
_INDOOR, _OUTDOOR, _NEUTRAL = [0.05, 0.15, 0.80], [0.80, 0.15, 0.05], [0.34, 0.33, 0.33]
WEATHER_BY_CATEGORY = {"News": _NEUTRAL, "Fitness": _OUTDOOR, "Tech": _NEUTRAL, "Cooking": _INDOOR, "Kids": _NEUTRAL,
                       "Music": _INDOOR, "Thriller": _INDOOR, "Travel": _OUTDOOR}  # P(sun, cloudy, rain | category)


@dataclass
class DemoTruth:
    """The effects planted in the demo data."""

    categories: list[str]
    hour_affinity: np.ndarray  # (categories, 24) multiplier by local hour
    weekday_factor: dict[str, float]
    weekend_factor: dict[str, float]
    bursts: list[tuple[str, pd.Timestamp, pd.Timestamp]]  # item, start, end
    series_next: dict[str, str]  # item -> next part
    drift: dict[str, tuple[str, str]] = field(default_factory=dict)  # user -> (old favourite, new favourite)
    # category -> {weather: probability} of an event of that category (the weather column)
    weather: dict[str, dict[str, float]] = field(default_factory=dict)
    timezone: str = TIMEZONE


@dataclass
class Demo:
    dataset: Dataset
    truth: DemoTruth


def _hour_profile(peaks: list[int]) -> np.ndarray:
    hours = np.arange(24)
    prof = np.full(24, 0.15)
    for p in peaks:
        d = np.minimum(np.abs(hours - p), 24 - np.abs(hours - p))
        prof += np.exp(-0.5 * (d / 1.2) ** 2)
    return prof / prof.mean()


def _activity_curve() -> np.ndarray:
    """When people watch at all, by local hour (low at night, peaks morning and evening)."""
    base = np.array([3, 2, 1, 1, 1, 2, 5, 8, 7, 5, 5, 6, 6, 5, 5, 6, 7, 8, 9, 10, 11, 10, 8, 5], float)
    return base / base.sum()


def _devices(hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Device by local hour: desktop in working hours, TV in the evening, mobile otherwise."""
    probs = np.where(((hours >= 9) & (hours < 17))[:, None], [0.25, 0.65, 0.10],
                     np.where(((hours >= 18) & (hours < 23))[:, None], [0.25, 0.10, 0.65], [0.75, 0.10, 0.15]))
    pick = (rng.random(len(hours))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return np.asarray(DEVICES)[np.minimum(pick, 2)]


def _weather(categories: np.ndarray, seed: int) -> np.ndarray:
    """Weather of each event given its category's name, from the weather's own random stream."""
    rng = np.random.default_rng([seed, WEATHER_STREAM])
    probs = np.array([WEATHER_BY_CATEGORY[c] for c in categories]).reshape(-1, len(WEATHERS))
    pick = (rng.random(len(categories))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return np.asarray(WEATHERS)[np.minimum(pick, len(WEATHERS) - 1)]


def _catalog(rng: np.random.Generator, items_per_category: int) -> tuple[pd.DataFrame, dict[str, str]]:
    rows, series_next = [], {}
    end = START + pd.Timedelta(days=DAYS)
    for c, (name, spec) in enumerate(CATEGORIES.items()):
        pairs = [(h, t) for h in spec["heads"] for t in spec["tails"]]
        chosen = rng.choice(len(pairs), size=min(items_per_category, len(pairs)), replace=False)
        for k, idx in enumerate(chosen):
            head, tail = pairs[idx]
            parts = 1 + int(rng.random() < 0.3) * int(rng.integers(1, 3))
            # a third of the catalogue is back catalogue, the rest is released during the window
            release = (START - pd.Timedelta(days=int(rng.integers(30, 900)))) if rng.random() < 0.35 else \
                START + pd.Timedelta(hours=int(rng.integers(0, (DAYS - 10) * 24)))
            prev = None
            for part in range(1, parts + 1):
                item_id = f"{name[:3].upper()}{c}{k:02d}{part}"
                title = f"{head} {tail}" if head != "Weekend in" else f"Weekend in {tail}"
                if head == "Live at":
                    title = f"Live at the {tail.split()[0]} Club"
                if parts > 1:
                    title += f", Part {part}"
                rows.append({
                    "item_id": item_id, "title": title,
                    "description": spec["about"].format(t=tail.lower()).capitalize() + ".",
                    "categories": (name,), "release_time": release.tz_convert("UTC").floor("s"),
                    "duration_min": int(rng.choice([10, 20, 30, 45, 60, 90])),
                    "popularity": float(rng.lognormal(0, 0.8)),
                })
                if prev:
                    series_next[prev] = item_id
                prev = item_id
                release = min(release + pd.Timedelta(days=7), end - pd.Timedelta(days=1))
    return pd.DataFrame(rows), series_next


def generate_demo(n_users: int = 400, items_per_category: int = 30, mean_events: int = 60, seed: int = 7) -> Demo:
    """Generate the demo dataset (about 400 users, 300+ items and 25k events by default, in about a second)."""
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    items, series_next = _catalog(rng, items_per_category)
    item_cat = items["categories"].map(lambda c: names.index(c[0])).to_numpy()
    release_ns = items["release_time"].to_numpy(dtype="datetime64[ns]").view("int64")
    base_pop = items["popularity"].to_numpy()
    by_cat = [np.flatnonzero(item_cat == c) for c in range(len(names))]
    item_ids = items["item_id"].tolist()
    id_pos = {iid: i for i, iid in enumerate(item_ids)}
    hour_aff = np.stack([_hour_profile(CATEGORIES[n]["peaks"]) for n in names])
    wk = np.array([CATEGORIES[n]["weekday"] for n in names])
    we = np.array([CATEGORIES[n]["weekend"] for n in names])
    start_ns = START.value
    window_ns = pd.Timedelta(days=DAYS).value
    bursts = []
    for i in rng.choice(len(items), size=10, replace=False):
        b0 = max(release_ns[i], start_ns) + int(rng.uniform(0, 0.5) * window_ns)
        bursts.append((i, b0, b0 + pd.Timedelta(days=float(rng.uniform(3, 8))).value))
    activity = _activity_curve()
    rows, drift = [], {}
    for u in range(n_users):
        user_id = f"u{u:04d}"
        taste_a = rng.dirichlet(np.full(len(names), 0.3))
        taste_b = taste_a
        if rng.random() < 1 / 3:
            new = rng.choice([c for c in range(len(names)) if c != taste_a.argmax()])
            taste_b = 0.3 * taste_a + 0.7 * np.eye(len(names))[new]
            drift[user_id] = (names[int(taste_a.argmax())], names[int(new)])
        n = max(8, int(rng.lognormal(np.log(mean_events), 0.6)))
        first = rng.uniform(0, 0.6)
        span = rng.uniform(0.3, 1.0 - first)
        n_sessions = max(3, n // 3)
        days = np.sort(rng.uniform(first, first + span, n_sessions) * DAYS).astype(int)
        hours = rng.choice(24, size=n_sessions, p=activity)
        count = 0
        watched = np.zeros(len(items), dtype=bool)  # nobody re-watches: held-out items are always unseen ones
        for s in range(n_sessions):
            local = START + pd.Timedelta(days=int(days[s]), hours=int(hours[s]), minutes=int(rng.integers(0, 60)))
            t = local.value
            progress = s / max(1, n_sessions - 1)
            taste = (1 - progress) * taste_a + progress * taste_b
            weekend = local.dayofweek >= 5
            weights = taste * hour_aff[:, local.hour] * (we if weekend else wk)
            cat = int(rng.choice(len(names), p=weights / weights.sum()))
            prev = None
            for _ in range(int(rng.integers(1, 6))):
                if count >= n:
                    break
                nxt = series_next.get(item_ids[prev]) if prev is not None else None
                if nxt is not None and release_ns[id_pos[nxt]] <= t and not watched[id_pos[nxt]] and rng.random() < 0.6:
                    pick = id_pos[nxt]
                else:
                    if rng.random() < 0.25:  # sometimes wander to another category within a session
                        cat = int(rng.choice(len(names), p=weights / weights.sum()))
                    cand = by_cat[cat][(release_ns[by_cat[cat]] <= t) & ~watched[by_cat[cat]]]
                    if len(cand) == 0:
                        break
                    age_days = (t - release_ns[cand]) / 86_400e9
                    w = base_pop[cand] * (1 + 4 * np.exp(-age_days / 10))
                    for bi, b0, b1 in bursts:
                        if b0 <= t < b1:
                            w = np.where(cand == bi, w * 20, w)
                    pick = int(rng.choice(cand, p=w / w.sum()))
                rows.append((user_id, item_ids[pick], t, "like" if rng.random() < 0.15 else "view"))
                watched[pick] = True
                prev = pick
                count += 1
                t += int(rng.exponential(6 * 60) * 1e9) + 60_000_000_000
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="ns", utc=True).dt.floor("s")
    # overlapping sessions of one user can repeat an item in the same second: keep one
    events = events.drop_duplicates(["user_id", "item_id", "timestamp"]).reset_index(drop=True)
    events["device"] = _devices(events["timestamp"].dt.tz_convert(TIMEZONE).dt.hour.to_numpy(), rng)
    events["weight"] = np.where(events["event_type"] == "like", 2.0, 1.0)
    events["weather"] = _weather(np.asarray(names)[item_cat[events["item_id"].map(id_pos).to_numpy()]], seed)
    items = items.drop(columns=["popularity"])
    truth = DemoTruth(
        categories=names, hour_affinity=hour_aff,
        weekday_factor=dict(zip(names, wk.tolist())), weekend_factor=dict(zip(names, we.tolist())),
        bursts=[(items["item_id"].iat[i], pd.Timestamp(b0, tz="UTC"), pd.Timestamp(b1, tz="UTC")) for i, b0, b1 in bursts],
        series_next=series_next, drift=drift,
        weather={c: dict(zip(WEATHERS, WEATHER_BY_CATEGORY[c])) for c in names},
    )
    report = LoadReport(files=["<generated demo>"], rows_read=len(events), rows_kept=len(events))
    dataset = Dataset("demo", Catalog(items, domain="movies"), Interactions(events, seed=seed, timezone=TIMEZONE), report,
                      source=f"promptrec.data.demo.generate_demo(seed={seed})")
    return Demo(dataset, truth)
