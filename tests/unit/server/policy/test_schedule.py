"""Weekly schedules in local wall-clock time, across daylight-saving changes and midnight.

America/New_York in 2026: clocks go 02:00 EST -> 03:00 EDT on Sunday 8 March (07:00Z), and
02:00 EDT -> 01:00 EST on Sunday 1 November (06:00Z).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaultgate.server.policy import Schedule

ONE_US = timedelta(microseconds=1)


def ny(*windows: tuple[list[str], str, str]) -> Schedule:
    return Schedule.model_validate(
        {
            "timezone": "America/New_York",
            "windows": [{"days": d, "start": s, "end": e} for d, s, e in windows],
        }
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_office_hours_follow_local_time_before_and_after_spring_forward() -> None:
    office = ny((["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00"))
    # Friday 6 March, EST (UTC-5): 09:00 local is 14:00Z.
    assert not office.contains(utc("2026-03-06T14:00") - ONE_US)
    assert office.contains(utc("2026-03-06T14:00"))
    assert office.contains(utc("2026-03-06T22:00") - ONE_US)
    assert not office.contains(utc("2026-03-06T22:00"))
    # Monday 9 March, EDT (UTC-4): the same window is one hour earlier in UTC.
    assert not office.contains(utc("2026-03-09T13:00") - ONE_US)
    assert office.contains(utc("2026-03-09T13:00"))
    assert office.contains(utc("2026-03-09T21:00") - ONE_US)
    assert not office.contains(utc("2026-03-09T21:00"))
    # Weekend
    assert not office.contains(utc("2026-03-08T16:00"))


def test_spring_forward_gap() -> None:
    skipped = ny((["sun"], "02:00", "03:00"))
    assert not skipped.contains(utc("2026-03-08T07:00") - ONE_US)  # 01:59:59 EST
    assert not skipped.contains(utc("2026-03-08T07:00"))  # 03:00 EDT
    around = ny((["sun"], "01:00", "03:00"))
    assert not around.contains(utc("2026-03-08T06:00") - ONE_US)  # 00:59:59 EST
    assert around.contains(utc("2026-03-08T06:00"))  # 01:00 EST
    assert around.contains(utc("2026-03-08T07:00") - ONE_US)  # 01:59:59 EST
    assert not around.contains(utc("2026-03-08T07:00"))  # 03:00 EDT: the window has ended


def test_fall_back_repeated_hour_is_inside_both_times() -> None:
    repeated = ny((["sun"], "01:00", "02:00"))
    assert not repeated.contains(utc("2026-11-01T05:00") - ONE_US)  # 00:59:59 EDT
    assert repeated.contains(utc("2026-11-01T05:00"))  # 01:00 EDT
    assert repeated.contains(utc("2026-11-01T06:00") - ONE_US)  # 01:59:59 EDT
    assert repeated.contains(utc("2026-11-01T06:00"))  # 01:00 EST, the second time
    assert repeated.contains(utc("2026-11-01T07:00") - ONE_US)  # 01:59:59 EST
    assert not repeated.contains(utc("2026-11-01T07:00"))  # 02:00 EST


def test_window_crossing_midnight() -> None:
    late = ny((["fri"], "22:00", "02:00"))
    assert not late.contains(utc("2026-03-07T03:00") - ONE_US)  # Fri 21:59:59 EST
    assert late.contains(utc("2026-03-07T03:00"))  # Fri 22:00
    assert late.contains(utc("2026-03-07T07:00") - ONE_US)  # Sat 01:59:59
    assert not late.contains(utc("2026-03-07T07:00"))  # Sat 02:00
    assert not late.contains(utc("2026-03-08T03:30"))  # Sat 22:30: Saturday is not listed
    assert not late.contains(utc("2026-03-06T06:00"))  # Fri 01:00: belongs to Thursday night


def test_window_crossing_midnight_into_spring_forward() -> None:
    night = ny((["sat"], "23:00", "03:00"))
    assert night.contains(utc("2026-03-08T04:00"))  # Sat 23:00 EST
    assert night.contains(utc("2026-03-08T07:00") - ONE_US)  # Sun 01:59:59 EST
    assert not night.contains(utc("2026-03-08T07:00"))  # Sun 03:00 EDT


def test_window_crossing_midnight_into_fall_back() -> None:
    night = ny((["sat"], "23:00", "01:30"))
    assert night.contains(utc("2026-11-01T05:29"))  # Sun 01:29 EDT
    assert not night.contains(utc("2026-11-01T05:30"))  # Sun 01:30 EDT
    assert night.contains(utc("2026-11-01T06:29"))  # Sun 01:29 EST, the repeated hour
    assert not night.contains(utc("2026-11-01T06:30"))  # Sun 01:30 EST


def test_sunday_night_wraps_into_monday() -> None:
    wrap = ny((["sun"], "23:00", "01:00"))
    assert wrap.contains(utc("2026-06-15T04:30"))  # Mon 00:30 EDT
    assert not wrap.contains(utc("2026-06-15T05:00"))  # Mon 01:00
    assert not wrap.contains(utc("2026-06-16T04:30"))  # Tue 00:30


def test_end_of_day_is_24_00() -> None:
    evening = ny((["mon"], "20:00", "24:00"))
    assert evening.contains(utc("2026-06-16T04:00") - ONE_US)  # Mon 23:59:59 EDT
    assert not evening.contains(utc("2026-06-16T04:00"))  # Tue 00:00


@pytest.mark.parametrize("zone_offset", [timedelta(hours=-4), timedelta(hours=9)])
def test_the_instant_matters_not_the_offset_it_is_written_in(zone_offset: timedelta) -> None:
    office = ny((["mon"], "09:00", "17:00"))
    instant = utc("2026-06-15T13:00")  # Mon 09:00 EDT
    assert office.contains(instant.astimezone(timezone(zone_offset)))
    assert not office.contains((instant - ONE_US).astimezone(timezone(zone_offset)))


def test_overlapping_windows_merge() -> None:
    both = ny((["mon"], "09:00", "12:00"), (["mon"], "11:00", "14:00"))
    assert both.intervals == ((9 * 60, 14 * 60),)
    assert both.contains(utc("2026-06-15T17:59"))  # Mon 13:59 EDT
