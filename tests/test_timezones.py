"""The zone of a log whose rows carry their own offsets (check-in files)."""

import warnings

import pandas as pd
import pytest

from promptrec.data.timezones import zone_for_offsets


def rows(zone: str, start: str, days: int) -> tuple[pd.Series, pd.Series]:
    """Hourly UTC times over ``days`` and each one's offset in ``zone`` (minutes east of UTC)."""
    utc = pd.Series(pd.date_range(start, periods=24 * days, freq="h", tz="UTC"))
    local = utc.dt.tz_convert(zone)
    minutes = (local.dt.tz_localize(None) - utc.dt.tz_localize(None)).dt.total_seconds() / 60
    return utc.astype(str), minutes


@pytest.mark.parametrize("zone,start,expected", [
    ("America/New_York", "2013-02-20", "America/New_York"),  # springs forward on 2013-03-10
    ("America/Chicago", "2013-10-20", "America/Chicago"),  # falls back on 2013-11-03: New York's times do not fit
    ("Australia/Sydney", "2013-03-20", "Australia/Sydney"),  # the southern summer ends on 2013-04-07
    ("Asia/Tokyo", "2013-02-20", "Etc/GMT-9"),  # one offset, whole hours: the fixed zone
    ("America/New_York", "2012-11-09", "Etc/GMT+5"),  # one season (the NYC file): which rule applies is unknown
    ("Asia/Kolkata", "2013-02-20", "Asia/Kolkata"),  # +330: no fixed Etc zone, the named one
])
def test_the_zone_that_has_the_rows_offsets_at_their_times(zone, start, expected):
    utc, minutes = rows(zone, start, 40)
    assert zone_for_offsets(utc, minutes) == expected


def test_a_stray_row_does_not_change_the_zone_but_two_cities_have_none():
    utc, minutes = rows("America/New_York", "2012-11-09", 40)
    minutes.iloc[100] = -240  # the shared NYC file has one such row
    assert zone_for_offsets(utc, minutes) == "Etc/GMT+5"
    tokyo_utc, tokyo = rows("Asia/Tokyo", "2012-11-09", 40)
    assert zone_for_offsets(pd.concat([utc, tokyo_utc]), pd.concat([minutes, tokyo])) is None


def test_checkin_file_across_a_clock_change_reads_local_hours_in_the_named_zone(tmp_path):
    from promptrec.data.loaders.checkins import load_checkins

    utc, minutes = rows("America/New_York", "2013-03-01", 20)
    n = len(utc)
    frame = pd.DataFrame({"user_id": [f"u{i % 5}" for i in range(n)], "POI_id": [f"p{i % 7}" for i in range(n)],
                          "POI_catname": "Cafe", "latitude": 40.7, "longitude": -74.0, "timezone": minutes.astype(int),
                          "UTC_time": utc})
    frame.to_csv(tmp_path / "checkins.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_checkins(tmp_path / "checkins.csv")
    assert ds.interactions.timezone == "America/New_York"
    local = ds.interactions.frame["timestamp"].sort_values().dt.tz_convert(ds.interactions.timezone)
    expected = pd.to_datetime(utc, utc=True).sort_values().dt.tz_convert("America/New_York")
    assert (local.dt.hour.to_numpy() == expected.dt.hour.to_numpy()).all()
    assert set(local.dt.strftime("%z")) == {"-0500", "-0400"}  # both sides of the clock change
    # a file of two cities: read at its most common offset, with a warning that says so
    frame.assign(timezone=[540 if i % 3 == 0 else -300 for i in range(n)]).to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.warns(UserWarning, match="fit no one time zone"):
        assert load_checkins(tmp_path / "mixed.csv").interactions.timezone == "Etc/GMT+5"


def test_checkin_utc_times_without_a_zone_suffix_are_read_as_utc(tmp_path):
    """``UTC_time`` is UTC by its name: a file whose strings lack the ``+00:00`` reads the same times (before, such
    strings were taken as local times in the file's zone, hours off)."""
    from promptrec.data.loaders.checkins import load_checkins

    utc, minutes = rows("Asia/Tokyo", "2013-02-20", 3)
    frame = pd.DataFrame({"user_id": "u1", "POI_id": [f"p{i % 4}" for i in range(len(utc))], "POI_catname": "Cafe",
                          "latitude": 35.7, "longitude": 139.7, "timezone": minutes.astype(int)})
    frame.assign(UTC_time=utc).to_csv(tmp_path / "zoned.csv", index=False)
    frame.assign(UTC_time=utc.str.replace("+00:00", "", regex=False)).to_csv(tmp_path / "naive.csv", index=False)
    zoned, naive = load_checkins(tmp_path / "zoned.csv"), load_checkins(tmp_path / "naive.csv")
    assert zoned.interactions.timezone == naive.interactions.timezone == "Etc/GMT-9"
    assert naive.interactions.frame["timestamp"].equals(zoned.interactions.frame["timestamp"])
    assert "timezone" not in naive.interactions.frame.columns  # the offsets made the zone; they are not context
