"""`_core.CronSchedule`: next fire time of a 5-field cron spec in an IANA time zone, checked against a small
reference written from the documented rules (rust/core/src/cron.rs, module docs): fields, lists, ranges,
steps (`5/15` runs to the field's end), names, 7 = Sunday, the Vixie day-of-month/day-of-week OR rule, fire
times strictly after the given instant at whole local minutes, skipped local times (spring forward) do not
fire, repeated ones (fall back) fire once, at their first instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import _core, errors

MINUTE = 60_000
BERLIN = ZoneInfo("Europe/Berlin")
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _utc(*args: int) -> int:
    return _ms(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


class Reference:
    """The documented cron rules, plainly."""

    def __init__(self, spec: str) -> None:
        text = MACROS.get(spec.strip().lower(), spec)
        minute, hour, dom, month, dow = text.split()
        self.minutes = self._field(minute, 0, 59)
        self.hours = self._field(hour, 0, 23)
        self.doms = self._field(dom, 1, 31)
        self.months = self._field(month, 1, 12, MONTHS)
        days = self._field(dow, 0, 6, DAYS, largest=7)
        self.dows = (days - {7}) | ({0} if 7 in days else set())
        self.both_restricted = not dom.startswith("*") and not dow.startswith("*")

    @staticmethod
    def _field(text: str, lo: int, hi: int, names: list[str] | None = None, largest: int | None = None) -> set[int]:
        def value(token: str) -> int:
            if token.isdigit():
                return int(token)
            assert names is not None
            return lo + names.index(token.upper())

        out: set[int] = set()
        for item in text.split(","):
            rng, slash, step_text = item.partition("/")
            step = int(step_text) if slash else 1
            if rng == "*":
                first, last = lo, hi
            elif "-" in rng:
                a, b = rng.split("-")
                first, last = value(a), value(b)
            else:
                first = value(rng)
                last = max(first, hi) if slash else first
            out |= set(range(first, last + 1, step))
        return out

    def matches(self, local: datetime) -> bool:
        if local.minute not in self.minutes or local.hour not in self.hours or local.month not in self.months:
            return False
        dom_ok = local.day in self.doms
        dow_ok = local.isoweekday() % 7 in self.dows
        return (dom_ok or dow_ok) if self.both_restricted else (dom_ok and dow_ok)

    def next_after(self, after_ms: int, tz: ZoneInfo, window_minutes: int) -> int | None:
        """Walks real minutes: a skipped local time never comes up, a repeated one comes up twice and fires only
        at its first instant (fold 0). Both zones here are whole hours off UTC, so local minutes are UTC ones."""
        t = (after_ms // MINUTE + 1) * MINUTE
        for _ in range(window_minutes):
            local = datetime.fromtimestamp(t / 1000, tz)
            if local.fold == 0 and self.matches(local):
                return t
            t += MINUTE
        return None


SPECS = [
    "* * * * *",
    "*/15 * * * *",
    "5/15 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 3 * * *",
    "*/30 2 * * *",
    "0 0 * * *",
    "59 23 * * *",
    "15 9-17/2 * * MON-FRI",
    "0 12 * * 0",
    "0 12 * * 7",
    "*/20 1,13 * * *",
    "0 0 13 * FRI",
    "0 0 1-7 * MON",
    "45 23 * * 1/2",
    "0 3 * * sat,SUN",
    "10,20 4 * jan-dec *",
    "@hourly",
    "@daily",
    "@weekly",
]
STARTS = [
    _utc(2026, 1, 1, 0, 0),
    _utc(2026, 3, 28, 23, 59) + 30_000,  # the night Berlin springs forward (2026-03-29 02:00 -> 03:00)
    _utc(2026, 3, 29, 0, 30),
    _utc(2026, 10, 24, 23, 0),  # the night Berlin falls back (2026-10-25 03:00 -> 02:00)
    _utc(2026, 10, 25, 0, 30),
    _utc(2026, 10, 25, 1, 0),
    _utc(2027, 2, 28, 22, 59, 59) + 999,
    _utc(2024, 2, 28, 12, 0),
]
WEEK = 8 * 24 * 60


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize("spec", SPECS)
def test_matches_the_reference_from_chosen_instants(spec: str, tz: str) -> None:
    schedule = _core.CronSchedule(spec, tz)
    reference = Reference(spec)
    zone = ZoneInfo(tz)
    for start in STARTS:
        after = start
        for _ in range(3):  # three consecutive fires
            expected = reference.next_after(after, zone, WEEK)
            assert expected is not None
            got = schedule.next_after(after)
            assert got == expected, (spec, tz, after)
            after = got


@settings(max_examples=150, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    tz=st.sampled_from(["UTC", "Europe/Berlin"]),
    after=st.integers(_utc(2000, 1, 1, 0, 0), _utc(2060, 1, 1, 0, 0)),
)
def test_matches_the_reference_from_any_instant(spec: str, tz: str, after: int) -> None:
    got = _core.CronSchedule(spec, tz).next_after(after)
    assert got == Reference(spec).next_after(after, ZoneInfo(tz), WEEK)


FIELD_ITEM = st.one_of(
    st.just("*"),
    st.builds(lambda v: str(v), st.integers(0, 59)),
    st.builds(lambda a, b: f"{min(a, b)}-{max(a, b)}", st.integers(0, 59), st.integers(0, 59)),
    st.builds(lambda s: f"*/{s}", st.integers(1, 60)),
    st.builds(lambda v, s: f"{v}/{s}", st.integers(0, 59), st.integers(1, 60)),
)


@settings(max_examples=100, deadline=None)
@given(
    minute=st.lists(FIELD_ITEM, min_size=1, max_size=3).map(",".join),
    hour=st.sampled_from(["*", "*/6", "3", "1-5", "22/1", "0,12"]),
    dow=st.sampled_from(["*", "MON", "1-5", "0,6", "*/2", "5/1"]),
    dom=st.sampled_from(["*", "*/3", "15"]),
    tz=st.sampled_from(["UTC", "Europe/Berlin"]),
    after=st.integers(_utc(2020, 1, 1, 0, 0), _utc(2040, 1, 1, 0, 0)),
)
def test_generated_specs_match_the_reference(minute: str, hour: str, dow: str, dom: str, tz: str, after: int) -> None:
    spec = f"{minute} {hour} {dom} * {dow}"
    got = _core.CronSchedule(spec, tz).next_after(after)
    expected = Reference(spec).next_after(after, ZoneInfo(tz), 3 * 24 * 60)
    if expected is None:  # the reference looked three days ahead only
        assert got is None or got > after + 3 * 24 * 60 * MINUTE
    else:
        assert got == expected, spec


def test_every_fifteen_minutes_in_utc() -> None:
    every = _core.CronSchedule("*/15 * * * *")
    assert every.next_after(_utc(2026, 5, 1, 12, 7) + 30_000) == _utc(2026, 5, 1, 12, 15)
    assert every.next_after(_utc(2026, 5, 1, 12, 15)) == _utc(2026, 5, 1, 12, 30)  # strictly after
    assert every.next_after(_utc(2026, 5, 1, 12, 15) - 1) == _utc(2026, 5, 1, 12, 15)
    assert every.next_after(_utc(2026, 12, 31, 23, 50)) == _utc(2027, 1, 1, 0, 0)


def test_berlin_daily_time_follows_the_offset() -> None:
    daily = _core.CronSchedule("0 9 * * *", "Europe/Berlin")
    assert daily.next_after(_utc(2026, 1, 15, 0, 0)) == _utc(2026, 1, 15, 8, 0)  # CET, UTC+1
    assert daily.next_after(_utc(2026, 7, 15, 0, 0)) == _utc(2026, 7, 15, 7, 0)  # CEST, UTC+2


def test_berlin_skipped_local_time_does_not_fire() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    at_half_past_two = _core.CronSchedule("30 2 * * *", "Europe/Berlin")
    assert at_half_past_two.next_after(_utc(2026, 3, 28, 12, 0)) == _utc(2026, 3, 30, 0, 30)  # 02:30 CEST on the 30th
    at_three = _core.CronSchedule("0 3 * * *", "Europe/Berlin")
    assert at_three.next_after(_utc(2026, 3, 28, 12, 0)) == _utc(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_berlin_repeated_local_time_fires_once_at_its_first_instant() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 UTC and again at 01:30 UTC.
    daily = _core.CronSchedule("30 2 * * *", "Europe/Berlin")
    first = daily.next_after(_utc(2026, 10, 24, 12, 0))
    assert first == _utc(2026, 10, 25, 0, 30)
    assert daily.next_after(first) == _utc(2026, 10, 26, 1, 30)  # not 01:30 UTC on the 25th
    # Asked between the two instants, the time has already fired.
    assert daily.next_after(_utc(2026, 10, 25, 1, 0)) == _utc(2026, 10, 26, 1, 30)
    half_hourly = _core.CronSchedule("*/30 * * * *", "Europe/Berlin")
    assert half_hourly.next_after(_utc(2026, 10, 25, 0, 30)) == _utc(2026, 10, 25, 2, 0)  # pauses for the repeat


def test_day_of_month_and_day_of_week_or_rule() -> None:
    either = _core.CronSchedule("0 0 13 * FRI")  # every 13th and every Friday
    # 2026-02-13 is a Friday; 2026-03-13 a Friday too; 2026-05-13 a Wednesday.
    assert either.next_after(_utc(2026, 5, 9, 0, 0)) == _utc(2026, 5, 13, 0, 0)  # the 13th, a Wednesday
    assert either.next_after(_utc(2026, 5, 13, 0, 0)) == _utc(2026, 5, 15, 0, 0)  # the next Friday
    both = _core.CronSchedule("0 0 */2 * FRI")  # '*' starts the day field: Fridays on odd days only
    assert both.next_after(_utc(2026, 5, 9, 0, 0)) == _utc(2026, 5, 15, 0, 0)
    assert both.next_after(_utc(2026, 5, 15, 0, 0)) == _utc(2026, 5, 29, 0, 0)  # the 22nd is even


def test_rare_fire_times() -> None:
    leap = _core.CronSchedule("0 0 29 2 *")
    assert leap.next_after(_utc(2026, 1, 1, 0, 0)) == _utc(2028, 2, 29, 0, 0)
    assert leap.next_after(_utc(2096, 3, 1, 0, 0)) == _utc(2104, 2, 29, 0, 0)  # 2100 is no leap year
    yearly = _core.CronSchedule("@yearly")
    assert yearly.next_after(-1) == 0  # 1970-01-01 00:00 UTC
    assert yearly.next_after(2**62) is None  # beyond what can be represented


def test_fire_times_are_whole_minutes_strictly_after() -> None:
    schedule = _core.CronSchedule("7 * * * *", "Europe/Berlin")
    after = _utc(2026, 6, 1, 10, 7) + 12_345
    for _ in range(50):
        nxt = schedule.next_after(after)
        assert nxt is not None and nxt > after and nxt % MINUTE == 0
        assert datetime.fromtimestamp(nxt / 1000, BERLIN).minute == 7
        after = nxt
    assert after - _utc(2026, 6, 1, 10, 7) == timedelta(hours=50) // timedelta(milliseconds=1)


def test_macros_and_getters() -> None:
    for macro, fields in MACROS.items():
        a, b = _core.CronSchedule(macro), _core.CronSchedule(fields)
        start = _utc(2026, 4, 2, 3, 4)
        assert a.next_after(start) == b.next_after(start), macro
    schedule = _core.CronSchedule("@Daily", "Europe/Berlin")
    assert schedule.spec == "@Daily"  # kept as given
    assert schedule.tz == "Europe/Berlin"
    assert _core.CronSchedule("* * * * *").tz == "UTC"
    assert "Europe/Berlin" in repr(schedule) and "@Daily" in repr(schedule)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "expected 5 fields"),
        ("* * * *", "found 4 fields"),
        ("* * * * * *", "found 6 fields"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month 0 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week 8 is out of range 0-7"),
        ("*/0 * * * *", "out of range 1-60"),
        ("*/61 * * * *", "out of range 1-60"),
        ("* * * * */8", "out of range 1-7"),
        ("1,,2 * * * *", "empty item"),
        ("* * * * FRI-MON", "runs backwards"),
        ("* * * FOO *", "unknown month name 'FOO'"),
        ("0 0 L * *", "not valid"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_invalid_specs_are_refused_with_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(errors.InvalidCronError) as excinfo:
        _core.CronSchedule(spec)
    message = str(excinfo.value)
    assert f"invalid cron spec '{spec}'" in message
    assert fragment in message


def test_feb_30_with_a_weekday_can_fire() -> None:
    # Restricted day-of-week adds days (OR rule), so the spec is not starved.
    schedule = _core.CronSchedule("0 0 30 2 MON")
    assert schedule.next_after(_utc(2026, 2, 1, 0, 0)) == _utc(2026, 2, 2, 0, 0)


@pytest.mark.parametrize("tz", ["utc", "europe/berlin", "Mars/Olympus", "", "Europe/Berlin ", "+01:00"])
def test_unknown_time_zones_are_refused(tz: str) -> None:
    with pytest.raises(errors.InvalidTimeZoneError) as excinfo:
        _core.CronSchedule("* * * * *", tz)
    assert f"unknown time zone '{tz}'" in str(excinfo.value)
    assert "IANA name" in str(excinfo.value)
