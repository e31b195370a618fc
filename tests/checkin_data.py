"""Synthetic check-ins in the Foursquare NYC file format, for tests: routines with planted hours and places."""

import numpy as np
import pandas as pd

BASE = (40.75, -73.98)
ROUTINE = [(8, "Coffee Shop"), (9, "Office"), (13, "Deli / Bodega"), (19, "Gym / Fitness Center"), (22, "Home (private)")]


def make_checkins(n_users: int = 40, days: int = 42, seed: int = 0) -> pd.DataFrame:
    """Each user has one place per routine slot (its own coffee shop, office...), visited at that local hour on
    most weekdays, plus a few visits to random places; places are scattered around a few km."""
    rng = np.random.default_rng(seed)
    places = []
    for p in range(150):
        cat = ROUTINE[p % len(ROUTINE)][1] if p < 120 else "Bar"
        places.append((f"p{p:03d}", cat, BASE[0] + rng.normal(0, 0.03), BASE[1] + rng.normal(0, 0.03)))
    rows = []
    start = pd.Timestamp("2012-11-05", tz="Etc/GMT+5")
    for u in range(n_users):
        mine = {k: places[(u * len(ROUTINE) + k) % 120] for k in range(len(ROUTINE))}  # category ROUTINE[k]
        for d in range(days):
            day = start + pd.Timedelta(days=d)
            if day.dayofweek >= 5 and rng.random() < 0.7:
                continue
            for k, (hour, _) in enumerate(ROUTINE):
                if rng.random() < 0.6:
                    pid = mine[k][0] if rng.random() < 0.85 else places[int(rng.integers(0, 150))][0]
                    rows.append((u, pid, day + pd.Timedelta(hours=hour, minutes=int(rng.integers(0, 50)))))
    info = {p[0]: p for p in places}
    out = []
    for u, pid, t in rows:
        _, cat, lat, lon = info[pid]
        out.append({"user_id": u, "POI_id": pid, "POI_catid": f"c{cat}", "POI_catid_code": 0, "POI_catname": cat,
                    "latitude": lat, "longitude": lon, "timezone": -300,
                    "UTC_time": t.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S+00:00"),
                    "local_time": t.strftime("%Y-%m-%d %H:%M:%S-05:00")})
    return pd.DataFrame(out)
