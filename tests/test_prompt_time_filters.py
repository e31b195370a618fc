"""Every time filter, with time zones and boundaries (midnight, DST, part-of-day edges)."""

import pandas as pd
import pytest

from promptrec.prompt.time_filters import ago, clock, date, duration, gap, part_of_day, season, slot, weekday, when

NY = "America/New_York"


def t(s, tz="UTC"):
    return pd.Timestamp(s, tz=tz)


@pytest.mark.parametrize("then, now, expected", [
    ("2024-05-01 12:00:00", "2024-05-01 12:00:30", "just now"),
    ("2024-05-01 12:00", "2024-05-01 12:01", "1 minute ago"),
    ("2024-05-01 12:00", "2024-05-01 12:59", "59 minutes ago"),
    ("2024-05-01 08:00", "2024-05-01 20:30", "12 hours ago"),
    ("2024-04-30 23:55", "2024-05-01 00:05", "10 minutes ago"),       # across midnight, minutes
    ("2024-04-30 20:00", "2024-05-01 00:05", "4 hours ago"),          # across midnight, short gap
    ("2024-04-30 22:00", "2024-05-01 08:00", "yesterday"),            # previous calendar day
    ("2024-04-30 00:00", "2024-05-01 23:59", "yesterday"),
    ("2024-04-29 23:59", "2024-05-01 00:01", "2 days ago"),           # calendar days, not 24h blocks
    ("2024-04-18 12:00", "2024-05-01 12:00", "13 days ago"),
    ("2024-04-17 12:00", "2024-05-01 12:00", "2 weeks ago"),
    ("2024-03-01 12:00", "2024-05-01 12:00", "2 months ago"),
    ("2023-08-01 12:00", "2024-05-01 12:00", "9 months ago"),
    ("2022-04-01 12:00", "2024-05-01 12:00", "2 years ago"),
])
def test_ago(then, now, expected):
    assert ago(t(then), t(now)) == expected


def test_ago_counts_calendar_days_in_the_local_zone():
    then, now = t("2024-05-01 03:00"), t("2024-05-01 15:00")  # same UTC day...
    assert ago(then, now) == "12 hours ago"
    # ...but in Tokyo (UTC+9) 03:00Z is noon on May 1 and 15:00Z is midnight starting May 2
    assert ago(then.tz_convert("Asia/Tokyo"), now) == "yesterday"
    assert ago(t("2024-05-01 09:00").tz_convert("Asia/Tokyo"), t("2024-05-02 01:00")) == "yesterday"


def test_ago_across_daylight_saving_change():
    # 2024-03-10 02:00 New York clocks jump to 03:00: only 23 hours pass between the two noons
    assert ago(t("2024-03-09 12:00", NY), t("2024-03-10 12:00", NY)) == "yesterday"
    assert ago(t("2024-03-10 01:00", NY), t("2024-03-10 04:00", NY)) == "2 hours ago"


def test_ago_refuses_the_future():
    with pytest.raises(ValueError, match="after now"):
        ago(t("2024-05-02"), t("2024-05-01"))


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        weekday(pd.Timestamp("2024-05-01"))


@pytest.mark.parametrize("hour_min, expected", [
    ("00:00", "night"), ("04:59", "night"), ("05:00", "morning"), ("11:59", "morning"), ("12:00", "afternoon"),
    ("16:59", "afternoon"), ("17:00", "evening"), ("20:59", "evening"), ("21:00", "night"), ("23:59", "night"),
])
def test_part_of_day_boundaries(hour_min, expected):
    assert part_of_day(t(f"2024-05-01 {hour_min}")) == expected


def test_weekday_and_part_of_day_follow_the_time_zone():
    ts = t("2024-05-05 01:30")  # Sunday night in UTC
    assert (weekday(ts), part_of_day(ts)) == ("Sunday", "night")
    ny = ts.tz_convert(NY)  # Saturday 21:30 in New York
    assert (weekday(ny), part_of_day(ny)) == ("Saturday", "night")
    tokyo = ts.tz_convert("Asia/Tokyo")  # Sunday 10:30
    assert (weekday(tokyo), part_of_day(tokyo)) == ("Sunday", "morning")


def test_slot_names_the_part_of_the_week_in_local_time():
    ts = t("2024-05-03 22:30")  # Friday night in UTC
    assert slot(ts) == "weekday nights"
    assert slot(ts.tz_convert("Asia/Tokyo")) == "weekend mornings"  # Saturday 07:30 there
    assert slot(t("2024-05-06 12:00")) == "weekday afternoons"  # Monday


def test_when_combines_relative_and_local_time():
    assert when(t("2024-05-05 19:00"), t("2024-05-08 10:00")) == "3 days ago, Sunday evening"


def test_date_clock_season():
    ts = t("2024-12-31 23:45")
    assert date(ts) == "2024-12-31" and date(ts, "%B %-d") == "December 31" and clock(ts) == "23:45"
    assert date(ts.tz_convert("Asia/Tokyo")) == "2025-01-01"
    assert season(ts) == "winter" and season(ts, "south") == "summer"
    assert season(t("2024-03-01")) == "spring" and season(t("2024-09-30"), "south") == "spring"
    with pytest.raises(ValueError):
        season(ts, "east")


def test_gap_and_duration():
    a = t("2024-05-01 12:00")
    assert gap(a, None) == "first"
    assert gap(a + pd.Timedelta(seconds=20), a) == "same minute"
    assert gap(a + pd.Timedelta(minutes=5), a) == "5 minutes later"
    assert gap(a + pd.Timedelta(days=2, hours=3), a) == "2 days later"
    assert duration(pd.Timedelta(seconds=1)) == "1 second"
    assert duration(pd.Timedelta(hours=1)) == "1 hour"
    assert duration(pd.Timedelta(days=20)) == "2 weeks"
    assert duration(pd.Timedelta(days=45)) == "6 weeks"
    assert duration(pd.Timedelta(days=75)) == "2 months"
    assert duration(pd.Timedelta(days=800)) == "2 years"
    with pytest.raises(ValueError):
        duration(pd.Timedelta(seconds=-1))
