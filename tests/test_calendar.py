"""Hours of service, bank holidays, working days and local time (oohcore.calendar).

Every instant is a fixed aware datetime; nothing reads the real clock. 2026 dates used below:
Sun 29 March 01:00 UTC the clocks go forward (GMT → BST); Sun 25 October 01:00 UTC
(02:00 BST) they go back (BST → GMT).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from oohcore.calendar import (
    NEXT_CHANGE_HORIZON,
    ServiceCalendar,
    active_variant,
    add_working_days,
    christmas_period,
    is_bank_holiday,
    is_working_day,
    local_fields,
)
from oohcore.rulesets.models import Hours, SpecialDays, UkNation, Variant

LONDON = ZoneInfo("Europe/London")
ALL_WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def hours(*windows: tuple[list[str], str, str], **special: Any) -> Hours:
    return Hours.model_validate(
        {
            "weekly": [{"days": days, "from": start, "to": end} for days, start, end in windows],
            **special,
        }
    )


# 2.1.5: 5pm–8am Monday to Friday, and 5pm Friday through the weekend until 8am Monday.
TYPICAL = hours((ALL_WEEK, "17:00", "08:00"), (["sat", "sun"], "00:00", "24:00"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def london(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=LONDON, fold=fold)


def calendar(h: Hours = TYPICAL, nation: UkNation = UkNation.ENG) -> ServiceCalendar:
    return ServiceCalendar(h, nation=nation)


# ---------------------------------------------------------------------------------------------
# Weekly windows (2.1.5)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (london(2026, 6, 10, 12, 0), False),  # Wednesday daytime
        (london(2026, 6, 10, 16, 59), False),
        (london(2026, 6, 10, 17, 0), True),  # daytime services finish at 5pm
        (london(2026, 6, 10, 23, 59), True),
        (london(2026, 6, 11, 0, 0), True),  # past midnight into Thursday
        (london(2026, 6, 11, 7, 59), True),
        (london(2026, 6, 11, 8, 0), False),  # the end is excluded
        (london(2026, 6, 12, 17, 0), True),  # Friday evening ...
        (london(2026, 6, 13, 12, 0), True),  # ... all Saturday ...
        (london(2026, 6, 14, 12, 0), True),  # ... all Sunday ...
        (london(2026, 6, 15, 7, 59), True),  # ... until 8am Monday
        (london(2026, 6, 15, 8, 0), False),
        (london(2026, 1, 14, 12, 0), False),  # winter daytime
        (london(2026, 1, 14, 17, 30), True),
    ],
)
def test_typical_hours(when: datetime, expected: bool) -> None:
    assert calendar().is_open(when) is expected


def test_any_time_zone_is_accepted_and_compared_in_local_time() -> None:
    cal = calendar()
    # 16:30 UTC is 17:30 BST on a June Wednesday: open, however the instant is written.
    assert cal.is_open(utc(2026, 6, 10, 16, 30))
    assert cal.is_open(datetime(2026, 6, 10, 18, 30, tzinfo=timezone(timedelta(hours=2))))
    # 16:30 UTC in January is 16:30 GMT: still daytime.
    assert not cal.is_open(utc(2026, 1, 14, 16, 30))


def test_naive_datetimes_are_refused() -> None:
    cal = calendar()
    when = datetime(2026, 6, 10, 12, 0)
    with pytest.raises(ValueError, match="no time zone"):
        cal.is_open(when)
    with pytest.raises(ValueError, match="no time zone"):
        cal.next_change(when)
    with pytest.raises(ValueError, match="no time zone"):
        local_fields(when)
    with pytest.raises(ValueError, match="no time zone"):
        add_working_days(when, 5)
    with pytest.raises(ValueError, match="no time zone"):
        active_variant([], when)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="not a known time zone"):
        ServiceCalendar(TYPICAL, timezone="Europe/Londres")


@pytest.mark.parametrize(("start", "end"), [("00:00", "24:00"), ("00:00", "00:00")])
def test_whole_day_windows(start: str, end: str) -> None:
    cal = calendar(hours((["wed"], start, end), bank_holidays="as_weekly"))
    assert cal.is_open(london(2026, 6, 10, 0, 0))
    assert cal.is_open(london(2026, 6, 10, 23, 59, 59))
    assert not cal.is_open(london(2026, 6, 11, 0, 0))
    assert not cal.is_open(london(2026, 6, 9, 23, 59, 59))


@pytest.mark.parametrize(
    ("start", "end", "open_from", "open_until"),
    [
        # "24:00" as `from` is midnight at the end of Wednesday: Thursday 00:00-08:00.
        ("24:00", "08:00", london(2026, 6, 11, 0, 0), london(2026, 6, 11, 8, 0)),
        ("17:00", "24:00", london(2026, 6, 10, 17, 0), london(2026, 6, 11, 0, 0)),
        # "24:00" as `to` is always the end of Wednesday, so this window is empty.
        ("24:00", "24:00", None, None),
    ],
)
def test_windows_at_the_end_of_the_day(
    start: str, end: str, open_from: datetime | None, open_until: datetime | None
) -> None:
    cal = calendar(hours((["wed"], start, end), bank_holidays="as_weekly"))
    probe = london(2026, 6, 10, 0, 0)
    opened: list[datetime] = []
    while probe < london(2026, 6, 12, 0, 0):
        if cal.is_open(probe):
            opened.append(probe)
        probe += timedelta(minutes=30)
    assert (opened[0] if opened else None) == open_from
    assert (opened[-1] + timedelta(minutes=30) if opened else None) == open_until


def test_overnight_window_from_sunday_runs_into_monday() -> None:
    cal = calendar(hours((["sun"], "22:00", "06:00"), bank_holidays="as_weekly"))
    assert cal.is_open(london(2026, 6, 15, 5, 59))  # Monday morning
    assert not cal.is_open(london(2026, 6, 15, 6, 0))
    assert not cal.is_open(london(2026, 6, 14, 21, 59))


# ---------------------------------------------------------------------------------------------
# next_change
# ---------------------------------------------------------------------------------------------


def test_next_change_in_summer_and_winter() -> None:
    cal = calendar()
    # Wednesday 10 June, daytime: opens at 17:00 BST = 16:00 UTC, closes at 08:00 BST.
    assert cal.next_change(utc(2026, 6, 10, 12, 0)) == utc(2026, 6, 10, 16, 0)
    assert cal.next_change(utc(2026, 6, 10, 16, 0)) == utc(2026, 6, 11, 7, 0)
    # Friday evening: open right through the weekend until Monday 08:00.
    assert cal.next_change(utc(2026, 6, 12, 18, 0)) == utc(2026, 6, 15, 7, 0)
    # Winter: GMT.
    assert cal.next_change(utc(2026, 1, 14, 12, 0)) == utc(2026, 1, 14, 17, 0)


def test_next_change_returns_utc_and_excludes_the_starting_instant() -> None:
    cal = calendar()
    start = london(2026, 6, 10, 17, 0)  # exactly the opening instant
    change = cal.next_change(start)
    assert change == utc(2026, 6, 11, 7, 0)
    assert change is not None and change.tzinfo is UTC
    assert cal.is_open(change) is not cal.is_open(start)
    assert cal.is_open(change - timedelta(microseconds=1)) is cal.is_open(start)


def test_next_change_is_none_when_always_open() -> None:
    cal = calendar(hours((ALL_WEEK, "00:00", "24:00")))
    assert cal.next_change(utc(2026, 6, 10, 12, 0)) is None


def test_next_change_looks_at_most_fourteen_days_ahead() -> None:
    # Open all week except Wednesdays 09:00-10:00; Wednesdays 10 and 17 June are extra days,
    # so the next closure after 10 June is Wednesday 24 June 09:00 BST (08:00 UTC).
    cal = calendar(
        hours(
            (["mon", "tue", "thu", "fri", "sat", "sun"], "00:00", "24:00"),
            (["wed"], "00:00", "09:00"),
            (["wed"], "10:00", "24:00"),
            extra_days=["2026-06-10", "2026-06-17"],
        )
    )
    assert timedelta(days=14) == NEXT_CHANGE_HORIZON
    closure = utc(2026, 6, 24, 8, 0)
    assert cal.next_change(closure - timedelta(days=14)) == closure  # the horizon is included
    assert cal.next_change(closure - timedelta(days=14, seconds=1)) is None
    assert cal.next_change(closure) == utc(2026, 6, 24, 9, 0)


# ---------------------------------------------------------------------------------------------
# UK clock changes (2026)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "closes_at"),
    [
        # Mon 30 March (BST) the 08:00 close is 07:00 UTC.
        (utc(2026, 3, 27, 18, 0), utc(2026, 3, 30, 7, 0)),
        # Mon 26 October (GMT) it is 08:00 UTC.
        (utc(2026, 10, 23, 18, 0), utc(2026, 10, 26, 8, 0)),
    ],
)
def test_weekend_across_a_clock_change_closes_at_local_eight(
    before: datetime, closes_at: datetime
) -> None:
    cal = calendar()
    assert cal.is_open(before)
    assert cal.next_change(before) == closes_at  # no spurious change at the clock change
    assert cal.is_open(closes_at - timedelta(seconds=1))
    assert not cal.is_open(closes_at)


@pytest.mark.parametrize(
    ("saturday_noon", "opens", "closes", "real_hours"),
    [
        # Sun 29 March: opens 00:00 GMT, closes 08:00 BST.
        (utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 7, 0), 7),
        # Sun 25 October: opens 00:00 BST (Saturday 23:00 UTC), closes 08:00 GMT.
        (utc(2026, 10, 24, 12, 0), utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 8, 0), 9),
    ],
)
def test_sunday_night_window_on_clock_change_days(
    saturday_noon: datetime, opens: datetime, closes: datetime, real_hours: int
) -> None:
    cal = calendar(hours((["sun"], "00:00", "08:00"), bank_holidays="as_weekly"))
    assert not cal.is_open(saturday_noon)
    assert cal.next_change(saturday_noon) == opens
    assert cal.next_change(opens) == closes
    assert closes - opens == timedelta(hours=real_hours)


def test_evening_opening_after_the_clocks_change() -> None:
    cal = calendar()
    # Mon 30 March opens at 17:00 BST = 16:00 UTC; Mon 26 October at 17:00 GMT = 17:00 UTC.
    assert cal.next_change(utc(2026, 3, 30, 12, 0)) == utc(2026, 3, 30, 16, 0)
    assert cal.next_change(utc(2026, 10, 26, 12, 0)) == utc(2026, 10, 26, 17, 0)


def test_boundary_in_the_spring_gap_takes_effect_when_the_clocks_jump() -> None:
    # 01:30 does not exist on 29 March: the window ends when local time jumps from 01:00 to 02:00.
    cal = calendar(hours((["sun"], "00:00", "01:30"), bank_holidays="as_weekly"))
    assert cal.is_open(utc(2026, 3, 29, 0, 59, 59))
    assert not cal.is_open(utc(2026, 3, 29, 1, 0))
    assert cal.next_change(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 1, 0)


def test_repeated_hour_in_autumn_is_covered_twice() -> None:
    # 01:00-01:30 local happens twice on 25 October; a window up to 01:30 covers both.
    cal = calendar(hours((["sun"], "00:00", "01:30"), bank_holidays="as_weekly"))
    assert cal.is_open(london(2026, 10, 25, 1, 15, fold=0))  # 00:15 UTC, BST
    assert not cal.is_open(london(2026, 10, 25, 1, 45, fold=0))  # 00:45 UTC
    assert cal.is_open(london(2026, 10, 25, 1, 15, fold=1))  # 01:15 UTC, GMT
    start = utc(2026, 10, 24, 23, 30)
    assert cal.next_change(start) == utc(2026, 10, 25, 0, 30)
    assert cal.next_change(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 1, 0)
    assert cal.next_change(utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 25, 1, 30)


# ---------------------------------------------------------------------------------------------
# Bank holidays and the Christmas period (2.1.5, 2.1.6)
# ---------------------------------------------------------------------------------------------


def test_bank_holiday_all_day_or_as_weekly() -> None:
    noon = london(2026, 5, 4, 12, 0)  # Early May bank holiday, Monday 4 May 2026
    assert is_bank_holiday(date(2026, 5, 4))
    assert calendar(TYPICAL).is_open(noon)  # bank_holidays defaults to all_day
    as_weekly = TYPICAL.model_copy(update={"bank_holidays": SpecialDays.as_weekly})
    assert not calendar(as_weekly).is_open(noon)
    # The day after is an ordinary Tuesday.
    assert not calendar(TYPICAL).is_open(london(2026, 5, 5, 12, 0))


def test_bank_holiday_is_the_whole_local_date() -> None:
    cal = calendar(hours((["wed"], "17:00", "08:00")))
    assert cal.is_open(london(2026, 5, 4, 0, 0))  # Monday bank holiday, from midnight ...
    assert cal.is_open(london(2026, 5, 4, 23, 59, 59))  # ... to midnight
    assert not cal.is_open(london(2026, 5, 5, 0, 0))
    assert not cal.is_open(utc(2026, 5, 3, 22, 59))  # 23:59 BST Sunday
    assert cal.next_change(utc(2026, 5, 3, 12, 0)) == utc(2026, 5, 3, 23, 0)
    assert cal.next_change(utc(2026, 5, 3, 23, 0)) == utc(2026, 5, 4, 23, 0)


def test_overnight_window_from_the_day_before_still_applies() -> None:
    # Friday 20:00-06:00 runs into a special Saturday as usual, and Saturday's window, starting
    # on the special day, runs on past it into Sunday.
    cal = calendar(
        hours(
            (["fri", "sat"], "20:00", "06:00"), bank_holidays="as_weekly", extra_days=["2026-06-13"]
        )
    )
    assert not cal.is_open(london(2026, 6, 12, 19, 59))
    assert cal.is_open(london(2026, 6, 12, 23, 0))
    assert cal.is_open(london(2026, 6, 13, 12, 0))  # extra day
    assert cal.is_open(london(2026, 6, 14, 5, 59))  # Saturday's overnight window
    assert not cal.is_open(london(2026, 6, 14, 6, 0))


def test_christmas_period_dates() -> None:
    # Boxing Day 2026 is a Saturday; its substitute is Monday 28th.
    assert christmas_period(2026) == [date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)]
    assert is_bank_holiday(date(2026, 12, 28))
    # 2022: Christmas Day on Sunday, substitute Tuesday 27th; New Year's Eve a Saturday.
    assert christmas_period(2022) == [date(2022, 12, 28), date(2022, 12, 29), date(2022, 12, 30)]


@pytest.mark.parametrize(
    ("day", "typical", "as_weekly", "with_christmas_eve"),
    [
        (24, False, False, True),  # Thu 24 Dec: a working day, not in the period
        (25, True, True, True),  # Christmas Day, Friday: bank holiday
        (26, True, True, True),  # Boxing Day, Saturday
        (28, True, True, True),  # substitute bank holiday
        (29, True, False, True),
        (30, True, False, True),
        (31, True, False, True),
    ],
)
def test_christmas_week_2026_at_noon(
    day: int, typical: bool, as_weekly: bool, with_christmas_eve: bool
) -> None:
    noon = london(2026, 12, day, 12, 0)
    assert calendar(TYPICAL).is_open(noon) is typical
    as_weekly_hours = TYPICAL.model_copy(update={"christmas_period": SpecialDays.as_weekly})
    assert calendar(as_weekly_hours).is_open(noon) is as_weekly
    eve = TYPICAL.model_copy(update={"extra_days": [date(2026, 12, 24)]})
    assert calendar(eve).is_open(noon) is with_christmas_eve


def test_new_years_day_2027_is_open_and_the_next_working_day_is_not() -> None:
    cal = calendar()
    assert cal.is_open(london(2027, 1, 1, 12, 0))
    assert not cal.is_open(london(2027, 1, 4, 12, 0))
    # From 24 Dec 17:00 the service runs without a break until Monday 4 January 08:00.
    assert cal.next_change(london(2026, 12, 24, 17, 0)) == utc(2027, 1, 4, 8, 0)


@pytest.mark.parametrize(
    ("day", "english", "scottish"),
    [
        (date(2026, 1, 2), False, True),  # 2 January
        (date(2026, 11, 30), False, True),  # St Andrew's Day, Monday
        (date(2026, 4, 6), True, False),  # Easter Monday is not a Scottish bank holiday
        (date(2026, 12, 28), True, True),
        (date(2026, 11, 27), False, False),
    ],
)
def test_scottish_bank_holidays(day: date, english: bool, scottish: bool) -> None:
    assert is_bank_holiday(day, UkNation.ENG) is english
    assert is_bank_holiday(day, UkNation.SCT) is scottish
    assert is_working_day(day, UkNation.SCT) is (day.weekday() < 5 and not scottish)
    noon = datetime.combine(day, time(12, 0), tzinfo=LONDON)
    assert calendar(TYPICAL, UkNation.SCT).is_open(noon) is scottish
    assert calendar(TYPICAL, UkNation.ENG).is_open(noon) is english


def test_other_nations() -> None:
    assert is_bank_holiday(date(2026, 3, 17), UkNation.NIR)  # St Patrick's Day
    assert not is_bank_holiday(date(2026, 3, 17), UkNation.WLS)
    assert is_bank_holiday(date(2026, 4, 6), UkNation.WLS)


# ---------------------------------------------------------------------------------------------
# Working days (5.7.5, 5.7.6)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 6, 10), True),  # Wednesday
        (date(2026, 6, 13), False),  # Saturday
        (date(2026, 6, 14), False),  # Sunday
        (date(2026, 5, 4), False),  # bank holiday
        (date(2026, 12, 24), True),
        (date(2026, 12, 28), False),
    ],
)
def test_is_working_day(day: date, expected: bool) -> None:
    assert is_working_day(day) is expected


@pytest.mark.parametrize(
    ("start", "days", "nation", "due"),
    [
        # Thursday + 5 working days over a weekend: the Thursday after.
        (london(2026, 6, 11, 10, 0), 5, UkNation.ENG, utc(2026, 6, 18, 9, 0)),
        # Friday + 1 over the Early May bank holiday: Tuesday.
        (london(2026, 5, 1, 14, 0), 1, UkNation.ENG, utc(2026, 5, 5, 13, 0)),
        # Received on a Saturday: counting starts from Monday.
        (london(2026, 6, 13, 10, 0), 1, UkNation.ENG, utc(2026, 6, 15, 9, 0)),
        # Over Christmas: 24, 29, 30, 31 Dec, then Monday 4 January (GMT).
        (london(2026, 12, 23, 10, 0), 5, UkNation.ENG, utc(2027, 1, 4, 10, 0)),
        # In Scotland 4 January 2027 is the substitute for 2 January.
        (london(2026, 12, 23, 10, 0), 5, UkNation.SCT, utc(2027, 1, 5, 10, 0)),
        # Across the spring clock change: same local wall time, one hour earlier in UTC.
        (london(2026, 3, 27, 9, 0), 1, UkNation.ENG, utc(2026, 3, 30, 8, 0)),
        # Late evening BST: the local date, not the UTC date, is counted from.
        # Thu 11 June 23:30 UTC is Fri 12 June 00:30 BST: due Mon 15 June 00:30 BST.
        (utc(2026, 6, 11, 23, 30), 1, UkNation.ENG, utc(2026, 6, 14, 23, 30)),
        (london(2026, 6, 10, 10, 0), 0, UkNation.ENG, utc(2026, 6, 10, 9, 0)),
    ],
)
def test_add_working_days(start: datetime, days: int, nation: UkNation, due: datetime) -> None:
    result = add_working_days(start, days, nation=nation)
    assert result == due
    assert result.tzinfo is UTC


def test_add_working_days_refuses_negative() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        add_working_days(utc(2026, 6, 10, 9, 0), -1)


# ---------------------------------------------------------------------------------------------
# Built-in fields for conditions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            utc(2026, 5, 4, 11, 0),  # bank holiday, BST
            {"hour": 12, "minute": 0, "weekday": "mon", "weekend": False, "bank_holiday": True},
        ),
        (
            utc(2026, 12, 26, 15, 45),  # Boxing Day on a Saturday, GMT
            {"hour": 15, "minute": 45, "weekday": "sat", "weekend": True, "bank_holiday": True},
        ),
        (
            utc(2026, 3, 29, 0, 59),  # just before the clocks go forward
            {"hour": 0, "minute": 59, "weekday": "sun", "weekend": True, "bank_holiday": False},
        ),
        (
            utc(2026, 3, 29, 1, 0),  # clocks go forward
            {"hour": 2, "minute": 0, "weekday": "sun", "weekend": True, "bank_holiday": False},
        ),
        (
            utc(2026, 10, 25, 0, 30),  # 01:30 BST
            {"hour": 1, "minute": 30, "weekday": "sun", "weekend": True, "bank_holiday": False},
        ),
        (
            utc(2026, 10, 25, 1, 30),  # 01:30 GMT, the second time round
            {"hour": 1, "minute": 30, "weekday": "sun", "weekend": True, "bank_holiday": False},
        ),
        (
            utc(2026, 5, 31, 23, 30),  # already Monday 1 June locally
            {"hour": 0, "minute": 30, "weekday": "mon", "weekend": False, "bank_holiday": False},
        ),
        (
            utc(2026, 5, 24, 23, 30),  # already the Spring bank holiday locally
            {"hour": 0, "minute": 30, "weekday": "mon", "weekend": False, "bank_holiday": True},
        ),
    ],
)
def test_local_fields(when: datetime, expected: dict[str, object]) -> None:
    assert local_fields(when) == expected


def test_local_fields_bank_holiday_depends_on_nation() -> None:
    assert local_fields(utc(2026, 11, 30, 12, 0), nation=UkNation.SCT)["bank_holiday"] is True
    assert local_fields(utc(2026, 11, 30, 12, 0))["bank_holiday"] is False


# ---------------------------------------------------------------------------------------------
# Variants (5.4.3)
# ---------------------------------------------------------------------------------------------


def variant(variant_id: str, start: str, end: str, **special: Any) -> Variant:
    return Variant.model_validate(
        {
            "id": variant_id,
            "name": variant_id,
            "hours": {"weekly": [{"days": ALL_WEEK, "from": start, "to": end}], **special},
            "tell_caller": "There is no emergency noise service after 3 a.m.",
        }
    )


NO_PATROL = variant(
    "no-patrol", "03:00", "08:00", bank_holidays="as_weekly", christmas_period="as_weekly"
)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (london(2026, 7, 11, 2, 59), None),  # Saturday night in summer: patrol still out
        (london(2026, 7, 11, 3, 0), "no-patrol"),  # 02:00 UTC
        (london(2026, 7, 11, 7, 59), "no-patrol"),
        (london(2026, 7, 11, 8, 0), None),
        (london(2026, 5, 4, 12, 0), None),  # bank holiday, but the variant is as_weekly
    ],
)
def test_noise_variant_after_three_am(when: datetime, expected: str | None) -> None:
    found = active_variant([NO_PATROL], when)
    assert (found.id if found else None) == expected


def test_first_matching_variant_wins() -> None:
    late = variant("late", "01:00", "08:00", bank_holidays="as_weekly")
    assert active_variant([late, NO_PATROL], utc(2026, 7, 11, 2, 30)) is late
    assert active_variant([NO_PATROL, late], utc(2026, 7, 11, 2, 30)) is NO_PATROL
    assert active_variant([NO_PATROL, late], utc(2026, 7, 11, 1, 30)) is late  # 02:30 BST
    assert active_variant([], utc(2026, 7, 11, 2, 30)) is None


def test_a_variant_follows_its_weekly_windows_on_special_days_by_default() -> None:
    # VariantHours default bank holidays and Christmas to as_weekly (5.4.3): a "no patrol
    # 03:00-08:00" variant must not swallow a whole bank holiday unless its author says all_day.
    default_special = variant("no-patrol", "03:00", "08:00")
    assert active_variant([default_special], london(2026, 5, 4, 12, 0)) is None  # bank holiday noon
    assert active_variant([default_special], london(2026, 5, 4, 3, 30)) is default_special
    all_day = variant("no-patrol", "03:00", "08:00", bank_holidays="all_day")
    assert active_variant([all_day], london(2026, 5, 4, 12, 0)) is all_day
    assert active_variant([all_day], london(2026, 5, 5, 12, 0)) is None


def test_variant_uses_the_organisation_time_zone() -> None:
    when = utc(2026, 7, 11, 2, 30)  # 03:30 BST in London
    assert active_variant([NO_PATROL], when, timezone="Europe/London") is NO_PATROL
    assert active_variant([NO_PATROL], when, timezone="UTC") is None
